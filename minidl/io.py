"""Saving and loading: ``.npz`` files, never pickle, written atomically.

``md.save(obj, path)`` takes a nested structure of dicts, lists, arrays/Tensors, numbers,
strings, booleans and None (a model's ``state_dict()``, an optimizer's, an epoch number ...).
Arrays become the ``.npz`` members; the structure is stored beside them as JSON, so loading
needs no pickle (``allow_pickle=False``) and a foreign or damaged file fails with a clear error.

Atomic: the file is written to a temporary name in the same folder and then renamed over the
target (``os.replace``), so a crash mid-save leaves the previous file intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Optional

import numpy as np

from minidl import backend
from minidl.autograd import Tensor

FORMAT = "minidl-checkpoint-v1"


class CheckpointError(ValueError):
    """A file that is not a readable minidl checkpoint."""


def _flatten(obj: Any, arrays: dict) -> Any:
    """The JSON-able skeleton of ``obj``; arrays are moved into ``arrays`` and referenced."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, np.generic):
        host = backend.to_numpy(obj)
        if host.dtype.kind not in "biufcUS":
            raise TypeError(f"md.save: cannot store an array of dtype {host.dtype} without pickle")
        key = f"a{len(arrays)}"
        arrays[key] = host
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"md.save: dict keys must be strings, got {k!r}")
        return {"__dict__": {k: _flatten(v, arrays) for k, v in obj.items()}}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, arrays) for v in obj],
                "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"md.save: cannot store a {type(obj).__name__}; use dicts, lists, arrays, "
                    f"Tensors, numbers and strings (call .state_dict() on models and optimizers)")


def _unflatten(node: Any, arrays: Any, device: Optional[str]) -> Any:
    if isinstance(node, dict):
        if "__array__" in node:
            array = arrays[node["__array__"]]
            return array if device is None else backend.to_device(array, device)
        if "__dict__" in node:
            return {k: _unflatten(v, arrays, device) for k, v in node["__dict__"].items()}
        if "__list__" in node:
            items = [_unflatten(v, arrays, device) for v in node["__list__"]]
            return tuple(items) if node.get("tuple") else items
    return node


def save(obj: Any, path: str) -> None:
    """Write ``obj`` to ``path`` (a ``.npz`` file) atomically."""
    arrays: dict = {}
    structure = json.dumps({"format": FORMAT, "root": _flatten(obj, arrays)})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, __structure__=np.array(structure), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path: str, device: Optional[str] = None) -> Any:
    """Read what ``save`` wrote. Arrays come back as NumPy arrays, or on ``device`` if given.

    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` for a truncated,
    foreign or pickled file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"md.load: no such file {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "__structure__" not in archive.files:
                raise CheckpointError(f"md.load: {path!r} is an .npz file but not a minidl "
                                      f"checkpoint (no __structure__ entry)")
            meta = json.loads(str(archive["__structure__"]))
            arrays = {k: archive[k] for k in archive.files if k != "__structure__"}
    except CheckpointError:
        raise
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise CheckpointError(f"md.load: {path!r} holds pickled objects, which minidl "
                                  f"never loads (unsafe)") from error
        raise CheckpointError(f"md.load: {path!r} is not a readable checkpoint: {error}") \
            from error
    except (OSError, zipfile.BadZipFile, EOFError, json.JSONDecodeError, KeyError) as error:
        raise CheckpointError(f"md.load: {path!r} is truncated or not a minidl checkpoint "
                              f"({type(error).__name__}: {error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"md.load: {path!r} has an unknown format "
                              f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
    return _unflatten(meta["root"], arrays, device)


def save_checkpoint(path: str, model: Any, optimizer: Any = None, epoch: int = 0,
                    **extra: Any) -> None:
    """Save model weights, optimizer state and the epoch in one atomic file."""
    save({"model": model.state_dict(),
          "optimizer": optimizer.state_dict() if optimizer is not None else None,
          "epoch": epoch, "extra": extra}, path)


def load_checkpoint(path: str, model: Any, optimizer: Any = None) -> dict:
    """Restore a ``save_checkpoint`` file into ``model`` (and ``optimizer``), on their devices.
    Returns the dict with ``epoch`` and ``extra``."""
    checkpoint = load(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path!r} is a minidl file but not a checkpoint of "
                              f"save_checkpoint (no 'model' entry)")
    model.load_state_dict(checkpoint["model"])
    if optimizer is not None:
        if checkpoint.get("optimizer") is None:
            raise CheckpointError(f"{path!r} holds no optimizer state")
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint
