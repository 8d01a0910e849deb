"""Callbacks: code the training loop calls at the start and end of training, epochs and batches.

Keras' names and semantics: ``History`` records the per-epoch logs, ``EarlyStopping`` stops when
a monitored value stops improving (optionally restoring the best weights), ``ModelCheckpoint``
saves weights after each epoch (or only the best), ``ProgbarLogger`` draws the progress bar,
``TerminateOnNaN`` stops when the loss becomes NaN or infinite.

A callback sees the model as ``self.model`` (any ``nn.Module``: weights are read and written
with ``state_dict()``/``load_state_dict()``), the optimizer as ``self.optimizer`` and the loop's
settings as ``self.params`` (``{'verbose', 'epochs', 'steps'}``). Setting
``self.model.stop_training = True`` ends training after the current batch.
"""
from __future__ import annotations

import math
import os
import sys
import warnings
from typing import IO, Any, Dict, Iterable, List, Optional

from minidl.distributed import is_main_process
from minidl.io import save, save_checkpoint
from minidl.training.progress import Progbar

Logs = Optional[Dict[str, float]]


class Callback:
    """Base class: override the hooks you need. ``logs`` holds the running means of the loss and
    metrics (batch hooks) or the epoch's final values, with ``val_`` keys (``on_epoch_end``)."""

    def __init__(self) -> None:
        self.model: Any = None
        self.optimizer: Any = None
        self.params: Dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_optimizer(self, optimizer: Any) -> None:
        self.optimizer = optimizer

    def set_params(self, params: Dict[str, Any]) -> None:
        self.params = params

    # Training (fit)
    def on_train_begin(self, logs: Logs = None) -> None: ...
    def on_train_end(self, logs: Logs = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None: ...
    # Evaluation (evaluate, and validation inside fit)
    def on_test_begin(self, logs: Logs = None) -> None: ...
    def on_test_end(self, logs: Logs = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None: ...
    # Prediction
    def on_predict_begin(self, logs: Logs = None) -> None: ...
    def on_predict_end(self, logs: Logs = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None: ...


class CallbackList:
    """Several callbacks called as one: ``callbacks.on_epoch_end(epoch, logs)`` calls each."""

    def __init__(self, callbacks: Iterable[Callback] = (), model: Any = None,
                 optimizer: Any = None, params: Optional[Dict[str, Any]] = None):
        self.callbacks: List[Callback] = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be Callback instances, got "
                                f"{type(callback).__name__}")
            callback.set_model(model)
            callback.set_optimizer(optimizer)
            callback.set_params(dict(params or {}))

    def __getattr__(self, hook: str):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call_all(*args: Any) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(*args)
        return call_all


def monitor_mode(monitor: str, mode: str) -> str:
    """``'min'`` or ``'max'``: whether smaller or larger values of ``monitor`` are better.

    ``mode='auto'`` decides from the name as Keras does: losses and errors go down, accuracy,
    AUC, precision and recall go up; any other name needs an explicit mode (ValueError).
    """
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name.endswith("loss") or name in ("mse", "mae", "mean_squared_error",
                                         "mean_absolute_error") or "crossentropy" in name:
        return "min"
    if "acc" in name or name.endswith(("auc", "precision", "recall", "f1_score")):
        return "max"
    raise ValueError(f"cannot tell whether {monitor!r} should be minimised or maximised; pass "
                     f"mode='min' or mode='max'")


def _improves(current: float, best: Optional[float], mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``current`` beats ``best`` by more than ``min_delta`` (any value beats None)."""
    if best is None:
        return True
    if mode == "min":
        return current + min_delta < best
    return current - min_delta > best


class History(Callback):
    """Records the logs of every epoch: ``history.history['loss']`` is the list of per-epoch
    training losses; ``val_loss``, metrics and ``val_`` metrics likewise. ``history.epoch`` lists
    the epoch numbers (from 0). Set as ``model.history`` after each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints ``Epoch i/N`` (when N > 1) and a progress bar per epoch (``params['verbose']``
    1 or 2), and a bar for ``evaluate``/``predict`` run on their own. ``stream``: where to write
    (standard output when None)."""

    def __init__(self, stream: Optional[IO[str]] = None) -> None:
        super().__init__()
        self.stream = stream
        self.progbar: Optional[Progbar] = None
        self._in_fit = False

    def _new_bar(self) -> None:
        self.progbar = Progbar(self.params.get("steps"), verbose=self.params.get("verbose", 1),
                               stream=self.stream)

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def on_train_begin(self, logs: Logs = None) -> None:
        self._in_fit = True

    def on_train_end(self, logs: Logs = None) -> None:
        self._in_fit = False

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.params.get("verbose") and self.params.get("epochs", 1) > 1:
            self._write(f"Epoch {epoch + 1}/{self.params['epochs']}")
        self._new_bar()

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.progbar.update(batch + 1, logs, finalize=False)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.progbar.update(self.progbar.target, logs, finalize=True)

    def on_test_begin(self, logs: Logs = None) -> None:
        if not self._in_fit:  # validation inside fit shows no bar of its own
            self._new_bar()

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        if not self._in_fit:
            self.progbar.update(batch + 1, logs, finalize=False)

    def on_test_end(self, logs: Logs = None) -> None:
        if not self._in_fit:
            self.progbar.update(self.progbar.target, logs, finalize=True)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._new_bar()

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.progbar.update(batch + 1, finalize=False)

    def on_predict_end(self, logs: Logs = None) -> None:
        self.progbar.update(self.progbar.target, finalize=True)

    def end_line(self) -> None:
        """End a half-drawn bar (the loop calls it when Ctrl-C or an error stops it)."""
        if self.progbar is not None:
            self.progbar.end_line()


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss is NaN or infinite (Keras' ``TerminateOnNaN``).

    After the batch whose (running mean) loss is not finite it prints ``Batch 3: Invalid loss,
    terminating training`` and sets ``model.stop_training``. (minidl's loop already stops on a
    non-finite loss before that batch's update; this callback is Keras' spelling of it.)
    """

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs (Keras 3).

    Improvement: ``current < best − min_delta`` (mode min) or ``current > best + min_delta``
    (mode max); ``mode='auto'`` infers the direction from the name (``val_loss`` → min).
    An improvement resets the wait only if it also beats ``baseline`` (when given). Nothing
    is counted before epoch ``start_from_epoch``. ``restore_best_weights``: at the end of
    training, the weights of the best epoch are put back (whether or not training stopped
    early). A ``monitor`` missing from the logs gives a warning and is skipped.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: Optional[float] = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.baseline = verbose, baseline
        self.mode = monitor_mode(monitor, mode)
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.on_train_begin()

    def on_train_begin(self, logs: Logs = None) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best: Optional[float] = None
        self.best_weights: Optional[dict] = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping conditioned on metric {self.monitor!r}, which is not "
                          f"available. Available metrics are: {', '.join(logs or {})}",
                          stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.state_dict(), epoch
        self.wait += 1
        if _improves(current, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            if self.baseline is None or _improves(current, self.baseline, self.mode,
                                                  self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model after every epoch (``save_freq='epoch'``) or every ``save_freq`` batches.

    ``filepath`` may hold fields of the epoch and logs: ``'ckpt-{epoch:02d}-{val_loss:.2f}.npz'``
    (epochs count from 1). Files are written with ``md.save``: atomically (a temporary file,
    then a rename), so a crash never leaves a half-written checkpoint and an existing file stays
    loadable. Any file name is accepted; the content is always minidl's ``.npz`` format.

    ``save_weights_only=True`` writes the model's ``state_dict()`` (load it with
    ``model.load_state_dict(md.load(path))`` or Keras' ``load_weights``); ``False`` writes
    ``md.save_checkpoint`` — weights, optimizer state and epoch, to resume training.
    ``save_best_only``: write only when ``monitor`` improves (``mode`` as ``EarlyStopping``),
    starting from ``initial_value_threshold`` if given. In a data-parallel job (``mpiexec``)
    only rank 0 writes.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", save_freq: Any = "epoch",
                 initial_value_threshold: Optional[float] = None):
        super().__init__()
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"save_freq must be 'epoch' or a positive number of batches, got "
                             f"{save_freq!r}")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = monitor_mode(monitor, mode) if save_best_only else mode
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._batches_seen = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self.save_freq != "epoch":
            self._batches_seen += 1
            if self._batches_seen % self.save_freq == 0:
                self._save(self._epoch, logs, batch=batch)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.save_freq == "epoch":
            self._save(epoch, logs)

    def _save(self, epoch: int, logs: Logs, batch: Optional[int] = None) -> None:
        """Decide and write. In a data-parallel job only rank 0 does (the ranks hold the same
        weights)."""
        if not is_main_process():
            return
        logs = logs or {}
        fields = {"epoch": epoch + 1, **logs} if batch is None else \
            {"epoch": epoch + 1, "batch": batch + 1, **logs}
        path = self.filepath.format(**fields)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor!r} available, "
                              f"skipping. Available: {', '.join(logs)}", stacklevel=2)
                return
            if not _improves(current, self.best, self.mode):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose > 0:
                before = self.best if self.best is not None else \
                    (math.inf if self.mode == "min" else -math.inf)
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {before:.5f} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        self._write(path, epoch)

    def _write(self, path: str, epoch: int) -> None:
        """Write the file (the Keras facade writes Keras' formats here)."""
        if self.save_weights_only:
            save(self.model.state_dict(), path)
        else:
            save_checkpoint(path, self.model, self.optimizer, epoch=epoch + 1)
