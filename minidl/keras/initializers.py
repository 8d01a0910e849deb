"""Keras' weight initialisers by name: ``minidl.nn.init`` under Keras' names and defaults.

    'glorot_uniform' U(±√(6/(fan_in+fan_out)))   'glorot_normal'  N(0, 2/(fan_in+fan_out))
    'he_uniform'     U(±√(6/fan_in))             'he_normal'      N(0, 2/fan_in)
    'orthogonal'     QR of a Gaussian matrix     'zeros', 'ones'
    'uniform' / 'random_uniform'  U(−0.05, 0.05) 'normal' / 'random_normal'  N(0, 0.05²)

Every name resolves through ``nn.init.get`` except where Keras' default differs from
``nn.init``'s: Keras' normal has a standard deviation of 0.05, ``nn.init.normal`` of 1.
(Keras' he_normal and glorot_normal are truncated normals; minidl's are plain normals.)
Each returns ``fn(shape, dtype=..., device=...) -> array``.
"""
from __future__ import annotations

from typing import Any, Callable

from minidl.nn import init


def random_normal(shape, dtype="float32", device="cpu") -> Any:
    """Keras' ``RandomNormal()``: N(0, 0.05²)."""
    return init.normal(shape, 0.0, 0.05, dtype, device)


# Keras names whose meaning is not nn.init's (nn.init.uniform's default is already U(±0.05)).
_KERAS_DEFAULTS = {"normal": random_normal, "random_normal": random_normal,
                   "random_uniform": init.uniform}


def get(identifier: Any) -> Callable:
    """An initialiser ``fn(shape, dtype=..., device=...)`` from a Keras name or a function."""
    if isinstance(identifier, str):
        return _KERAS_DEFAULTS.get(identifier) or init.get(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"an initializer must be a name or a function, got "
                    f"{type(identifier).__name__}")
