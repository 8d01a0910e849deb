"""Saving and loading: ``.npz`` files, never pickle, written atomically.

``md.save(obj, path)`` takes a nested structure of dicts, lists, arrays/Tensors, numbers,
strings, booleans and None (a model's ``state_dict()``, an optimizer's, an epoch number ...).
Arrays become the ``.npz`` members; the structure is stored beside them as JSON, so loading
needs no pickle (``allow_pickle=False``) and a foreign or damaged file fails with a clear error.

Atomic: the file is written to a temporary name in the same folder and then renamed over the
target (``os.replace``), so a crash mid-save leaves the previous file intact. The temporary is
``.NAME.tmp-PID-XXXXXXXX`` beside ``NAME``; a process killed mid-save (SIGKILL, power loss)
leaves it behind, and the next save to ``NAME`` removes the ones whose process is gone.
The file gets the mode ``open()`` would give (0666 less the umask), or keeps the mode of the
file it replaces.

Hostile files: ``load`` reads each member itself (never through pickle) and refuses, with a
``CheckpointError`` naming the member, a compressed member (``save`` never compresses, and a
few MiB of deflate can expand to GiB) and one whose header declares more data than it stores
(as safetensors checks its header against the file size) — so a small file can never make
``load`` allocate a huge array.
"""
from __future__ import annotations

import json
import os
import secrets
import stat
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


def _unflatten(node: Any, arrays: dict, device: Optional[str], path: str,
               where: str = "root") -> Any:
    """The object that ``_flatten`` stored: ``arrays`` put back where the skeleton names them.
    ``where`` says where ``node`` sits (``root['model']['W']``), for errors."""
    if isinstance(node, dict):
        if "__array__" in node:
            key = node["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise CheckpointError(f"md.load: {path!r} is damaged: {where} refers to the "
                                      f"array {key!r}, which the file does not hold (it holds "
                                      f"{sorted(arrays) or 'no arrays'})")
            array = arrays[key]
            return array if device is None else backend.to_device(array, device)
        if "__dict__" in node:
            items = node["__dict__"]
            if not isinstance(items, dict):
                raise CheckpointError(f"md.load: {path!r} is damaged: {where} should be a dict "
                                      f"of entries, got {type(items).__name__}")
            return {k: _unflatten(v, arrays, device, path, f"{where}[{k!r}]")
                    for k, v in items.items()}
        if "__list__" in node:
            items = node["__list__"]
            if not isinstance(items, list):
                raise CheckpointError(f"md.load: {path!r} is damaged: {where} should be a list "
                                      f"of entries, got {type(items).__name__}")
            values = [_unflatten(v, arrays, device, path, f"{where}[{i}]")
                      for i, v in enumerate(items)]
            return tuple(values) if node.get("tuple") else values
    return node


def _is_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (when unsure, it is assumed to)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, OverflowError):  # another user's process, or no os.kill
        return True
    return True


def _remove_stale_temporaries(folder: str, name: str) -> None:
    """Delete the ``.NAME.tmp-PID-*`` files of earlier saves to ``NAME`` whose process is gone
    (killed mid-save); a save still running in another process keeps its file."""
    prefix = f".{name}.tmp-"
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-")[0]
        if pid.isdigit() and not _is_alive(int(pid)):
            try:
                os.remove(os.path.join(folder, entry))
            except OSError:
                pass


def save(obj: Any, path: str) -> None:
    """Write ``obj`` to ``path`` (a ``.npz`` file) atomically.

    The new file's mode is what ``open(path, 'w')`` gives (0666 less the umask); a file that is
    replaced keeps its own mode. Stale temporaries of killed saves to ``path`` are removed.
    """
    arrays: dict = {}
    structure = json.dumps({"format": FORMAT, "root": _flatten(obj, arrays)})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temporaries(folder, name)
    try:
        mode: Optional[int] = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = None  # a new file: the umask decides, as for open()
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        # O_EXCL: never write through a file or link someone else put there; 0o666 & ~umask
        handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, "wb") as f:
            np.savez(f, __structure__=np.array(structure), **arrays)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


_NPY_MAGIC = b"\x93NUMPY"


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> np.ndarray:
    """One ``.npy`` member as an array, after checking that it is stored uncompressed and that
    its header's shape and dtype account for exactly the bytes it stores."""
    member = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        raise CheckpointError(f"md.load: member {member!r} of {path!r} is compressed; md.save "
                              f"never compresses, so this is not a minidl checkpoint (refused: "
                              f"decompressing it could need any amount of memory)")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(f)
        except ValueError as error:
            raise CheckpointError(f"md.load: member {member!r} of {path!r} is not a NumPy "
                                  f"array ({error})") from None
        if dtype.hasobject:
            raise CheckpointError(f"md.load: member {member!r} of {path!r} holds pickled "
                                  f"objects, which minidl never loads (unsafe)")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        stored = info.file_size - f.tell()
        if declared != stored:
            raise CheckpointError(f"md.load: member {member!r} of {path!r} declares shape "
                                  f"{shape} of {dtype} ({declared:,} bytes) but stores "
                                  f"{stored:,} bytes: the file is damaged or forged")
        array = np.empty(shape[::-1] if fortran_order else shape, dtype)
        buffer, filled = memoryview(array.reshape(-1).view(np.uint8)), 0
        while filled < declared:  # the size is checked, so this reads only what is stored
            count = f.readinto(buffer[filled:])
            if not count:
                raise CheckpointError(f"md.load: member {member!r} of {path!r} is truncated")
            filled += count
    return array.transpose() if fortran_order else array


def _read_archive(path: str) -> dict:
    """The members of the ``.npz`` file at ``path``, name -> array, each checked."""
    with open(path, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head == _NPY_MAGIC:
        raise CheckpointError(f"md.load: {path!r} is a single NumPy array (.npy), not a minidl "
                              f"checkpoint (an .npz written by md.save); read it with "
                              f"numpy.load({path!r}, allow_pickle=False)")
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            member = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            arrays[member] = _read_member(archive, info, path)
    return arrays


def load(path: str, device: Optional[str] = None) -> Any:
    """Read what ``save`` wrote. Arrays come back as NumPy arrays, or on ``device`` if given.

    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` for a truncated,
    foreign, compressed, forged or pickled file, naming the file and the member or entry.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"md.load: no such file {path!r}")
    if os.path.isdir(path):
        raise CheckpointError(f"md.load: {path!r} is a folder, not a checkpoint file")
    try:
        arrays = _read_archive(path)
        if "__structure__" not in arrays:
            raise CheckpointError(f"md.load: {path!r} is an .npz file but not a minidl "
                                  f"checkpoint (no __structure__ entry)")
        meta = json.loads(str(arrays.pop("__structure__")))
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"md.load: {path!r} is not a minidl checkpoint: its structure "
                              f"is nested too deeply to read") from None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, KeyError) as error:
        raise CheckpointError(f"md.load: {path!r} is truncated or not a minidl checkpoint "
                              f"({type(error).__name__}: {error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"md.load: {path!r} has an unknown format "
                              f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
    if "root" not in meta:
        raise CheckpointError(f"md.load: {path!r} is damaged: its structure has no 'root'")
    try:
        return _unflatten(meta["root"], arrays, device, path)
    except RecursionError:
        raise CheckpointError(f"md.load: {path!r} is not a minidl checkpoint: its structure "
                              f"is nested too deeply to read") from None


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
