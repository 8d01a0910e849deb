"""More activation functions, and the piecewise-linear helpers abs, maximum, minimum.

Each primitive is a ``Function`` with its derivative beside it; the others are composites of
primitives (written next to their formula). Their backward passes are first-order only.

    elu(x, α)        x if x > 0, else α(eˣ − 1)          d: 1, else y + α
    selu(x)          λ·elu(x, α), λ ≈ 1.0507, α ≈ 1.6733  (composite)
    softplus(x)      ln(1 + eˣ)                           d: σ(x)
    softsign(x)      x / (1 + |x|)                        d: 1 / (1 + |x|)²
    silu(x) = swish  x·σ(x)                               d: σ(x)(1 + x(1 − σ(x)))
    mish(x)          x·tanh(softplus(x))                  (composite)
    leaky_relu(x, a) x if x > 0, else a·x                 d: 1, else a
    relu6(x)         min(max(x, 0), 6)                    (composite: clip)
    hard_sigmoid(x)  clip(0.2x + 0.5, 0, 1)  (Keras 2's)  (composite: clip)
    abs(x)           |x|                                  d: sign(x), 0 at 0
    maximum(x, y), minimum(x, y)   elementwise, broadcasting; on a tie each side gets half

Stability: softplus is ln(1 + e^−|x|) + max(x, 0), which never overflows; elu uses expm1 of
min(x, 0), so no eˣ is taken for large positive x.
"""
from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.autograd import Function, Tensor, as_tensor
from minidl.functions.elementwise import clip, sigmoid_array, tanh
from minidl.functions.shape import sum_to


def gy_dtype(a: Any, b: Any) -> Any:
    """The dtype of the result of an op on ``a`` and ``b`` (and so of its gradient)."""
    return backend.get_array_module(a).result_type(a, b)


# ----------------------------------------------------------------------------- piecewise linear
class Abs(Function):
    """y = |x|.   dy/dx = sign(x) (0 at 0)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.sign = xp.sign(x)
        return xp.abs(x)

    def backward(self, gy):
        return gy * self.sign


class Maximum(Function):
    """y = max(a, b) elementwise (broadcasting). The gradient goes to the larger input; on a tie
    each gets half (the mean of the two one-sided derivatives)."""

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        self.a_shape, self.b_shape = a.shape, b.shape
        self.a_share = ((a > b) + 0.5 * (a == b)).astype(gy_dtype(a, b))
        return xp.maximum(a, b)

    def backward(self, gy):
        ga = gy * self.a_share
        return sum_to(ga, self.a_shape), sum_to(gy - ga, self.b_shape)


class LeakyReLU(Function):
    """y = x for x > 0, else slope·x.   dy/dx = 1, else slope."""

    def __init__(self, slope: float):
        self.slope = slope

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.factor = xp.where(x > 0, 1.0, self.slope).astype(x.dtype)
        return x * self.factor

    def backward(self, gy):
        return gy * self.factor


def abs(x: Tensor) -> Tensor:  # noqa: A001
    """|x| elementwise; the gradient is sign(x), 0 at 0."""
    return Abs()(x)


def maximum(a: Tensor, b: Any) -> Tensor:
    """max(a, b) elementwise with broadcasting (``b`` may be a number or an array)."""
    return Maximum()(a, as_tensor(b, a))


def minimum(a: Tensor, b: Any) -> Tensor:
    """min(a, b) elementwise with broadcasting: −max(−a, −b)."""
    return -Maximum()(-a, -as_tensor(b, a))


def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    """x for x > 0, else negative_slope·x (0.2 as ``tf.nn.leaky_relu`` and Keras 3)."""
    return LeakyReLU(negative_slope)(x)


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6)."""
    return clip(x, 0.0, 6.0)


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras 2's piecewise-linear sigmoid: clip(0.2x + 0.5, 0, 1)."""
    return clip(x * 0.2 + 0.5, 0.0, 1.0)


# ----------------------------------------------------------------------------- smooth
class ELU(Function):
    """y = x for x > 0, else α(eˣ − 1).   dy/dx = 1, else y + α."""

    differentiable_backward = False

    def __init__(self, alpha: float):
        self.alpha = alpha

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.positive = x > 0
        self.y = xp.where(self.positive, x, self.alpha * xp.expm1(xp.minimum(x, 0)))
        return self.y

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        return gy * xp.where(self.positive, 1.0, self.y + self.alpha)


class Softplus(Function):
    """y = ln(1 + eˣ), computed as ln(1 + e^−|x|) + max(x, 0).   dy/dx = σ(x)."""

    differentiable_backward = False

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.x = x
        return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)

    def backward(self, gy):
        return gy * sigmoid_array(self.x)


class Softsign(Function):
    """y = x / (1 + |x|).   dy/dx = 1 / (1 + |x|)²."""

    differentiable_backward = False

    def forward(self, x):
        self.denominator = 1 + backend.get_array_module(x).abs(x)
        return x / self.denominator

    def backward(self, gy):
        return gy / (self.denominator * self.denominator)


class SiLU(Function):
    """y = x·σ(x) (swish).   dy/dx = σ(x)(1 + x(1 − σ(x)))."""

    differentiable_backward = False

    def forward(self, x):
        self.x, self.s = x, sigmoid_array(x)
        return x * self.s

    def backward(self, gy):
        s = self.s
        return gy * s * (1 + self.x * (1 - s))


_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x for x > 0, else α(eˣ − 1)."""
    return ELU(alpha)(x)


def selu(x: Tensor) -> Tensor:
    """Scaled ELU: λ·elu(x, α) with λ ≈ 1.0507, α ≈ 1.6733 (self-normalising networks)."""
    return ELU(_SELU_ALPHA)(x) * _SELU_SCALE


def softplus(x: Tensor) -> Tensor:
    """ln(1 + eˣ), stable for any x; the derivative is σ(x)."""
    return Softplus()(x)


def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|); values in (−1, 1)."""
    return Softsign()(x)


def silu(x: Tensor) -> Tensor:
    """x·σ(x), also called swish."""
    return SiLU()(x)


swish = silu


def mish(x: Tensor) -> Tensor:
    """x·tanh(softplus(x))."""
    return x * tanh(softplus(x))
