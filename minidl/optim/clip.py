"""Gradient clipping."""
from __future__ import annotations

import math
from typing import Iterable

from minidl.autograd import Tensor


def clip_grad_norm(params: Iterable[Tensor], max_norm: float) -> float:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (useful to log). Gradients are replaced, never changed in
    place (one array can be the gradient of several tensors).
    """
    grads = [p for p in params if p.grad is not None]
    total = math.sqrt(sum(float((p.grad.data * p.grad.data).sum()) for p in grads))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for p in grads:
            p.grad = Tensor(p.grad.data * scale)
    return total


def clip_grad_value(params: Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to [−clip_value, clip_value]."""
    for p in params:
        if p.grad is not None:
            p.grad = Tensor(p.grad.data.clip(-clip_value, clip_value))


# PyTorch's names (torch.nn.utils.clip_grad_norm_): the trailing underscore says "in place";
# minidl replaces the gradients instead, with the same effect on the next step.
clip_grad_norm_ = clip_grad_norm
clip_grad_value_ = clip_grad_value
