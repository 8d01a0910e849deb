"""Convolution and max pooling over channels-last data (Keras' layout), through im2col.

``Im2Col`` cuts every kh×kw window (with strides and padding) out of the input and lays the
windows side by side, so that a convolution is one matrix product and a max pooling is one
reduction:

    patches = im2col(x)                      (B, H, W, C) -> (B, Ho, Wo, kh, kw, C)
    conv2d(x, W) = patches·W                 W (kh, kw, C, F) as a (kh·kw·C, F) matrix
    max_pool2d(x) = max of each window       over the (kh, kw) axes

Its backward (col2im) adds each window's gradient back where the window was taken from; where
windows overlap (stride < kernel) the contributions add up. 1-D convolution and pooling
(``conv1d``, ``max_pool1d``: (B, T, C)) are the 2-D ones with a height of 1.

Padding is ``'valid'`` (no padding) or ``'same'`` (TensorFlow's rule: the output has
⌈size / stride⌉ positions; the padding is split with the odd one after). Convolutions pad with
zeros, max pooling with −∞ (a padded position never wins).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

from minidl import backend
from minidl.autograd import Function, ShapeError, Tensor
from minidl.functions.reduction import max as reduce_max

Pair = Union[int, Sequence[int]]


def _pair(value: Pair, name: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return pair


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """(before, after) padding so that the output has ⌈size / stride⌉ positions."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def output_size(size: Optional[int], kernel: int, stride: int, padding: str) -> Optional[int]:
    """Positions along one axis: ⌈size / stride⌉ ('same') or ⌊(size − kernel) / stride⌋ + 1."""
    if size is None:
        return None
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1 if size >= kernel else 0


class Im2Col(Function):
    """x (B, H, W, C) -> patches (B, Ho, Wo, kh, kw, C): patches[b, i, j, p, q] =
    x_padded[b, i·sh + p, j·sw + q]. Backward: col2im, the sum of the windows' gradients."""

    differentiable_backward = False

    def __init__(self, kernel: Tuple[int, int], stride: Tuple[int, int],
                 padding: Tuple[int, int, int, int], pad_value: float = 0.0):
        self.kernel, self.stride, self.padding, self.pad_value = kernel, stride, padding, pad_value

    def _windows(self, Ho: int, Wo: int):
        (kh, kw), (sh, sw) = self.kernel, self.stride
        for p in range(kh):
            for q in range(kw):
                yield p, q, (slice(None), slice(p, p + sh * (Ho - 1) + 1, sh),
                             slice(q, q + sw * (Wo - 1) + 1, sw))

    def forward(self, x):
        xp = backend.get_array_module(x)
        B, H, W, C = x.shape
        top, bottom, left, right = self.padding
        self.x_shape = x.shape
        if any(self.padding):
            padded = xp.full((B, H + top + bottom, W + left + right, C), self.pad_value,
                             dtype=x.dtype)
            padded[:, top:top + H, left:left + W] = x
        else:
            padded = x
        (kh, kw), (sh, sw) = self.kernel, self.stride
        Ho = (padded.shape[1] - kh) // sh + 1
        Wo = (padded.shape[2] - kw) // sw + 1
        if Ho < 1 or Wo < 1:
            raise ShapeError(f"im2col: a {kh}×{kw} window does not fit an input of "
                             f"{H}×{W} (after padding {self.padding})")
        self.padded_shape = padded.shape
        patches = xp.empty((B, Ho, Wo, kh, kw, C), dtype=x.dtype)
        for p, q, window in self._windows(Ho, Wo):
            patches[:, :, :, p, q] = padded[window]
        return patches

    def backward(self, g_patches):
        xp = backend.get_array_module(g_patches)
        Ho, Wo = g_patches.shape[1:3]
        grad = xp.zeros(self.padded_shape, dtype=g_patches.dtype)
        for p, q, window in self._windows(Ho, Wo):
            grad[window] += g_patches[:, :, :, p, q]
        top, _, left, _ = self.padding
        H, W = self.x_shape[1:3]
        return grad[:, top:top + H, left:left + W]


def _paddings(x_shape: Sequence[int], kernel: Tuple[int, int], stride: Tuple[int, int],
              padding: str) -> Tuple[int, int, int, int]:
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding != "same":
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return (*same_padding(x_shape[1], kernel[0], stride[0]),
            *same_padding(x_shape[2], kernel[1], stride[1]))


def im2col(x: Tensor, kernel_size: Pair, stride: Pair = 1, padding: str = "valid",
           pad_value: float = 0.0) -> Tensor:
    """The windows of ``x``. Shape: (B, H, W, C) -> (B, Ho, Wo, kh, kw, C)."""
    if x.ndim != 4:
        raise ShapeError(f"im2col: input must be (batch, height, width, channels), got {x.shape}")
    kernel, stride = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    return Im2Col(kernel, stride, _paddings(x.shape, kernel, stride, padding), pad_value)(x)


def conv2d(x: Tensor, W: Tensor, b: Optional[Tensor] = None, stride: Pair = 1,
           padding: str = "valid") -> Tensor:
    """2-D convolution (cross-correlation, as every framework), channels last.

    Shape: x (B, H, W, C), W (kh, kw, C, F), b (F,) -> (B, Ho, Wo, F).
    y[b, i, j] = Σ_{p, q, c} x_padded[b, i·sh + p, j·sw + q, c]·W[p, q, c] + b
    """
    kh, kw, C, F = W.shape
    if x.ndim != 4 or x.shape[3] != C:
        raise ShapeError(f"conv2d: input must be (batch, height, width, {C}) for a kernel of "
                         f"shape {W.shape}, got {x.shape}")
    patches = im2col(x, (kh, kw), stride, padding)
    B, Ho, Wo = patches.shape[:3]
    y = patches.reshape(B * Ho * Wo, kh * kw * C) @ W.reshape(kh * kw * C, F)
    if b is not None:
        y = y + b
    return y.reshape(B, Ho, Wo, F)


def conv1d(x: Tensor, W: Tensor, b: Optional[Tensor] = None, stride: int = 1,
           padding: str = "valid") -> Tensor:
    """1-D convolution over time, channels last. Shape: x (B, T, C), W (k, C, F), b (F,) ->
    (B, To, F). ``conv2d`` with a height of 1."""
    if x.ndim != 3:
        raise ShapeError(f"conv1d: input must be (batch, steps, channels), got {x.shape}")
    k, C, F = W.shape
    y = conv2d(x.reshape(x.shape[0], 1, x.shape[1], x.shape[2]), W.reshape(1, k, C, F), b,
               (1, stride), padding)
    return y.reshape(y.shape[0], y.shape[2], F)


def max_pool2d(x: Tensor, pool_size: Pair = 2, stride: Optional[Pair] = None,
               padding: str = "valid") -> Tensor:
    """The maximum of each window (stride defaults to the pool size). Shape: (B, H, W, C) ->
    (B, Ho, Wo, C). The gradient goes to each window's maximum (split among ties)."""
    pool = _pair(pool_size, "pool_size")
    patches = im2col(x, pool, pool if stride is None else stride, padding, -math.inf)
    B, Ho, Wo = patches.shape[:3]
    return reduce_max(patches.reshape(B, Ho, Wo, pool[0] * pool[1], x.shape[3]), axis=3)


def max_pool1d(x: Tensor, pool_size: int = 2, stride: Optional[int] = None,
               padding: str = "valid") -> Tensor:
    """The maximum of each window over time. Shape: (B, T, C) -> (B, To, C)."""
    y = max_pool2d(x.reshape(x.shape[0], 1, x.shape[1], x.shape[2]), (1, pool_size),
                   (1, pool_size if stride is None else stride), padding)
    return y.reshape(y.shape[0], y.shape[2], y.shape[3])
