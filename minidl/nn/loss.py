"""Loss modules: thin wrappers of the functions in ``minidl.functions.loss``."""
from __future__ import annotations

from typing import Any

from minidl import functions as F
from minidl.autograd import Tensor
from minidl.nn.module import Module


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities (clipped to [1e-7, 1 − 1e-7] as Keras)."""

    def forward(self, p: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(p, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits; stable for any logit."""

    def forward(self, z: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(z, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits with integer targets (and ``ignore_index``)."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(logits, target, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Mean squared error."""

    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        return F.mse_loss(prediction, target, self.reduction)
