"""Weight initialisers. Each returns a new array of the given shape (on ``device``); layers
document which one they use.

For a weight of shape (fan_in, fan_out) — minidl's layout, ``y = x @ W``:
    glorot/xavier uniform  U(±√(6 / (fan_in + fan_out)))       Keras' Dense and LSTM kernel
    glorot/xavier normal   N(0, 2 / (fan_in + fan_out))
    he/kaiming uniform     U(±√(6 / fan_in))                     for ReLU layers
    he/kaiming normal      N(0, 2 / fan_in)
    orthogonal             Q of the QR decomposition of N(0, 1)  Keras' LSTM recurrent kernel
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from minidl import backend


def _fans(shape: Sequence[int]) -> tuple:
    if len(shape) < 1:
        raise ValueError(f"initialisers need at least 1 dimension, got shape {tuple(shape)}")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[0] * receptive, shape[1] * receptive


def uniform(shape, low: float = -0.05, high: float = 0.05, dtype="float32", device="cpu") -> Any:
    """U(low, high); Keras' Embedding default is U(−0.05, 0.05)."""
    return backend.random_uniform(tuple(shape), low, high, dtype, device)


def normal(shape, mean: float = 0.0, std: float = 1.0, dtype="float32", device="cpu") -> Any:
    """N(mean, std²)."""
    return backend.random_normal(tuple(shape), mean, std, dtype, device)


def zeros(shape, dtype="float32", device="cpu") -> Any:
    return backend.array_module_for(device).zeros(tuple(shape), dtype=dtype)


def ones(shape, dtype="float32", device="cpu") -> Any:
    return backend.array_module_for(device).ones(tuple(shape), dtype=dtype)


def glorot_uniform(shape, gain: float = 1.0, dtype="float32", device="cpu") -> Any:
    fan_in, fan_out = _fans(shape)
    limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -limit, limit, dtype, device)


def glorot_normal(shape, gain: float = 1.0, dtype="float32", device="cpu") -> Any:
    fan_in, fan_out = _fans(shape)
    return normal(shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype, device)


def he_uniform(shape, dtype="float32", device="cpu") -> Any:
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6.0 / fan_in)
    return uniform(shape, -limit, limit, dtype, device)


def he_normal(shape, dtype="float32", device="cpu") -> Any:
    fan_in, _ = _fans(shape)
    return normal(shape, 0.0, math.sqrt(2.0 / fan_in), dtype, device)


def orthogonal(shape, gain: float = 1.0, dtype="float32", device="cpu") -> Any:
    """A matrix with orthonormal rows or columns (sign-corrected QR of a Gaussian matrix), so
    repeated multiplication neither explodes nor vanishes — good for recurrent weights."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = backend.generator("cpu").normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique, so the result is uniform
    if rows < cols:
        q = q.T
    return backend.to_device((gain * q).reshape(shape).astype(dtype), device)


xavier_uniform, xavier_normal = glorot_uniform, glorot_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal

INITIALIZERS = {name: fn for name, fn in globals().items() if name in (
    "uniform", "normal", "zeros", "ones", "glorot_uniform", "glorot_normal", "he_uniform",
    "he_normal", "orthogonal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
    "kaiming_normal")}


def get(name: str) -> Callable[..., Any]:
    """An initialiser ``fn(shape, dtype=..., device=...) -> array`` by its name (Keras' and
    PyTorch's, e.g. ``'glorot_uniform'``, ``'xavier_uniform'``); ``minidl.keras.initializers``
    resolves its names here."""
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(f"unknown initialiser {name!r}; expected one of "
                         f"{sorted(INITIALIZERS)}") from None
