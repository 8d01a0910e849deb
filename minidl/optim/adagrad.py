"""Adagrad and Adadelta: per-weight learning rates from the history of squared gradients."""
from __future__ import annotations

from typing import Any, Iterable

from minidl import backend
from minidl.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), PyTorch's rule and defaults:

        s ← s + g²          θ ← θ − lr·g/(√s + ε)

    with s starting at ``initial_accumulator_value`` (PyTorch 0, ε = 1e-10).
    ``eps_inside_sqrt=True`` divides by √(s + ε) instead, as Keras does; with Keras' s₀ = 0.1
    and ε = 1e-7 it is ``minidl.keras.optimizers.Adagrad``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.01, eps: float = 1e-10,
                 initial_accumulator_value: float = 0.0, weight_decay: float = 0.0,
                 eps_inside_sqrt: bool = False):
        if lr < 0 or eps < 0 or initial_accumulator_value < 0:
            raise ValueError(f"Adagrad: invalid lr={lr}, eps={eps} or "
                             f"initial_accumulator_value={initial_accumulator_value}")
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value,
                         eps_inside_sqrt=eps_inside_sqrt)

    def update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        if not state:
            state["sum"] = xp.full_like(p.data, group["initial_accumulator_value"])
        s = state["sum"]
        s += grad * grad
        if group["eps_inside_sqrt"]:
            p.data -= group["lr"] * grad / xp.sqrt(s + group["eps"])
        else:
            p.data -= group["lr"] * grad / (xp.sqrt(s) + group["eps"])


class Adadelta(Optimizer):
    """Adadelta (Zeiler), PyTorch's rule and defaults (lr = 1, ρ = 0.9, ε = 1e-6):

        v ← ρv + (1−ρ)g²       d = √(u + ε)/√(v + ε)·g       u ← ρu + (1−ρ)d²
        θ ← θ − lr·d

    Keras 2's defaults are lr = 0.001, ρ = 0.95, ε = 1e-7 (``minidl.keras.optimizers``).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0.0):
        if lr < 0 or not 0 <= rho <= 1 or eps < 0:
            raise ValueError(f"Adadelta: invalid lr={lr}, rho={rho} or eps={eps}")
        super().__init__(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        rho, eps = group["rho"], group["eps"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        if not state:
            state["square_avg"] = xp.zeros_like(p.data)
            state["acc_delta"] = xp.zeros_like(p.data)
        v, u = state["square_avg"], state["acc_delta"]
        v *= rho
        v += (1 - rho) * grad * grad
        delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * grad
        u *= rho
        u += (1 - rho) * delta * delta
        p.data -= group["lr"] * delta
