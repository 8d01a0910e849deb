"""Matrix products: matmul (2-D and batched, broadcasting) and linear (x @ W + b)."""
from __future__ import annotations

from typing import Any, Optional

from minidl.autograd import Function, ShapeError, Tensor, as_tensor
from minidl.functions.shape import reshape, sum_to


class MatMul(Function):
    """Y = A @ B over the last two axes, leading axes broadcast.

    Shape: A (..., n, k), B (..., k, m) -> Y (..., n, m).
    Backward: dA = dY @ Bᵀ, dB = Aᵀ @ dY, each summed back over broadcast leading axes.
    """

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, gy):
        # BEGIN EXERCISE matmul_backward
        a, b = self.saved_tensors
        ga = gb = None
        if self.inputs[0].requires_grad:
            ga = sum_to(gy @ b.swapaxes(-1, -2), a.shape)
        if self.inputs[1].requires_grad:
            gb = sum_to(a.swapaxes(-1, -2) @ gy, b.shape)
        return ga, gb
        # END EXERCISE


def matmul(a: Tensor, b: Any) -> Tensor:
    """Matrix product with NumPy's rules: 1-D operands are treated as a row (a) or a column (b)
    vector and that axis is dropped from the result; leading axes broadcast.

    Shape: (..., n, k) @ (..., k, m) -> (..., n, m).
    """
    b = as_tensor(b, a)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: operands must have at least 1 dimension, got shapes "
                         f"{a.shape} and {b.shape} (use * for scalars)")
    k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: the last axis "
                         f"of the first ({k_a}) must equal the "
                         f"{'second-to-last' if b.ndim > 1 else 'only'} axis of the second ({k_b})")
    if a.ndim == 1 and b.ndim == 1:
        return (a * b).sum()
    if a.ndim == 1:
        return reshape(MatMul()(reshape(a, 1, k_a), b), b.shape[:-2] + b.shape[-1:])
    if b.ndim == 1:
        return reshape(MatMul()(a, reshape(b, k_b, 1)), a.shape[:-1])
    if b.ndim == 2 and a.ndim > 2:  # (..., k) @ (k, m): one (rows, k) @ (k, m) product, whose
        # backward is one product too (a batched one would sum (batch, k, m) partial products)
        return reshape(MatMul()(reshape(a, -1, k_a), b), *a.shape[:-1], b.shape[-1])
    return MatMul()(a, b)


class Linear(Function):
    """y = x @ W + b — the σ(Wx+b) layer's affine part for row-vector batches.

    Shape: x (..., in), W (in, out), b (out,) -> y (..., out).
    Backward: dx = dy @ Wᵀ;  dW = xᵀ @ dy;  db = Σ dy over the batch (leading axes flattened).
    """

    def forward(self, x, W, b=None):
        self.save_for_backward(x, W)
        # (..., in) as one (rows, in) matrix: one large BLAS call instead of one per leading
        # index (NumPy runs a 3-D @ 2-D product as a loop of 2-D ones)
        y = (x.reshape(-1, W.shape[0]) @ W).reshape(*x.shape[:-1], W.shape[1])
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, W = self.saved_tensors
        n_in, n_out = W.shape
        gx = gW = gb = None
        if self.inputs[0].requires_grad:
            gx = (gy.reshape(-1, n_out) @ W.T).reshape(*gy.shape[:-1], n_in)
        if self.inputs[1].requires_grad:
            gW = x.reshape(-1, n_in).T @ gy.reshape(-1, n_out)
        if len(self.inputs) == 3:
            gb = gy.reshape(-1, n_out).sum(axis=0) if self.inputs[2].requires_grad else None
            return gx, gW, gb
        return gx, gW


def linear(x: Tensor, W: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """x @ W + b.  Shape: x (..., in), W (in, out), b (out,) -> (..., out)."""
    if W.ndim != 2 or x.ndim == 0 or x.shape[-1] != W.shape[0]:
        raise ShapeError(f"linear: x of shape {x.shape} needs W of shape (in, out) with in = "
                         f"x.shape[-1]; got W of shape {W.shape}")
    if b is None:
        return Linear()(x, W)
    if b.shape != (W.shape[1],):
        raise ShapeError(f"linear: b must have shape ({W.shape[1]},) to match W {W.shape}, "
                         f"got {b.shape}")
    return Linear()(x, W, b)
