"""Adamax and NAdam: the Adam variants of Kingma & Ba (∞-norm) and Dozat (Nesterov momentum)."""
from __future__ import annotations

from typing import Any, Iterable, Tuple

from minidl import backend
from minidl.optim.optimizer import Optimizer


class Adamax(Optimizer):
    """Adamax, PyTorch's rule and defaults (lr = 2e-3, ε = 1e-8):

        m ← β₁m + (1−β₁)g         u ← max(β₂u, |g| + ε)         θ ← θ − lr/(1−β₁ᵗ)·m/u

    ``eps_outside_max=True`` is Keras 2's form, u ← max(β₂u, |g|) and θ ← θ − lr/(1−β₁ᵗ)·
    m/(u + ε), used by ``minidl.keras.optimizers.Adamax``.
    """

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, eps_outside_max: bool = False):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adamax: invalid lr={lr}, betas={betas} or eps={eps}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                         eps_outside_max=eps_outside_max)

    def update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        (beta1, beta2), eps = group["betas"], group["eps"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        if not state:
            state["step"] = 0
            state["m"] = xp.zeros_like(p.data)
            state["u"] = xp.zeros_like(p.data)
        state["step"] += 1
        m, u = state["m"], state["u"]
        m *= beta1
        m += (1 - beta1) * grad
        step_size = group["lr"] / (1 - beta1 ** state["step"])
        if group["eps_outside_max"]:
            xp.maximum(u * beta2, xp.abs(grad), out=u)
            p.data -= step_size * m / (u + eps)
        else:
            xp.maximum(u * beta2, xp.abs(grad) + eps, out=u)
            p.data -= step_size * m / u


class NAdam(Optimizer):
    """NAdam (Dozat), PyTorch's rule (which is also Keras 2's), defaults lr = 2e-3, ε = 1e-8,
    momentum decay ψ = 0.004. With μₜ = β₁(1 − ½·0.96^(tψ)) and Πₜ = μ₁⋯μₜ:

        m ← β₁m + (1−β₁)g        v ← β₂v + (1−β₂)g²       v̂ = v/(1−β₂ᵗ)
        θ ← θ − lr·[(1−μₜ)/(1−Πₜ)·g + μₜ₊₁/(1−Πₜμₜ₊₁)·m] / (√v̂ + ε)
    """

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"NAdam: invalid lr={lr}, betas={betas} or eps={eps}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                         momentum_decay=momentum_decay)

    def update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        (beta1, beta2), eps, psi = group["betas"], group["eps"], group["momentum_decay"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        if not state:
            state["step"] = 0
            state["mu_product"] = 1.0
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        mu = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] *= mu
        product = state["mu_product"]
        m, v = state["m"], state["v"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        denominator = xp.sqrt(v / (1 - beta2 ** t)) + eps
        p.data -= group["lr"] * ((1 - mu) / (1 - product) * grad
                                 + mu_next / (1 - product * mu_next) * m) / denominator
