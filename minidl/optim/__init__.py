"""Optimizers, gradient clipping and learning-rate schedules (also as ``optim.lr_scheduler``,
PyTorch's path; ``clip_grad_norm_`` is PyTorch's name of ``clip_grad_norm``)."""
from minidl.optim import lr_scheduler
from minidl.optim.adagrad import Adadelta, Adagrad
from minidl.optim.adam import Adam, AdamW, SparseAdam
from minidl.optim.adamax import Adamax, NAdam
from minidl.optim.clip import clip_grad_norm, clip_grad_norm_, clip_grad_value, clip_grad_value_
from minidl.optim.optimizer import Optimizer
from minidl.optim.rmsprop import RMSprop
from minidl.optim.schedule import (CosineAnnealingLR, LambdaLR, LinearWarmup, LRScheduler,
                                   StepLR)
from minidl.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "SparseAdam", "RMSprop", "Adagrad", "Adadelta", "Adamax",
           "NAdam", "clip_grad_norm", "clip_grad_norm_", "clip_grad_value", "clip_grad_value_",
           "LRScheduler", "StepLR", "CosineAnnealingLR", "LinearWarmup", "LambdaLR",
           "lr_scheduler"]
