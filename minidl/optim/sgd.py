"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay (PyTorch's rule)."""
from __future__ import annotations

from typing import Any, Iterable

from minidl.optim.optimizer import Optimizer


class SGD(Optimizer):
    """θ ← θ − lr·d, where g = ∇θ + λθ and
        d = g                                  (momentum 0)
        u ← μu + g;  d = u                     (momentum μ; u starts at g)
        u ← μu + g;  d = g + μu                (nesterov=True)
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        if lr < 0:
            raise ValueError(f"SGD: learning rate must be >= 0, got {lr}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay)

    def update(self, p, grad, state, group):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        mu = group["momentum"]
        if mu:
            if "momentum" not in state:
                state["momentum"] = grad.copy()
            else:
                u = state["momentum"]
                u *= mu
                u += grad
            u = state["momentum"]
            grad = grad + mu * u if group["nesterov"] else u
        p.data -= group["lr"] * grad
