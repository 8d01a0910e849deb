"""Devices: where arrays live, and the only part of minidl that knows NumPy from CuPy.

Every op gets its array module from its inputs (``xp = get_array_module(x)``) and calls
``xp.exp``, ``xp.matmul`` ... so the same code runs on every device. What differs between
devices is described once per device, in a file of this package that defines ``DEVICE``:

    ``cpu.py``     ``'cpu'``    NumPy arrays (the default).
    ``cuda.py``    ``'cuda'``   CuPy arrays on a GPU (``pip install "minidl[gpu]"``); fused kernels.
    ``strict.py``  ``'strict'`` a CPU array that refuses implicit host copies the way CuPy does,
                               so tests catch GPU-only bugs on machines without a GPU.

Adding a device means adding one such file (see ``device.py`` for what it describes).
``workspace.py`` recycles large scratch buffers between calls (memory management for the fused
LSTM); ``blocks.py`` runs a fused op's NumPy kernel over cache-sized blocks of rows.
``communicator.py`` (MPI, and one process without it) and ``nccl.py`` (NCCL between GPUs)
carry arrays between the processes of a data-parallel job (``minidl.distributed``). The default device of new tensors comes from the environment variable
``MINIDL_DEVICE`` (``cpu`` when unset), read each time a tensor is created.
"""
from __future__ import annotations

import importlib
import math
import os
import pkgutil
import types
from typing import Any, Dict, Optional

import numpy as np

from minidl.backend.device import Device, DeviceError

__all__ = ["Device", "DeviceError", "DEVICES", "cuda", "get_device", "array_device",
           "get_array_module", "device_of", "array_module_for", "check_device",
           "default_device", "to_numpy", "to_device", "to_device_array", "host_array",
           "ensure_array", "scatter_add", "broadcast_array", "erf", "elementwise_kernel",
           "manual_seed", "generator", "random_uniform", "random_normal", "permutation"]


def _find_devices() -> Dict[str, Device]:
    """Every ``DEVICE`` defined by a module of this package, by name (the CPU first)."""
    found: Dict[str, Device] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name != "cpu"):
        device = getattr(importlib.import_module(f"{__name__}.{info.name}"), "DEVICE", None)
        if isinstance(device, Device):
            found[device.name] = device
    return found


DEVICES: Dict[str, Device] = _find_devices()
_ALIASES = {"gpu": "cuda"}  # and torch-style "cuda:0": one GPU is all minidl uses


# ----------------------------------------------------------------------------- devices by name
def check_device(device: Optional[str]) -> str:
    """Normalise a device name (``None`` means the default); raise on an unknown one."""
    if device is None:
        return default_device()
    name = str(device).lower()
    name = _ALIASES.get(name, name.split(":")[0] if name.startswith("cuda:") else name)
    if name not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    return name


def default_device() -> str:
    """The device of new tensors: ``MINIDL_DEVICE``, or ``'cpu'`` when unset."""
    return check_device(os.environ.get("MINIDL_DEVICE") or "cpu")


def get_device(device: Optional[str] = None) -> Device:
    """The ``Device`` of a name (``None``: the default), checked to be usable here."""
    found = DEVICES[check_device(device)]
    if not found.is_available():
        raise DeviceError(f"device {found.name!r} was asked for, but "
                          f"{found.unavailable_reason()}. Use device='cpu'.")
    return found


def array_module_for(device: str) -> Any:
    """The array module of a device name."""
    return get_device(device).xp


# ----------------------------------------------------------------------------- devices of arrays
_device_of_type: Dict[type, Device] = {}   # learnt on first sight of each array type
_NDARRAY = np.ndarray
_CPU = DEVICES["cpu"]


def _device_of_type_(kind: type) -> Device:
    found = _device_of_type.get(kind)
    if found is None:
        # Anything no device owns (lists, Python numbers) is host data.
        found = next((d for d in DEVICES.values() if d.owns(kind)), _CPU)
        _device_of_type[kind] = found
    return found


def array_device(array: Any) -> Device:
    """The ``Device`` that holds ``array``."""
    kind = type(array)
    return _CPU if kind is _NDARRAY else _device_of_type_(kind)


def device_of(array: Any) -> str:
    """``'cpu'``, ``'cuda'`` or ``'strict'`` for an array."""
    return array_device(array).name


def get_array_module(*arrays: Any) -> Any:
    """The array module (``numpy``, ``cupy`` or the strict test module) that holds ``arrays``.

    Python scalars and NumPy scalars count as NumPy. The first non-NumPy array decides.
    """
    for a in arrays:
        kind = type(a)
        if kind is not _NDARRAY:
            device = _device_of_type_(kind)
            if device is not _CPU:
                return device.xp
    return np


# ----------------------------------------------------------------------------- moving arrays
def to_numpy(array: Any, copy: bool = False) -> np.ndarray:
    """A host NumPy array with the values of ``array`` (always a copy when it lives on a device;
    for a host array only when ``copy``)."""
    if isinstance(array, np.ndarray):
        return array.copy() if copy else array
    return array_device(array).to_host(array)


def to_device(array: Any, device: str) -> Any:
    """``array`` on ``device`` (the same object when it is already there)."""
    target = DEVICES[check_device(device)]
    source = array_device(array)
    if source is target:
        return array
    host = source.to_host(array)
    return get_device(target.name).from_host(host)


def host_array(data: Any, dtype: Any = None) -> np.ndarray:
    """A new host array from Python data (lists, numbers) or a host array."""
    return np.array(data, dtype=dtype)


def to_device_array(data: Any, device: str) -> Any:
    """``data`` (an array of any device, a list or a number) as an array on ``device``; the same
    object when it is already an array there. (Targets and masks meet their predictions here.)"""
    return to_device(data if hasattr(data, "shape") else host_array(data), device)


def ensure_array(value: Any, xp: Any = np) -> Any:
    """NumPy returns scalars (``np.float32``) from 0-d operations; keep tensors' data arrays."""
    if isinstance(value, np.generic) and xp is np:
        return np.asarray(value)
    return value


# ----------------------------------------------------------------------------- where devices differ
def scatter_add(target: Any, indices: Any, values: Any) -> None:
    """``target[indices] += values`` where repeated indices all add up (in place).

    Indexing along the first axis of a 2-D target with 1-D ``indices`` is done on the flattened
    array, which NumPy runs several times faster than ``add.at`` on rows (an embedding's
    gradient, (5000, 64) from 3,200 ids: 0.48 vs 1.34 ms) — except for small targets, where
    building the flat indices costs more than it saves ((2, 2): 4.7 vs 0.95 µs); the rest is
    the device's own scatter-add (``np.add.at``, ``cupy.add.at`` or ``cupyx.scatter_add``).
    """
    device = array_device(target)
    xp = device.xp
    if target.ndim == 2 and target.size > 1024 and getattr(indices, "ndim", 0) == 1 \
            and indices.dtype.kind in "iu" \
            and values.shape == (len(indices), target.shape[1]) and target.flags.c_contiguous:
        rows, width = target.shape
        indices = xp.asarray(indices)  # host ids are uploaded, as indexing would
        indices = xp.where(indices < 0, indices + rows, indices)
        flat = (indices[:, None] * width + xp.arange(width)).ravel()
        device.scatter_add(target.reshape(-1), flat, values.ravel())
        return
    device.scatter_add(target, indices, values)


def broadcast_array(array: Any, shape: tuple) -> Any:
    """``array`` repeated along its size-1 (or missing leading) axes to ``shape``: a read-only
    view, or for a small host result (up to 1,024 elements) a new array — filling one takes
    0.2 µs where making NumPy's view takes 1.9, most of the backward of a sum over a few
    elements. Shape: ``array`` must broadcast to ``shape`` (NumPy's ValueError otherwise)."""
    if type(array) is _NDARRAY and math.prod(shape) <= 1024:
        out = np.empty(shape, array.dtype)
        out[...] = array
        return out
    return get_array_module(array).broadcast_to(array, shape)


def erf(x: Any) -> Any:
    """erf(x) elementwise on the device of ``x`` (NumPy has no erf; see ``Device.erf``)."""
    return array_device(x).erf(x)


_kernels: Dict[tuple, Any] = {}


def elementwise_kernel(array: Any, in_params: str, out_params: str, body: str, name: str) -> Any:
    """A fused elementwise kernel for the device that holds ``array``, compiled once, or
    ``None`` where that device has none (then the caller runs its ufunc path).

    ``MINIDL_FUSED=0`` turns fused kernels off everywhere (to compare with the ufunc path).
    """
    device = array_device(array)
    if not device.fused_kernels or os.environ.get("MINIDL_FUSED", "1") == "0":
        return None
    key = (device.name, name)
    if key not in _kernels:
        _kernels[key] = device.elementwise_kernel(in_params, out_params, body, name)
    return _kernels[key]


# ----------------------------------------------------------------------------- random numbers
_seed: Optional[int] = None
_generators: Dict[str, Any] = {}


def manual_seed(seed: int) -> None:
    """Seed minidl's random numbers on every device (initialisers, dropout, shuffling)."""
    global _seed
    _seed = int(seed)
    _generators.clear()


def generator(device: str = "cpu") -> Any:
    """The random generator of a device (``numpy.random.Generator``, CuPy's ``RandomState``),
    whose draws are that device's arrays.

    Each device has its own stream, seeded from ``manual_seed`` (fresh entropy when unset).
    """
    name = check_device(device)
    if name not in _generators:
        _generators[name] = get_device(name).new_generator(_seed)
    return _generators[name]


def random_uniform(shape, low: float, high: float, dtype, device: str = "cpu") -> Any:
    """Samples of U(low, high) on ``device``."""
    return get_device(check_device(device)).uniform(generator(device), shape, low, high, dtype)


def random_normal(shape, mean: float, std: float, dtype, device: str = "cpu") -> Any:
    """Samples of N(mean, std²) on ``device``."""
    return generator(device).normal(mean, std, size=shape).astype(dtype, copy=False)


def permutation(n: int) -> np.ndarray:
    """A random permutation of ``range(n)`` on the host (for shuffling data sets)."""
    return generator("cpu").permutation(n)


# ----------------------------------------------------------------------------- md.cuda
cuda = types.SimpleNamespace(is_available=DEVICES["cuda"].is_available,
                             synchronize=DEVICES["cuda"].synchronize,
                             empty_cache=DEVICES["cuda"].empty_cache)
cuda.__doc__ = ("md.cuda.is_available(): whether tensors can be moved to 'cuda'; "
                "md.cuda.synchronize(); md.cuda.empty_cache().")
