"""Keras' weight initialisers by name, made from ``minidl.nn.init`` with Keras' defaults.

    'glorot_uniform' U(±√(6/(fan_in+fan_out)))   'glorot_normal'  N(0, 2/(fan_in+fan_out))
    'he_uniform'     U(±√(6/fan_in))             'he_normal'      N(0, 2/fan_in)
    'orthogonal'     QR of a Gaussian matrix     'zeros', 'ones'
    'uniform' / 'random_uniform'  U(−0.05, 0.05) 'normal' / 'random_normal'  N(0, 0.05²)

(Keras' he_normal and glorot_normal are truncated normals; minidl's are plain normals.)
Each returns ``fn(shape, dtype, device) -> array``.
"""
from __future__ import annotations

from typing import Any, Callable

from minidl.nn import init


def _random_uniform(shape, dtype="float32", device="cpu"):
    return init.uniform(shape, -0.05, 0.05, dtype, device)


def _random_normal(shape, dtype="float32", device="cpu"):
    return init.normal(shape, 0.0, 0.05, dtype, device)


def _with_dtype(fn: Callable) -> Callable:
    def make(shape, dtype="float32", device="cpu"):
        return fn(shape, dtype=dtype, device=device)
    make.__name__ = fn.__name__
    return make


_BY_NAME = {
    "glorot_uniform": _with_dtype(init.glorot_uniform),
    "glorot_normal": _with_dtype(init.glorot_normal),
    "he_uniform": _with_dtype(init.he_uniform),
    "he_normal": _with_dtype(init.he_normal),
    "orthogonal": _with_dtype(init.orthogonal),
    "zeros": _with_dtype(init.zeros), "ones": _with_dtype(init.ones),
    "uniform": _random_uniform, "random_uniform": _random_uniform,
    "normal": _random_normal, "random_normal": _random_normal,
}


def get(identifier: Any) -> Callable:
    """An initialiser ``fn(shape, dtype, device)`` from a Keras name or a function."""
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(f"unknown initializer {identifier!r}; minidl.keras has "
                             f"{sorted(_BY_NAME)}") from None
    if callable(identifier):
        return identifier
    raise TypeError(f"an initializer must be a name or a function, got "
                    f"{type(identifier).__name__}")
