"""Layer normalisation: each sample's features rescaled to mean 0 and variance 1.

    μ = mean(x),  σ² = mean((x − μ)²),  x̂ = (x − μ)/√(σ² + ε),  y = x̂ ⊙ w + b

over the last ``len(normalized_shape)`` axes (PyTorch's ``F.layer_norm``). ``LayerNorm`` is the
fused Function (one pass forward, one backward); ``layer_norm_reference`` is the same formula
written with primitive ops, which autograd differentiates by itself — a test shows they agree.

Backward, with n features per sample and g = dy ⊙ w:

    dx = (1/√(σ² + ε)) · (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))
    dw = Σ dy ⊙ x̂,   db = Σ dy    (sums over every sample axis)

The two means are what the normalisation's own dependence on x takes away: shifting all of x
does not change x̂ (hence − mean(g)), nor does scaling it (hence − x̂ ⊙ mean(g ⊙ x̂)).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

from minidl import backend
from minidl.autograd import Function, ShapeError, Tensor
from minidl.backend.blocks import for_row_blocks

Shape = Union[int, Sequence[int]]


class LayerNorm(Function):
    """inputs: x (..., *normalized_shape), optionally weight and bias (normalized_shape).
    output: y, x's shape."""

    differentiable_backward = False

    def __init__(self, n_axes: int, eps: float):
        self.axes = tuple(range(-n_axes, 0))
        self.eps = eps

    def forward(self, x, *affine):
        xp = backend.get_array_module(x)
        axes, eps = self.axes, self.eps
        weight, bias = affine if affine else (None, None)
        x_hat = xp.empty_like(x)
        rstd = xp.empty(x.shape[:x.ndim - len(axes)] + (1,) * len(axes), dtype=x.dtype)
        y = (xp.empty_like(x),) if affine else ()

        def normalise(x, x_hat, rstd, *y):        # one block of samples (rows are independent)
            mu = x.mean(axis=axes, keepdims=True)
            xp.subtract(x, mu, out=x_hat)                               # x − μ
            var = xp.square(x_hat).mean(axis=axes, keepdims=True)
            xp.sqrt(var + eps, out=rstd)
            xp.divide(1.0, rstd, out=rstd)                              # 1/√(σ² + ε)
            x_hat *= rstd
            for out in y:                                               # y = x̂ ⊙ w + b
                xp.multiply(x_hat, weight, out=out)
                out += bias

        if x.ndim == len(axes):              # one sample: axis 0 is normalised, nothing to split
            normalise(x, x_hat, rstd, *y)
        else:
            for_row_blocks(normalise, x, x_hat, rstd, *y)
        self.x_hat, self.rstd, self.weight = x_hat, rstd, weight
        return y[0] if affine else x_hat.copy()

    def backward(self, gy):
        x_hat, rstd, axes = self.x_hat, self.rstd, self.axes
        # BEGIN EXERCISE layer_norm_backward
        g = gy * self.weight if len(self.inputs) == 3 else gy
        mean_g = g.mean(axis=axes, keepdims=True)
        mean_gx = (g * x_hat).mean(axis=axes, keepdims=True)
        dx = (g - mean_g - x_hat * mean_gx) * rstd
        if len(self.inputs) == 1:
            return dx
        sample_axes = tuple(range(gy.ndim - len(axes)))
        dw = (gy * x_hat).sum(axis=sample_axes) if self.inputs[1].requires_grad else None
        db = gy.sum(axis=sample_axes) if self.inputs[2].requires_grad else None
        return dx, dw, db
        # END EXERCISE


def _normalized_axes(x: Tensor, normalized_shape: Shape) -> Tuple[int, ...]:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise ShapeError(f"layer_norm: normalized_shape {shape} must be the last axes of the "
                         f"input, got input shape {x.shape}")
    return shape


def layer_norm(x: Tensor, normalized_shape: Shape, weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last axes (``normalized_shape``), then scale by ``weight`` and shift by
    ``bias`` (both of shape ``normalized_shape``, or None).

    Shape: x (..., *normalized_shape) -> the same. Stability: ε inside the square root keeps a
    constant feature vector (σ² = 0) finite.
    """
    shape = _normalized_axes(x, normalized_shape)
    if (weight is None) != (bias is None):
        # one of them: the fused op takes both, so fill in the identity for the other
        xp = backend.get_array_module(x.data)
        if weight is None:
            weight = Tensor(xp.ones(shape, dtype=x.dtype))
        else:
            bias = Tensor(xp.zeros(shape, dtype=x.dtype))
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ShapeError(f"layer_norm: {name} must have shape {shape}, got {p.shape}")
    function = LayerNorm(len(shape), eps)
    return function(x) if weight is None else function(x, weight, bias)


def layer_norm_reference(x: Tensor, normalized_shape: Shape, weight: Optional[Tensor] = None,
                         bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    """``layer_norm`` from primitive ops (the readable path; autograd does the backward)."""
    axes = tuple(range(-len(_normalized_axes(x, normalized_shape)), 0))
    mu = x.mean(axis=axes, keepdims=True)
    centred = x - mu
    var = (centred * centred).mean(axis=axes, keepdims=True)
    y = centred / (var + eps) ** 0.5
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
