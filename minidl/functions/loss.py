"""Loss functions. Each returns the mean over all elements (``reduction='mean'``) unless told
``'sum'`` or ``'none'``."""
from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.autograd import Function, ShapeError, Tensor
from minidl.backend.blocks import for_row_blocks
from minidl.functions.elementwise import clip, log, sigmoid_array
from minidl.functions.indices import checked_indices

EPSILON = 1e-7  # Keras' backend.epsilon(): probabilities are clipped to [ε, 1 − ε]


def _reduce(loss: Tensor, reduction: str, count: Any = None) -> Tensor:
    if reduction == "mean":
        return loss.sum() * (1.0 / count) if count is not None else loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _targets_like(name: str, prediction: Tensor, target: Any) -> Tensor:
    """The target as a Tensor beside the prediction: same device (host arrays and lists are
    copied over, as targets usually come from host data), same dtype, same shape."""
    if not isinstance(target, Tensor):
        target = Tensor(backend.to_device_array(target, prediction.device))
    if target.shape != prediction.shape:
        raise ShapeError(f"{name}: target shape {target.shape} must equal prediction shape "
                         f"{prediction.shape} (reshape one, e.g. y.reshape(-1, 1))")
    if target.dtype != prediction.dtype:
        target = Tensor(target.data.astype(prediction.dtype), target.requires_grad)
    return target


def binary_cross_entropy(p: Tensor, target: Any, reduction: str = "mean",
                         eps: float = EPSILON) -> Tensor:
    """−[y·ln p + (1 − y)·ln(1 − p)] for probabilities p (the output of a sigmoid).

    Shape: p and target the same shape. Stability: p is clipped to [ε, 1 − ε] (ε = 1e-7, as
    Keras), so a confidently wrong prediction costs at most −ln ε ≈ 16.1 instead of infinity.
    """
    y = _targets_like("binary_cross_entropy", p, target)
    p = clip(p, eps, 1.0 - eps)
    return _reduce(-(y * log(p) + (1 - y) * log(1 - p)), reduction)


class BCEWithLogits(Function):
    """ℓ = max(z, 0) − z·y + ln(1 + e^−|z|)  =  −[y ln σ(z) + (1−y) ln(1 − σ(z))].
    dℓ/dz = σ(z) − y,  dℓ/dy = −z.

    Stability: never exponentiates a positive number, so |z| = 1e4 is fine.
    """

    differentiable_backward = False

    def forward(self, z, y):
        xp = backend.get_array_module(z)
        self.save_for_backward(z, y)
        return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))

    def backward(self, gy):
        z, y = self.saved_tensors
        return gy * (sigmoid_array(z) - y), gy * -z


def binary_cross_entropy_with_logits(z: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy from logits z (before the sigmoid); stable for any z."""
    y = _targets_like("binary_cross_entropy_with_logits", z, target)
    return _reduce(BCEWithLogits()(z, y), reduction)


def _log_softmax_rows(x: Any, log_p: Any) -> None:
    """log softmax of each row of x (a block of rows), into log_p: x − max − log Σ exp(x − max)."""
    xp = backend.get_array_module(x)
    xp.subtract(x, x.max(axis=1, keepdims=True), out=log_p)
    log_p -= xp.log(xp.exp(log_p).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy(Function):
    """ℓₙ = −log softmax(xₙ)[tₙ] for rows xₙ of logits (N, C) and integer targets tₙ, fused.

    Backward: dℓₙ/dxₙ = softmax(xₙ) − onehot(tₙ) — one pass over the (N, C) logits instead of
    the several that log_softmax followed by indexing would take (this matters for a language
    model's output layer). Rows with ``keep = 0`` (ignored targets) get zero loss and gradient.
    The composite ``-log_softmax(x)[range(N), t]`` is the reference; a test shows they agree.
    """

    differentiable_backward = False

    def __init__(self, target, keep):
        self.target, self.keep = target, keep

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.log_p = xp.empty_like(x)
        for_row_blocks(_log_softmax_rows, x, self.log_p)
        rows = xp.arange(x.shape[0])
        return -self.log_p[rows, self.target] * self.keep

    def backward(self, gy):
        # BEGIN EXERCISE softmax_cross_entropy_backward
        xp = backend.get_array_module(gy)
        grad = xp.exp(self.log_p)                                 # softmax
        grad[xp.arange(grad.shape[0]), self.target] -= 1.0       # − onehot(t)
        grad *= (gy * self.keep)[:, None]
        return grad
        # END EXERCISE


def cross_entropy(logits: Tensor, target: Any, ignore_index: int = -100,
                  reduction: str = "mean") -> Tensor:
    """−log softmax(logits)[target] for integer class targets.

    Shape: logits (N, C) or (N, ..., C); target (N,) or (N, ...) integers in [0, C).
    Targets equal to ``ignore_index`` add nothing and are left out of the mean.
    Stability: computed through log-softmax, never log(softmax).
    """
    if logits.ndim < 2:
        raise ShapeError(f"cross_entropy: logits must be (N, C) or (N, ..., C), got "
                         f"{logits.shape}")
    xp = backend.get_array_module(logits.data)
    classes = logits.shape[-1]
    t = backend.to_device_array(target.data if isinstance(target, Tensor) else target, logits.device)
    if t.shape != logits.shape[:-1]:
        raise ShapeError(f"cross_entropy: target shape {t.shape} must be logits shape "
                         f"{logits.shape} without its last axis, i.e. {logits.shape[:-1]}")
    t = t.reshape(-1)
    keep = t != ignore_index
    safe = checked_indices(xp.where(keep, t, 0), xp, classes, what="class target",
                           of=f"{classes} classes")
    loss = SoftmaxCrossEntropy(safe, keep.astype(logits.dtype))(logits.reshape(-1, classes))
    if reduction == "none":
        return loss.reshape(*logits.shape[:-1])
    return _reduce(loss, reduction, count=max(int(keep.sum()), 1))


def mse_loss(prediction: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error (p − y)²."""
    y = _targets_like("mse_loss", prediction, target)
    diff = prediction - y
    return _reduce(diff * diff, reduction)
