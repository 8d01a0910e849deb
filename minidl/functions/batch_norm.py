"""Batch normalisation, written from primitive ops (autograd differentiates it).

While training, each feature is normalised with the mean and variance of the batch, and the
running statistics move towards them; at inference the running statistics are used:

    training:   μ, σ² = mean and (biased) variance over every axis but the feature axis
                y = (x − μ)/√(σ² + ε)·w + b
                running ← (1 − momentum)·running + momentum·batch statistic
    inference:  y = (x − running_mean)/√(running_var + ε)·w + b

``momentum`` is PyTorch's (the weight of the new batch, 0.1); Keras' momentum m is 1 − that.
The feature axis is ``axis`` (−1: channels last, as Keras; PyTorch's ``F.batch_norm`` uses 1).
"""
from __future__ import annotations

from typing import Any, Optional

from minidl.autograd import Tensor


def batch_norm(x: Tensor, running_mean: Any, running_var: Any, weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5, axis: int = -1) -> Tensor:
    """Normalise each feature of ``x`` (see the module docstring). ``running_mean`` and
    ``running_var`` are arrays of shape (features,), updated in place while training.

    Shape: x (..., features, ...) with the features at ``axis``; weight, bias (features,)
    -> x's shape. Stability: ε inside the square root keeps a constant feature finite.
    """
    axis = axis % x.ndim
    reduced = tuple(i for i in range(x.ndim) if i != axis)
    shape = tuple(n if i == axis else 1 for i, n in enumerate(x.shape))
    if training:
        mean = x.mean(axis=reduced, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=reduced, keepdims=True)
        running_mean *= 1 - momentum
        running_mean += momentum * mean.data.reshape(-1)
        running_var *= 1 - momentum
        running_var += momentum * var.data.reshape(-1)
        y = centred / (var + eps) ** 0.5
    else:
        mean = Tensor(running_mean.reshape(shape))
        y = (x - mean) / Tensor((running_var.reshape(shape) + eps) ** 0.5)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y
