"""Optimizers, gradient clipping and learning-rate schedules."""
from minidl.optim.adam import Adam, AdamW
from minidl.optim.clip import clip_grad_norm, clip_grad_value
from minidl.optim.optimizer import Optimizer
from minidl.optim.rmsprop import RMSprop
from minidl.optim.schedule import (CosineAnnealingLR, LambdaLR, LinearWarmup, LRScheduler,
                                   StepLR)
from minidl.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "clip_grad_norm", "clip_grad_value",
           "LRScheduler", "StepLR", "CosineAnnealingLR", "LinearWarmup", "LambdaLR"]
