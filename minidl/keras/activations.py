"""Keras' activation functions by name (``Dense(8, activation='relu')``), from
``minidl.functions`` (each with its derivative and a gradient check there).

    linear, sigmoid, tanh, relu, softmax, exponential, log_softmax,
    elu, selu, softplus, softsign, swish (= silu), gelu (erf form), mish,
    hard_sigmoid (Keras 2's clip(0.2x + 0.5, 0, 1)), relu6, leaky_relu (slope 0.2)
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

from minidl import functions as F
from minidl.autograd import Tensor


def linear(x: Tensor) -> Tensor:
    """The identity (Keras' ``activation=None``)."""
    return x


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Probabilities along the last axis."""
    return F.softmax(x, axis=axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along the last axis, computed stably."""
    return F.log_softmax(x, axis=axis)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return F.elu(x, alpha)


def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    """x·Φ(x); ``approximate=True`` uses the tanh form."""
    return F.gelu(x, "tanh" if approximate else "none")


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    return F.leaky_relu(x, negative_slope)


sigmoid, tanh, relu, exponential = F.sigmoid, F.tanh, F.relu, F.exp
selu, softplus, softsign, mish = F.selu, F.softplus, F.softsign, F.mish
swish = silu = F.silu
hard_sigmoid, relu6 = F.hard_sigmoid, F.relu6

_BY_NAME = {"linear": linear, "sigmoid": sigmoid, "tanh": tanh, "relu": relu,
            "softmax": softmax, "exponential": exponential, "log_softmax": log_softmax,
            "elu": elu, "selu": selu, "softplus": softplus, "softsign": softsign,
            "swish": swish, "silu": silu, "gelu": gelu, "mish": mish,
            "hard_sigmoid": hard_sigmoid, "relu6": relu6, "leaky_relu": leaky_relu}


def get(identifier: Optional[Union[str, Callable[[Tensor], Tensor]]]) -> Callable[[Any], Any]:
    """An activation from a name (``'relu'``, ``'sigmoid'``, ... see the module docstring),
    None (linear) or a function of a Tensor."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(f"unknown activation {identifier!r}; minidl.keras has "
                             f"{sorted(_BY_NAME)} (or pass a function)") from None
    if callable(identifier):
        return identifier
    raise TypeError(f"activation must be a name, None or a function, got "
                    f"{type(identifier).__name__}")


def name_of(activation: Callable) -> str:
    """The Keras name of an activation function (for repr, summaries and configs)."""
    for name, fn in _BY_NAME.items():
        if fn is activation:
            return name
    return getattr(activation, "__name__", repr(activation))


def serialize(activation: Callable) -> str:
    return name_of(activation)


def deserialize(name: str) -> Callable:
    return get(name)
