"""More losses, each a composite of differentiable ops (autograd writes their backward).

Argument order as ``loss.py``: ``(prediction, target)``. Each returns the loss **per element**
(shape of the inputs), except ``cosine_similarity``, which reduces ``axis``; callers reduce
(the Keras facade takes the mean over the last axis).

    clipped_binary_cross_entropy  −[y ln(p̃ + ε) + (1 − y) ln(1 − p̃ + ε)], p̃ = clip(p, ε, 1 − ε)
    absolute_percentage_error     100·|y − p| / max(|y|, ε)
    squared_log_error             (ln(max(p, ε) + 1) − ln(max(y, ε) + 1))²
    hinge                         max(1 − y·p, 0)            (y in {−1, 1})
    squared_hinge                 max(1 − y·p, 0)²
    kl_divergence                 ỹ ln(ỹ / p̃), ỹ and p̃ clipped to [ε, 1]
    poisson                       p − y ln(p + ε)
    log_cosh                      ln cosh(p − y) = d + softplus(−2d) − ln 2
    huber                         ½d² if |d| ≤ δ, else δ(|d| − ½δ)
    cosine_similarity             Σ x̂₁·x̂₂ over ``axis``, x̂ = x / √max(Σx², 1e-12)

ε is 1e-7 (Keras' ``epsilon()``). Stability: every logarithm has its argument bounded away from
0, and log_cosh goes through softplus, so large differences do not overflow cosh.
"""
from __future__ import annotations

import math
from typing import Any

from minidl.autograd import Tensor
from minidl.functions.activations import abs, maximum, softplus
from minidl.functions.elementwise import clip, log, relu
from minidl.functions.loss import EPSILON, _targets_like

__all__ = ["clipped_binary_cross_entropy", "absolute_percentage_error", "squared_log_error",
           "hinge", "squared_hinge", "kl_divergence", "poisson", "log_cosh", "huber",
           "cosine_similarity"]


def clipped_binary_cross_entropy(p: Tensor, target: Any, eps: float = EPSILON) -> Tensor:
    """Keras 2's binary cross-entropy of probabilities, per element:
    −[y ln(p̃ + ε) + (1 − y) ln(1 − p̃ + ε)] with p̃ = clip(p, ε, 1 − ε).

    The ε inside the logarithms makes a saturated correct prediction cost exactly 0 in float32
    (ln(1 − ε + ε) = ln 1) and a saturated wrong one −ln 2ε ≈ 15.42 — Keras 2's numbers;
    ``F.binary_cross_entropy`` (Keras 3, PyTorch-like) gives 1.19e-7 and −ln ε ≈ 16.12.
    """
    y = _targets_like("clipped_binary_cross_entropy", p, target)
    p = clip(p, eps, 1.0 - eps)
    return -(y * log(p + eps) + (1 - y) * log(1 - p + eps))


def absolute_percentage_error(p: Tensor, target: Any) -> Tensor:
    """100·|y − p| / max(|y|, ε), per element."""
    y = _targets_like("absolute_percentage_error", p, target)
    return abs(y - p) / clip(abs(y), EPSILON, math.inf) * 100.0


def squared_log_error(p: Tensor, target: Any) -> Tensor:
    """(ln(max(p, ε) + 1) − ln(max(y, ε) + 1))², per element."""
    y = _targets_like("squared_log_error", p, target)
    difference = log(maximum(p, EPSILON) + 1.0) - log(maximum(y, EPSILON) + 1.0)
    return difference * difference


def hinge(p: Tensor, target: Any) -> Tensor:
    """max(1 − y·p, 0) per element, for labels y in {−1, 1}."""
    y = _targets_like("hinge", p, target)
    return relu(1.0 - y * p)


def squared_hinge(p: Tensor, target: Any) -> Tensor:
    """max(1 − y·p, 0)² per element, for labels y in {−1, 1}."""
    margin = hinge(p, target)
    return margin * margin


def kl_divergence(p: Tensor, target: Any) -> Tensor:
    """ỹ ln(ỹ / p̃) per element, ỹ = clip(y, ε, 1), p̃ = clip(p, ε, 1) (sum it over classes)."""
    y = clip(_targets_like("kl_divergence", p, target), EPSILON, 1.0)
    return y * (log(y) - log(clip(p, EPSILON, 1.0)))


def poisson(p: Tensor, target: Any) -> Tensor:
    """p − y ln(p + ε) per element (the Poisson negative log-likelihood without ln y!)."""
    y = _targets_like("poisson", p, target)
    return p - y * log(p + EPSILON)


def log_cosh(p: Tensor, target: Any) -> Tensor:
    """ln cosh(p − y) per element, as d + softplus(−2d) − ln 2 (no overflow for large d)."""
    d = p - _targets_like("log_cosh", p, target)
    return d + softplus(d * -2.0) - math.log(2.0)


def huber(p: Tensor, target: Any, delta: float = 1.0) -> Tensor:
    """½d² where |d| ≤ δ, δ(|d| − ½δ) elsewhere, d = p − y, per element.

    Written as ½q² + δ(|d| − q) with q = min(|d|, δ): the same values and gradients.
    """
    size = abs(p - _targets_like("huber", p, target))
    quadratic = clip(size, 0.0, delta)
    return quadratic * quadratic * 0.5 + (size - quadratic) * delta


def cosine_similarity(x1: Tensor, x2: Any, axis: int = -1, eps: float = 1e-12) -> Tensor:
    """Σ x̂₁·x̂₂ over ``axis`` with x̂ = x / √max(Σx², eps) (Keras' l2_normalize).
    Shape: (..., n, ...) twice -> the inputs' shape without ``axis``."""
    x2 = _targets_like("cosine_similarity", x1, x2)

    def normalise(x: Tensor) -> Tensor:
        return x / maximum((x * x).sum(axis=axis, keepdims=True), eps) ** 0.5
    return (normalise(x1) * normalise(x2)).sum(axis=axis)
