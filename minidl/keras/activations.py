"""Keras' activation functions by name (``Dense(8, activation='relu')``), from minidl.functions."""
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


sigmoid, tanh, relu, exponential = F.sigmoid, F.tanh, F.relu, F.exp

_BY_NAME = {"linear": linear, "sigmoid": sigmoid, "tanh": tanh, "relu": relu,
            "softmax": softmax, "exponential": exponential}


def get(identifier: Optional[Union[str, Callable[[Tensor], Tensor]]]) -> Callable[[Any], Any]:
    """An activation from a name (``'relu'``, ``'sigmoid'``, ``'tanh'``, ``'softmax'``,
    ``'exponential'``, ``'linear'``), None (linear) or a function of a Tensor."""
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
    """The Keras name of an activation function (for repr and summaries)."""
    for name, fn in _BY_NAME.items():
        if fn is activation:
            return name
    return getattr(activation, "__name__", repr(activation))
