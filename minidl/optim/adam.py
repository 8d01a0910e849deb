"""Adam and AdamW, with PyTorch's update rule (and Keras' placement of ε on request)."""
from __future__ import annotations

import math
from typing import Any, Iterable, Tuple

from minidl import backend
from minidl.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's rule and defaults. At step t, with g = ∇θ (+ λθ):

        m ← β₁m + (1−β₁)g          v ← β₂v + (1−β₂)g²
        m̂ = m/(1−β₁ᵗ)              v̂ = v/(1−β₂ᵗ)
        θ ← θ − lr·m̂/(√v̂ + ε)

    ``epsilon_hat=True`` adds ε to √v instead of √v̂ — Keras' (and the paper's "efficient")
    form θ ← θ − lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε), used by ``minidl.keras.optimizers.Adam``.
    Updates are done in place, with one scratch buffer per parameter, so a large embedding
    table costs no temporaries.
    """

    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, epsilon_hat: bool = False):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: invalid lr={lr}, betas={betas} or eps={eps}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                         epsilon_hat=epsilon_hat)

    def update(self, p, grad, state, group):
        xp = backend.get_array_module(p.data)
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], \
            group["weight_decay"]
        if not state:
            state["step"] = 0
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
            state["scratch"] = xp.empty_like(p.data)
        state["step"] += 1
        t = state["step"]
        m, v, scratch = state["m"], state["v"], state["scratch"]
        if wd and self.decoupled:
            p.data *= 1 - lr * wd       # AdamW: shrink the weights directly
        elif wd:
            grad = grad + wd * p.data   # Adam: L2 penalty folded into the gradient
        # BEGIN EXERCISE adam_step
        bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t
        xp.multiply(grad, 1 - beta1, out=scratch)
        m *= beta1
        m += scratch
        xp.multiply(grad, grad, out=scratch)
        scratch *= 1 - beta2
        v *= beta2
        v += scratch
        xp.sqrt(v, out=scratch)                      # √v
        if group["epsilon_hat"]:
            scratch += eps                           # √v + ε
            step_size = lr * math.sqrt(bias2) / bias1
        else:
            scratch *= 1 / math.sqrt(bias2)          # √v̂
            scratch += eps                           # √v̂ + ε
            step_size = lr / bias1
        xp.divide(m, scratch, out=scratch)
        scratch *= step_size
        p.data -= scratch
        # END EXERCISE

    def state_dict(self):
        state = super().state_dict()
        for values in state["state"].values():
            values.pop("scratch", None)  # a work buffer, not state
        return state

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for values in self.state.values():
            values["scratch"] = backend.get_array_module(values["m"]).empty_like(values["m"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ(1 − lr·λ) before the Adam
    step, instead of adding λθ to the gradient. Default λ = 0.01, as PyTorch."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, epsilon_hat: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, epsilon_hat)


class SparseAdam(Adam):
    """Lazy Adam for embedding tables (PyTorch's ``SparseAdam``, TensorFlow's LazyAdam): only
    the rows that have a gradient this step — the ids in the batch — are updated, moments
    included; every other row, and its m and v, stays as it was.

    The rule on those rows is Adam's (bias correction with the parameter's step count t).
    It is *not* dense Adam: there, a row absent from the batch still moves (its momentum
    decays through θ) — use ``Adam`` for the same numbers, ``SparseAdam`` for speed when a
    batch touches a small part of a large table. A row "has a gradient" when its gradient is
    not all zero; a 1-D parameter is updated densely. No weight decay (as PyTorch).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr, betas, eps)

    def update(self, p, grad, state, group):
        if grad.ndim < 2:
            return super().update(p, grad, state, group)
        xp = backend.get_array_module(p.data)
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        if not state:
            state["step"] = 0
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        rows = xp.flatnonzero((grad != 0).reshape(grad.shape[0], -1).any(axis=1))
        g = grad[rows]
        m = state["m"][rows] * beta1 + (1 - beta1) * g
        v = state["v"][rows] * beta2 + (1 - beta2) * g * g
        state["m"][rows], state["v"][rows] = m, v
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        p.data[rows] -= lr * m_hat / (xp.sqrt(v_hat) + eps)
