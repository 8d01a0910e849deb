"""softmax and log_softmax along an axis, in their numerically stable forms."""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Function, Tensor
from minidl.functions.elementwise import exp


class Softmax(Function):
    """yᵢ = exp(xᵢ) / Σⱼ exp(xⱼ).   dx = y ⊙ (gy - Σ(gy ⊙ y)).

    Stability: subtracts max(x) first, so exp never overflows (softmax is unchanged by a shift).
    """

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        # BEGIN EXERCISE softmax_forward
        xp = backend.get_array_module(x)
        y = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y /= y.sum(axis=self.axis, keepdims=True)
        # END EXERCISE
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved_tensors
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """yᵢ = xᵢ - log Σⱼ exp(xⱼ).   dx = gy - softmax(x) · Σ gy.

    Stability: log-sum-exp is computed as m + log Σ exp(x - m) with m = max(x).
    """

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        # BEGIN EXERCISE log_softmax_forward
        xp = backend.get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        # END EXERCISE
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved_tensors
        return gy - exp(y) * gy.sum(axis=self.axis, keepdims=True)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Probabilities along ``axis``: positive, summing to 1. Shape: unchanged."""
    return Softmax(axis)(x)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) along ``axis``, without ever computing log(0). Shape: unchanged."""
    return LogSoftmax(axis)(x)
