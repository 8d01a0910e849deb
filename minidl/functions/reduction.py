"""Reductions: sum, mean, max (and min) over all elements or over axes, with ``keepdims``."""
from __future__ import annotations

from typing import Optional, Union

from minidl.autograd import Function, Tensor
from minidl.functions.shape import broadcast_to

Axis = Optional[Union[int, tuple]]


def _reduced_axes(ndim: int, axis: Axis) -> set:
    if axis is None:
        return set(range(ndim))
    axes = (axis,) if isinstance(axis, int) else axis
    for a in axes:
        if not -ndim <= a < (ndim or 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return {a % ndim for a in axes} if ndim else set()


def _kept_shape(shape: tuple, axis: Axis) -> tuple:
    """The shape of the reduction with keepdims=True: reduced axes become 1."""
    axes = _reduced_axes(len(shape), axis)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    """y = Σ x over ``axis``.   dx = gy broadcast back over the summed axes."""

    def __init__(self, axis: Axis, keepdims: bool):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        return broadcast_to(gy.reshape(_kept_shape(self.x_shape, self.axis)), self.x_shape)


class Max(Function):
    """y = max x over ``axis``.   dx = gy at the maximum; ties share it equally."""

    def __init__(self, axis: Axis, keepdims: bool):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        y = x.max(axis=self.axis, keepdims=True)
        is_max = x == y
        # Which element won is not differentiable, so these weights are constants of backward.
        self.weights = (is_max / is_max.sum(axis=self.axis, keepdims=True)).astype(x.dtype)
        if self.keepdims:
            return y
        return y.reshape(tuple(n for i, n in enumerate(x.shape)
                               if i not in _reduced_axes(x.ndim, self.axis)))

    def backward(self, gy):
        return gy.reshape(_kept_shape(self.weights.shape, self.axis)) * self.weights


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum of elements over ``axis`` (all when None). Shape: reduced axes dropped unless keepdims."""
    return Sum(axis, keepdims)(x)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``: the sum divided by the number of summed elements."""
    count = 1
    for i in _reduced_axes(x.ndim, axis):
        count *= x.shape[i]
    return Sum(axis, keepdims)(x) * (1.0 / (count or 1))


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest element over ``axis``. The gradient goes to the maximum (split among ties)."""
    if x.size == 0:
        raise ValueError("max() of an empty tensor")
    return Max(axis, keepdims)(x)


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest element over ``axis``: -max(-x)."""
    return -max(-x, axis=axis, keepdims=keepdims)
