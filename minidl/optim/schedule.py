"""Learning-rate schedules: call ``scheduler.step()`` once per epoch (or per batch)."""
from __future__ import annotations

import math
from typing import Callable, List

from minidl.optim.optimizer import Optimizer


class LRScheduler:
    """Sets each group's ``lr`` to ``base_lr · factor(step)``."""

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lrs: List[float] = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def factor(self, step: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self.factor(self.last_step)

    def get_last_lr(self) -> List[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_step, self.base_lrs = int(state["last_step"]), list(state["base_lrs"])
        self._apply()


class StepLR(LRScheduler):
    """lr = base · γ^⌊step / step_size⌋."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        return self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = η_min + (base − η_min)·(1 + cos(π·step/T_max))/2, then η_min after T_max."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def _apply(self) -> None:
        s = min(self.last_step, self.T_max)
        cosine = (1 + math.cos(math.pi * s / self.T_max)) / 2
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.eta_min + (base - self.eta_min) * cosine


class LinearWarmup(LRScheduler):
    """lr rises linearly from base/warmup_steps to base over ``warmup_steps``, then stays."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int):
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        return min(1.0, (step + 1) / self.warmup_steps)


class LambdaLR(LRScheduler):
    """lr = base · fn(step) for any function."""

    def __init__(self, optimizer: Optimizer, fn: Callable[[int], float]):
        self.fn = fn
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        return self.fn(step)
