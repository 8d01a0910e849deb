"""RMSprop (PyTorch's rule)."""
from __future__ import annotations

from typing import Any, Iterable

from minidl import backend
from minidl.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    """v ← αv + (1−α)g²;   θ ← θ − lr·g/(√v + ε)   (with momentum μ: b ← μb + g/(√v + ε),
    θ ← θ − lr·b). PyTorch's defaults: lr=0.01, α=0.99, ε=1e-8.
    ``eps_inside_sqrt=True`` divides by √(v + ε) instead, as Keras does."""

    def __init__(self, params: Iterable[Any], lr: float = 0.01, alpha: float = 0.99,
                 eps: float = 1e-8, momentum: float = 0.0, weight_decay: float = 0.0,
                 eps_inside_sqrt: bool = False):
        if lr < 0 or not 0 <= alpha < 1:
            raise ValueError(f"RMSprop: invalid lr={lr} or alpha={alpha}")
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum,
                         weight_decay=weight_decay, eps_inside_sqrt=eps_inside_sqrt)

    def update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        if not state:
            state["v"] = xp.zeros_like(p.data)
        v = state["v"]
        v *= group["alpha"]
        v += (1 - group["alpha"]) * grad * grad
        if group["eps_inside_sqrt"]:
            step = grad / xp.sqrt(v + group["eps"])
        else:
            step = grad / (xp.sqrt(v) + group["eps"])
        if group["momentum"]:
            b = state.setdefault("momentum", xp.zeros_like(p.data))
            b *= group["momentum"]
            b += step
            step = b
        p.data -= group["lr"] * step
