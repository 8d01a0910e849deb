"""Which array module holds the data: NumPy on the CPU, CuPy on a CUDA GPU.

Every op gets its array module from its inputs (``xp = get_array_module(x)``) and calls
``xp.exp``, ``xp.matmul`` ... so the same code runs on both. This file is the only place that
knows the two apart; the few calls whose names differ between NumPy and CuPy live here.

Devices:
    ``'cpu'``    NumPy arrays.
    ``'cuda'``   CuPy arrays (needs ``pip install "minidl[gpu]"`` and a CUDA device).
    ``'strict'`` a CPU array that refuses implicit host conversion the way CuPy does
                 (see ``minidl._strict``). Tests run the op suite through it so that code
                 which only works on NumPy is caught on machines without a GPU.

The default device of new tensors comes from the environment variable ``MINIDL_DEVICE``
(``cpu`` when unset), read each time a tensor is created.
"""
from __future__ import annotations

import os
import types
from typing import Any, Optional

import numpy as np

DEVICES = ("cpu", "cuda", "strict")


class DeviceError(TypeError):
    """A tensor is on the wrong device, or a device cannot be used."""


# ----------------------------------------------------------------------------- CuPy, lazily
_cupy: Any = None


def _import_cupy():
    """Import CuPy on first use. Importing it never touches the GPU, so it can succeed on a
    machine without one; ``cuda.is_available()`` is the real test."""
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as error:
            raise DeviceError(
                "device 'cuda' needs CuPy: pip install \"minidl[gpu]\" (cupy-cuda12x) "
                "on a machine with an NVIDIA GPU") from error
        _cupy = cupy
    return _cupy


def _cuda_is_available() -> bool:
    """True when CuPy is installed *and* a CUDA device can be used."""
    try:
        cupy = _import_cupy()
        return bool(cupy.cuda.is_available())
    except Exception:  # no CuPy, no driver, no device: all mean "not available"
        return False


def _cuda_synchronize() -> None:
    """Wait for queued GPU work to finish (for honest timings); nothing to do without a GPU."""
    if _cuda_is_available():
        _import_cupy().cuda.get_current_stream().synchronize()


def _cuda_empty_cache() -> None:
    """Hand the free blocks of CuPy's memory pool back to the driver (CuPy keeps freed GPU
    memory for reuse, so ``nvidia-smi`` shows it as used until this is called)."""
    if _cuda_is_available():
        cupy = _import_cupy()
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


cuda = types.SimpleNamespace(is_available=_cuda_is_available, synchronize=_cuda_synchronize,
                             empty_cache=_cuda_empty_cache)
cuda.__doc__ = ("md.cuda.is_available(): whether tensors can be moved to 'cuda'; "
                "md.cuda.synchronize(); md.cuda.empty_cache().")


def _strict():
    from minidl import _strict
    return _strict


# ----------------------------------------------------------------------------- array modules
def get_array_module(*arrays: Any):
    """The array module (``numpy``, ``cupy`` or the strict test module) that holds ``arrays``.

    Python scalars and NumPy scalars count as NumPy. The first non-NumPy array decides.
    """
    for a in arrays:
        kind = type(a)
        if kind is _NDARRAY or not hasattr(a, "shape") or isinstance(a, np.generic):
            continue
        module = kind.__module__
        if module.startswith("cupy"):
            return _import_cupy()
        if module == "minidl._strict":
            return _strict().strict_numpy
    return np


_NDARRAY = np.ndarray


def device_of(array: Any) -> str:
    """``'cpu'``, ``'cuda'`` or ``'strict'`` for an array."""
    kind = type(array).__module__
    if kind.startswith("cupy"):
        return "cuda"
    return "strict" if kind == "minidl._strict" else "cpu"


def array_module_for(device: str):
    """The array module of a device name."""
    device = check_device(device)
    if device == "cpu":
        return np
    if device == "strict":
        return _strict().strict_numpy
    if not _cuda_is_available():
        raise DeviceError("device 'cuda' was asked for, but no CUDA device is available "
                          "(md.cuda.is_available() is False). Use device='cpu'.")
    return _import_cupy()


def check_device(device: Optional[str]) -> str:
    """Normalise a device name (``None`` means the default); raise on an unknown one."""
    if device is None:
        return default_device()
    name = str(device).lower()
    if name.startswith("cuda:"):  # one GPU is all minidl uses; accept torch-style names
        name = "cuda"
    if name == "gpu":
        name = "cuda"
    if name not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    return name


def default_device() -> str:
    """The device of new tensors: ``MINIDL_DEVICE``, or ``'cpu'`` when unset."""
    return check_device(os.environ.get("MINIDL_DEVICE") or "cpu")


# ----------------------------------------------------------------------------- moving arrays
def to_numpy(array: Any, copy: bool = False) -> np.ndarray:
    """A host NumPy array with the values of ``array`` (always a copy when it lives on a device;
    for a host array only when ``copy``)."""
    if isinstance(array, np.ndarray):
        return array.copy() if copy else array
    if isinstance(array, np.generic):
        return np.asarray(array)
    if hasattr(array, "get"):  # CuPy and strict arrays copy to the host with .get()
        return array.get()
    return np.asarray(array)


def to_device(array: Any, device: str) -> Any:
    """``array`` on ``device`` (the same object when it is already there)."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    host = to_numpy(array)
    if device == "cpu":
        return host
    return array_module_for(device).asarray(host)


def host_array(data: Any, dtype: Any = None) -> np.ndarray:
    """A new host array from Python data (lists, numbers) or a host array."""
    return np.array(data, dtype=dtype)


def as_array(data: Any, device: str) -> Any:
    """``data`` (an array of any device, a list or a number) as an array on ``device``; the same
    object when it is already an array there."""
    return to_device(data if hasattr(data, "shape") else host_array(data), device)


def ensure_array(value: Any, xp=np) -> Any:
    """NumPy returns scalars (``np.float32``) from 0-d operations; keep tensors' data arrays."""
    if isinstance(value, np.generic) and xp is np:
        return np.asarray(value)
    return value


# ----------------------------------------------------------------------------- where they differ
def scatter_add(target: Any, indices: Any, values: Any) -> None:
    """``target[indices] += values`` where repeated indices all add up (in place).

    NumPy spells it ``np.add.at``; CuPy ``cupy.add.at`` (v12+) or ``cupyx.scatter_add``.
    Indexing along the first axis of a 2-D target with 1-D ``indices`` is done on the flattened
    array, which NumPy runs several times faster than ``add.at`` on rows.
    """
    xp = get_array_module(target)
    if target.ndim == 2 and getattr(indices, "ndim", 0) == 1 and indices.dtype.kind in "iu" \
            and values.shape == (len(indices), target.shape[1]) and target.flags.c_contiguous:
        rows, width = target.shape
        indices = xp.asarray(indices)  # host ids are uploaded, as indexing would
        indices = xp.where(indices < 0, indices + rows, indices)
        flat = (indices[:, None] * width + xp.arange(width)).ravel()
        xp.add.at(target.reshape(-1), flat, values.ravel())
        return
    if hasattr(xp.add, "at"):
        xp.add.at(target, indices, values)
    else:  # older CuPy
        import cupyx
        cupyx.scatter_add(target, indices, values)


_seed: Optional[int] = None
_generators: dict = {}


def manual_seed(seed: int) -> None:
    """Seed minidl's random numbers on every device (initialisers, dropout, shuffling)."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device: str = "cpu"):
    """The random generator of a device: ``numpy.random.Generator`` or ``cupy.random``'s.

    Each device has its own stream, seeded from ``manual_seed`` (fresh entropy when unset).
    """
    device = check_device(device)
    if device not in _generators:
        if device == "cuda":
            _generators[device] = _import_cupy().random.RandomState(
                None if _seed is None else _seed)
        else:
            _generators[device] = np.random.default_rng(_seed)
    return _generators[device]


def random_uniform(shape, low: float, high: float, dtype, device: str = "cpu") -> Any:
    """Samples of U(low, high) on ``device``."""
    device = check_device(device)
    if device == "cuda":
        return generator("cuda").uniform(low, high, size=shape).astype(dtype, copy=False)
    values = generator(device).uniform(low, high, size=shape).astype(dtype, copy=False)
    return to_device(values, device)


def random_normal(shape, mean: float, std: float, dtype, device: str = "cpu") -> Any:
    """Samples of N(mean, std²) on ``device``."""
    device = check_device(device)
    if device == "cuda":
        return generator("cuda").normal(mean, std, size=shape).astype(dtype, copy=False)
    values = generator(device).normal(mean, std, size=shape).astype(dtype, copy=False)
    return to_device(values, device)


def permutation(n: int) -> np.ndarray:
    """A random permutation of ``range(n)`` on the host (for shuffling data sets)."""
    return generator("cpu").permutation(n)
