"""``torch.optim.lr_scheduler``-style access to minidl's schedules:

    from minidl.optim.lr_scheduler import StepLR      # or md.optim.lr_scheduler.StepLR
    scheduler = StepLR(optimizer, step_size=10, gamma=0.1)

The schedules themselves live in ``schedule.py``; ``LinearWarmup`` is minidl's own.
"""
from minidl.optim.schedule import (CosineAnnealingLR, LambdaLR, LinearWarmup, LRScheduler,
                                   StepLR)

_LRScheduler = LRScheduler  # the name older PyTorch code imports

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "LinearWarmup", "LambdaLR"]
