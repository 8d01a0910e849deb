"""Arithmetic with NumPy broadcasting: add, sub, mul, div, neg, pow.

When an input was broadcast, its gradient is summed back to its own shape (``sum_to``).
"""
from __future__ import annotations

from typing import Any

from minidl.autograd import Function, Tensor, as_tensor
from minidl.functions.shape import sum_to


class Add(Function):
    """y = a + b.   dy/da = 1, dy/db = 1."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.a_shape), sum_to(gy, self.b_shape)


class Sub(Function):
    """y = a - b.   dy/da = 1, dy/db = -1."""

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.a_shape), sum_to(-gy, self.b_shape)


class Mul(Function):
    """y = a * b.   dy/da = b, dy/db = a."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved_tensors
        x0, x1 = self.inputs
        return (sum_to(gy * b, a.shape) if x0.requires_grad else None,
                sum_to(gy * a, b.shape) if x1.requires_grad else None)


class Div(Function):
    """y = a / b.   dy/da = 1/b, dy/db = -a/b²."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved_tensors
        ga = gy / b
        gb = sum_to(-ga * a / b, b.shape) if self.inputs[1].requires_grad else None
        return sum_to(ga, a.shape), gb


class Neg(Function):
    """y = -x."""

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = x ** c for a constant exponent c.   dy/dx = c·x^(c-1)."""

    def __init__(self, c: float):
        self.c = c

    def forward(self, x):
        self.save_for_backward(x)
        return x ** self.c

    def backward(self, gy):
        x, = self.saved_tensors
        return gy * self.c * x ** (self.c - 1)


def add(a: Tensor, b: Any) -> Tensor:
    """a + b, broadcasting. Shape: broadcast(a.shape, b.shape)."""
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    return Add()(a, b)


def sub(a: Tensor, b: Any) -> Tensor:
    """a - b, broadcasting."""
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    return Sub()(a, b)


def rsub(a: Tensor, b: Any) -> Tensor:
    """b - a (for ``2 - x``)."""
    return Sub()(as_tensor(b, a), a)


def mul(a: Tensor, b: Any) -> Tensor:
    """a * b elementwise, broadcasting."""
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    return Mul()(a, b)


def div(a: Tensor, b: Any) -> Tensor:
    """a / b elementwise, broadcasting."""
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    return Div()(a, b)


def rdiv(a: Tensor, b: Any) -> Tensor:
    """b / a (for ``1 / x``)."""
    return Div()(as_tensor(b, a), a)


def neg(x: Tensor) -> Tensor:
    """-x."""
    return Neg()(x)


def pow(x: Tensor, c: Any) -> Tensor:
    """x ** c. A constant ``c`` is the primitive; a Tensor exponent is exp(c·log x) (x > 0)."""
    if isinstance(c, Tensor):
        from minidl.functions.elementwise import exp, log
        return exp(c * log(x))
    return Pow(c)(x)


def rpow(x: Tensor, base: Any) -> Tensor:
    """base ** x = exp(x · ln base), for a positive base."""
    from minidl.functions.elementwise import exp, log
    return exp(x * log(as_tensor(base, x)))
