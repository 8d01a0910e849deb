"""Keras' callbacks (``tensorflow.keras.callbacks``): those of ``minidl.training.callbacks``,
plus the ones that only make sense with a Keras model and optimizer, with Keras 2's behaviour.

    EarlyStopping, History, ProgbarLogger, TerminateOnNaN   from minidl.training.callbacks
    ModelCheckpoint      save_weights_only=False writes the whole model (``model.save``), which
                         ``keras.models.load_model`` reads; True writes ``save_weights``
    ReduceLROnPlateau    multiply the learning rate by ``factor`` when ``monitor`` stalls
    LearningRateScheduler  lr = schedule(epoch, lr) at the start of each epoch
    CSVLogger            one CSV row per epoch: epoch, then the logs in sorted order

As in Keras 2, ``ReduceLROnPlateau`` and ``LearningRateScheduler`` add the learning rate to the
epoch's logs as ``'lr'`` (so ``history.history['lr']`` exists).
"""
from __future__ import annotations

import collections
import collections.abc
import csv
import math
import os
import warnings
from typing import Any, Callable, Dict, Optional

import numpy as np

from minidl.training import callbacks as _training
from minidl.training.callbacks import (Callback, CallbackList, EarlyStopping, History,
                                       ProgbarLogger, TerminateOnNaN)

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ModelCheckpoint",
           "ProgbarLogger", "TerminateOnNaN", "ReduceLROnPlateau", "LearningRateScheduler",
           "CSVLogger", "LambdaCallback"]


def _optimizer(callback: Callback) -> Any:
    optimizer = getattr(callback.model, "optimizer", None) or callback.optimizer
    if optimizer is None:
        raise RuntimeError(f"{type(callback).__name__} needs an optimizer: use it with "
                           f"model.fit after model.compile")
    return optimizer


def get_learning_rate(callback: Callback) -> float:
    """The learning rate of the optimizer being trained (a Keras or a minidl.optim one)."""
    optimizer = _optimizer(callback)
    if hasattr(optimizer, "learning_rate"):
        return float(optimizer.learning_rate)
    return float(optimizer.param_groups[0]["lr"])


def set_learning_rate(callback: Callback, value: float) -> None:
    optimizer = _optimizer(callback)
    if hasattr(optimizer, "learning_rate"):
        optimizer.learning_rate = float(value)
    else:
        for group in optimizer.param_groups:
            group["lr"] = float(value)


class ModelCheckpoint(_training.ModelCheckpoint):
    """``ModelCheckpoint`` of ``minidl.training`` (``save_best_only``, ``mode``, ``save_freq``,
    file names with ``{epoch:02d}`` and log fields), writing what Keras writes: the whole model
    (``model.save``: architecture, weights, optimizer — ``load_model`` reads it) or, with
    ``save_weights_only=True``, the weights (``model.save_weights``; ``load_weights`` reads them).
    A model without ``save`` (a plain ``nn.Module``) gets ``md.save_checkpoint`` as before.
    """

    def _write(self, path: str, epoch: int) -> None:
        model = self.model
        if not hasattr(model, "save") or not hasattr(model, "save_weights"):
            return super()._write(path, epoch)
        if self.save_weights_only:
            model.save_weights(path)
        else:
            model.save(path)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs (Keras 2's rule): then wait ``cooldown`` epochs before
    counting again; never go below ``min_lr``. ``mode='auto'``: maximise names with ``acc``,
    minimise the rest."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, **kwargs: Any):
        super().__init__()
        if "epsilon" in kwargs:  # Keras 2's old name of min_delta
            min_delta = kwargs.pop("epsilon")
            warnings.warn("`epsilon` argument is deprecated and will be removed, use "
                          "`min_delta` instead.", stacklevel=2)
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected arguments {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Got {factor}")
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"Learning rate reduction mode {mode} is unknown, fallback to auto "
                          f"mode.", stacklevel=2)
            mode = "auto"
        self.monitor, self.factor, self.patience, self.verbose = monitor, factor, patience, verbose
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.mode = "max" if mode == "max" or (mode == "auto" and "acc" in monitor) else "min"
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = self.cooldown_counter = 0

    def _improved(self, current: float) -> bool:
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        logs = logs if logs is not None else {}
        logs["lr"] = get_learning_rate(self)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                          f"which is not available. Available metrics are: "
                          f"{','.join(logs)}", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = get_learning_rate(self)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    set_learning_rate(self, new_lr)
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new_lr}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """At the start of each epoch set the learning rate to ``schedule(epoch, lr)`` (epochs count
    from 0; a ``schedule(epoch)`` of one argument works too)."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        lr = get_learning_rate(self)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:  # a schedule of the epoch only (Keras 1 style)
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, int, np.floating)):
            raise ValueError('The output of the "schedule" function should be float.')
        set_learning_rate(self, float(lr))
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, float]] = None) -> None:
        if logs is not None:
            logs["lr"] = get_learning_rate(self)


class CSVLogger(Callback):
    """Write the logs of each epoch to ``filename`` as CSV (Keras 2's format): a header
    ``epoch,<sorted log names>``, then one row per epoch (epochs from 0). ``append=True``
    continues an existing file (its header is kept). The file is flushed after every row."""

    def __init__(self, filename: str, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys = None
        self.writer = None
        self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None) -> None:
        mode = "w"
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        self.keys, self.writer = None, None
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        logs = logs or {}

        def handle_value(k: Any) -> Any:
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
        if getattr(self.model, "stop_training", False):
            logs = {k: logs.get(k, "NA") for k in self.keys}
        if self.writer is None:
            class Dialect(csv.excel):
                delimiter = self.sep
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys,
                                         dialect=Dialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None) -> None:
        if self.csv_file is not None:
            self.csv_file.close()
        self.writer = None


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, **hooks: Callable[..., Any]):
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_"):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)
