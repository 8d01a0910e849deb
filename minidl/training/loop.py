"""The training loop: ``fit``, ``evaluate`` and ``predict`` for any ``nn.Module``.

    history = fit(model, loss_fn, optimizer, x, y, batch_size=32, epochs=10,
                  validation_split=0.2, metrics={'accuracy': my_accuracy})
    history.history['loss'], history.history['val_loss']

``loss_fn(prediction, target)`` returns a scalar Tensor (PyTorch's argument order, like
``F.binary_cross_entropy`` or an ``nn`` loss module). ``optimizer`` is anything with
``zero_grad()`` and ``step()`` — a ``minidl.optim`` optimizer. ``metrics`` maps a name to
``fn(y_true, y_pred)`` on raw arrays, returning one value per sample (or one for the batch);
the logged value is their mean over the epoch. The Keras facade (``minidl.keras``) is built on
these functions.

One epoch, as Keras does it: the samples are shuffled with minidl's seeded generator
(``md.manual_seed``), cut into ``ceil(n / batch_size)`` batches (the last one may be smaller),
and each batch is moved to the model's device, run forward, differentiated and stepped.
The logged ``loss`` is the mean over the samples seen so far in the epoch.

Faults: a batch whose loss is NaN or infinite stops training before its update (so the weights
are those of the last good batch) with one ``NonFiniteLossWarning`` naming the epoch and the
batch — Keras trains on with ``nan`` unless given ``TerminateOnNaN``. An out-of-range or
non-integer class label is reported by its index in the ``y`` you passed, with your dtype.
Ctrl-C ends the progress-bar line and leaves the model usable, in the mode it was in.

Data-parallel: started under ``mpiexec -n N`` (``minidl.distributed``), ``fit`` trains on N
ranks with no change to the call. ``batch_size`` stays the *global* batch: rank 0 draws each
epoch's order (the draw one process makes) and sends it to all ranks; each rank computes on
its part of every batch (``distributed.shard_batches``), and the gradients are averaged,
weighted by the parts' sizes, before each step — so N ranks take the steps of one process, up
to float round-off (without dropout; with it, each rank draws its own masks). This assumes
the loss is a mean over samples, as minidl's losses are by default. The logged loss and
metrics are those of the whole batch and epoch (one small all-reduce per batch), so callbacks
decide alike on every rank; validation is shared out and its sums added up. Only rank 0
shows progress and writes ``ModelCheckpoint`` files. Optimizer state is not sent: build or
load it the same way on every rank. ``data_parallel=False`` trains each rank on its own.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

import numpy as np

from minidl import backend, distributed
from minidl.autograd import Tensor, no_grad
from minidl.backend.communicator import Communicator
from minidl.data.loader import ArrayDataset, DataLoader
from minidl.data.validation import check_data
from minidl.functions.indices import IndexOutOfRangeError, NonIntegerIndexError
from minidl.training.callbacks import Callback, CallbackList, History, ProgbarLogger

Metric = Callable[[Any, Any], Any]
Metrics = Optional[Mapping[str, Metric]]


class NonFiniteLossWarning(RuntimeWarning):
    """The loss became NaN or infinite and ``fit`` stopped."""


def split_validation(x: np.ndarray, y: np.ndarray, validation_split: float):
    """Keras' ``validation_split``: the **last** ``n − floor(n·(1 − split))`` samples, taken
    before any shuffling. Returns ``(x_train, y_train), (x_val, y_val)``."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    n = len(x)
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"Training data contains {n} samples, which is not sufficient to split "
                         f"it into a validation and training set as specified by "
                         f"validation_split={validation_split}. Either provide more data, or a "
                         f"different value for validation_split.")
    return (x[:split_at], y[:split_at]), (x[split_at:], y[split_at:])


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


# ----------------------------------------------------------------------------- batches
def _float_dtype(model: Any) -> Any:
    """The floating dtype of the model's weights (float32 for a model without any)."""
    for p in model.parameters():
        if p.dtype.kind == "f":
            return p.dtype
    return np.dtype("float32")


def _in_model_dtype(array: np.ndarray, dtype: Any) -> np.ndarray:
    """Floating data in the model's dtype — except whole numbers that the cast would change
    (token ids beyond 2**24 in float32), which are kept exact for the layer that checks them
    (``functions.indices``). Integer arrays (token ids, class labels) are left alone."""
    if array.dtype.kind != "f" or array.dtype == dtype:
        return array
    cast = array.astype(dtype)
    if np.array_equal(cast, array) or not np.array_equal(np.trunc(array), array):
        return cast  # nothing changed, or not ids: ordinary features and targets
    return array


def _batches(model: Any, arrays: tuple, batch_size: int, shuffle: bool = False) -> DataLoader:
    """Batches of ``arrays`` as Tensors on the model's device, floating data in its dtype."""
    dtype = _float_dtype(model)
    return DataLoader(ArrayDataset(*(_in_model_dtype(a, dtype) for a in arrays)), batch_size,
                      shuffle=shuffle, device=model.device)


class _ShardedBatches:
    """This rank's part of each global batch of ``batch_size`` samples, as Tensors on the
    model's device (data-parallel ``fit``). The epoch's order is rank 0's draw from minidl's
    generator (as ``DataLoader`` draws it), broadcast to all ranks. A rank's part of a short
    last batch may be empty; every rank yields the same number of batches."""

    def __init__(self, model: Any, arrays: tuple, batch_size: int, shuffle: bool,
                 comm: Communicator):
        dtype = _float_dtype(model)
        self.arrays = tuple(_in_model_dtype(a, dtype) for a in arrays)
        self.batch_size, self.shuffle, self.comm = batch_size, shuffle, comm
        self.device = model.device

    def __len__(self) -> int:
        return math.ceil(len(self.arrays[0]) / self.batch_size)

    def __iter__(self):
        n = len(self.arrays[0])
        order = np.arange(n)
        if self.shuffle:
            order = self.comm.broadcast_object(backend.permutation(n) if self.comm.rank == 0
                                               else None)
        for indices in distributed.shard_batches(order, self.batch_size, self.comm.rank,
                                                 self.comm.world_size):
            yield tuple(Tensor(backend.to_device(np.ascontiguousarray(a[indices]), self.device))
                        for a in self.arrays)


def _data_parallel_comm(data_parallel: Optional[bool]) -> Optional[Communicator]:
    """The job's communicator when ``fit`` should train data-parallel, else None."""
    if data_parallel is False or (data_parallel is None and not distributed.is_launched()):
        return None
    comm = distributed.init()
    return comm if comm.world_size > 1 else None


def _summed_over_ranks(comm: Communicator, means: "RunningMeans",
                       names: List[str]) -> "RunningMeans":
    """``means`` with the totals and counts of every rank added up (``names`` in order; a
    rank that has none of a name adds zeros)."""
    vector = backend.host_array([value for name in names for value in
                                 (means.totals.get(name, 0.0), means.counts.get(name, 0))],
                                dtype="float64")
    comm.all_reduce(vector, "sum")
    summed = RunningMeans()
    for i, name in enumerate(names):
        if vector[2 * i + 1] > 0:
            summed.add(name, float(vector[2 * i]), int(vector[2 * i + 1]))
    return summed


def _located(error: Exception, data: np.ndarray, name: str, offset: int = 0) -> Exception:
    """``error`` of a bad index inside a (shuffled) batch, told again with the index of its
    value in the user's ``data`` (``name``; row i of data is row offset + i there) and the
    user's dtype; ``error`` itself when the value is not in ``data``."""
    value = getattr(error, "value", None)
    matches = np.argwhere(data == value) if value is not None else []
    if not len(matches):
        return error
    index = [int(i) for i in matches[0]]
    index[0] += offset
    return error.located(f"{name}{index} ({name} has dtype {data.dtype})")


def _end_progress_lines(callbacks: CallbackList) -> None:
    """Finish a progress bar drawn half-way (Ctrl-C, an error), so the terminal's next line
    starts on a line of its own."""
    for callback in callbacks.callbacks:
        if isinstance(callback, ProgbarLogger):
            callback.end_line()


class RunningMeans:
    """Means of the loss and metrics over the samples seen so far (Keras' stateful metrics)."""

    def __init__(self) -> None:
        self.totals: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def add(self, name: str, total: float, count: int) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + total
        self.counts[name] = self.counts.get(name, 0) + count

    def update(self, loss: Tensor, prediction: Tensor, target: Tensor, metrics: Metrics,
               loss_value: Optional[float] = None) -> None:
        """Add one batch: the loss weighted by the batch size (``loss_value``, when the caller
        has already read it from the device), each metric's values."""
        n = len(target)
        if loss_value is None:
            loss_value = float(loss.item())
        self.add("loss", loss_value * n, n)
        for name, fn in (metrics or {}).items():
            values = fn(target.data, prediction.data)
            if getattr(values, "ndim", 0) == 0:  # one number for the batch
                self.add(name, float(values) * n, n)
            else:
                self.add(name, float(values.sum()), int(values.size))

    def result(self) -> Dict[str, float]:
        return {name: self.totals[name] / max(self.counts[name], 1) for name in self.totals}

    def merge(self, other: "RunningMeans") -> None:
        """Add the totals and counts of ``other``."""
        for name in other.totals:
            self.add(name, other.totals[name], other.counts[name])


def _callback_list(callbacks: Optional[Iterable[Callback]], model: Any, optimizer: Any,
                   params: Dict[str, Any], stream: Any, add_history: bool) -> CallbackList:
    """The user's callbacks plus, as Keras adds them, a ProgbarLogger first (when verbose, so
    the bar line comes before other callbacks' messages) and a History last."""
    callbacks = list(callbacks or [])
    if add_history and not any(isinstance(c, History) for c in callbacks):
        callbacks.append(History())
    if params.get("verbose") and not any(isinstance(c, ProgbarLogger) for c in callbacks):
        callbacks.insert(0, ProgbarLogger(stream))
    return CallbackList(callbacks, model=model, optimizer=optimizer, params=params)


# ----------------------------------------------------------------------------- the loops
def fit(model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], optimizer: Any, x: Any, y: Any,
        *, batch_size: int = 32, epochs: int = 1, verbose: int = 1,
        callbacks: Optional[Iterable[Callback]] = None, validation_split: float = 0.0,
        validation_data: Optional[tuple] = None, shuffle: bool = True, initial_epoch: int = 0,
        metrics: Metrics = None, stream: Any = None,
        data_parallel: Optional[bool] = None) -> History:
    """Train ``model`` on ``(x, y)`` for ``epochs`` epochs; returns the ``History``.

    Shape: x (n, ...) and y (n, ...) — any arrays the model and loss accept, one sample per row.
    ``validation_data=(x_val, y_val)`` (or ``validation_split``, the last fraction of the data,
    taken before shuffling) is evaluated after each epoch and logged with ``val_`` keys.
    ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch. Training stops early when a
    callback sets ``model.stop_training = True``, and when the loss becomes NaN or infinite:
    that batch's update is not made, and a ``NonFiniteLossWarning`` names the epoch and batch.
    The model is left in the mode it was in (also after Ctrl-C).
    ``data_parallel``: None trains data-parallel when started under ``mpiexec -n N`` (N > 1;
    see the module docstring), False never.
    """
    batch_size = _check_batch_size(batch_size)
    x, y = check_data(x, y)
    if y is None:
        raise ValueError("fit needs targets y")
    validation, y_val_name, y_val_offset = None, "y_val", 0
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val)")
        validation = check_data(validation_data[0], validation_data[1], ("x_val", "y_val"))
    elif validation_split:
        (x, y), validation = split_validation(x, y, validation_split)
        y_val_name, y_val_offset = "y", len(x)  # the last samples of the user's y
    n = len(x)
    steps = math.ceil(n / batch_size)
    comm = _data_parallel_comm(data_parallel)
    if comm is not None and comm.rank != 0:
        verbose = 0                                  # rank 0 shows the progress
    callbacks = _callback_list(callbacks, model, optimizer,
                               {"verbose": verbose, "epochs": epochs, "steps": steps}, stream,
                               add_history=True)
    history = next(c for c in callbacks.callbacks if isinstance(c, History))
    parallel, names = None, ["loss", *(metrics or {})]
    if comm is None:
        batches: Any = _batches(model, (x, y), batch_size, shuffle)  # reshuffled each epoch
    else:
        parallel = distributed.DistributedDataParallel(model, comm)  # rank 0's weights
        batches = _ShardedBatches(model, (x, y), batch_size, shuffle, comm)
    if validation is not None:  # cast once, not at every epoch
        dtype = _float_dtype(model)
        validation = tuple(_in_model_dtype(a, dtype) for a in validation) + validation[1:]
    was_training = model.training
    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs: Dict[str, float] = {}
    try:
        for epoch in range(initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            model.train()
            means = RunningMeans()
            for step, (xb, yb) in enumerate(batches):
                callbacks.on_train_batch_begin(step)
                if len(yb):  # a rank's part of a short last batch may be empty
                    prediction = model(xb)
                    try:
                        loss = loss_fn(prediction, yb)
                    except (IndexOutOfRangeError, NonIntegerIndexError) as error:
                        raise _located(error, y, "y") from None
                    loss_value = float(loss.item())
                if parallel is not None:  # the whole batch's loss and metrics, on every rank
                    batch_means = RunningMeans()
                    if len(yb):
                        batch_means.update(loss, prediction, yb, metrics, loss_value)
                    batch_means = _summed_over_ranks(comm, batch_means, names)
                    loss_value = batch_means.result().get("loss", math.nan)
                if math.isfinite(loss_value):
                    optimizer.zero_grad()
                    if len(yb):
                        loss.backward()
                    if parallel is not None:
                        parallel.sync_gradients(weight=len(yb))
                    optimizer.step()
                else:
                    warnings.warn(f"fit: the loss is {loss_value} at epoch {epoch + 1}/{epochs}, "
                                  f"batch {step + 1}/{steps}; training stopped without this "
                                  f"batch's update (the weights are those after the batch "
                                  f"before). Lower the learning rate, clip the gradients "
                                  f"(optim.clip_grad_norm) or check the data and the loss.",
                                  NonFiniteLossWarning, stacklevel=2)
                    model.stop_training = True
                if parallel is None:
                    means.update(loss, prediction, yb, metrics, loss_value)
                else:
                    means.merge(batch_means)
                callbacks.on_train_batch_end(step, means.result())
                if model.stop_training:
                    break
            epoch_logs = means.result()
            if validation is not None:
                val_logs = _evaluate(model, loss_fn, validation[0], validation[1], batch_size,
                                     metrics, callbacks, validation[2], y_val_name, y_val_offset,
                                     comm)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callbacks.on_epoch_end(epoch, epoch_logs)
            if model.stop_training:
                break
    except BaseException:
        _end_progress_lines(callbacks)
        raise
    finally:
        model.train(was_training)
    callbacks.on_train_end(epoch_logs)
    return history


def _evaluate(model: Any, loss_fn: Callable, x: np.ndarray, y: np.ndarray, batch_size: int,
              metrics: Metrics, callbacks: CallbackList, y_user: Optional[np.ndarray] = None,
              y_name: str = "y", y_offset: int = 0,
              comm: Optional[Communicator] = None) -> Dict[str, float]:
    """The mean loss and metrics over ``(x, y)`` in evaluation mode, without a graph; a bad
    label is named as row ``y_offset + i`` of the user's ``y_name`` (``y_user``, default y).
    With ``comm``, each rank evaluates its contiguous share of the rows and the sums are
    added up over the ranks."""
    if comm is not None:
        start, stop = distributed.shard_bounds(len(x), comm.rank, comm.world_size)
        if y_user is None:  # a bad label is then looked up in this rank's rows of y
            y_offset += start
        x, y = x[start:stop], y[start:stop]
    was_training = model.training
    model.eval()
    means = RunningMeans()
    callbacks.on_test_begin()
    try:
        with no_grad():
            for step, (xb, yb) in enumerate(_batches(model, (x, y), batch_size)):
                callbacks.on_test_batch_begin(step)
                prediction = model(xb)
                try:
                    loss = loss_fn(prediction, yb)
                except (IndexOutOfRangeError, NonIntegerIndexError) as error:
                    raise _located(error, y if y_user is None else y_user, y_name,
                                   y_offset) from None
                means.update(loss, prediction, yb, metrics)
                callbacks.on_test_batch_end(step, means.result())
    except BaseException:
        _end_progress_lines(callbacks)
        raise
    finally:
        model.train(was_training)
    if comm is not None:
        means = _summed_over_ranks(comm, means, ["loss", *(metrics or {})])
    logs = means.result()
    callbacks.on_test_end(logs)
    return logs


def evaluate(model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Any, y: Any, *,
             batch_size: int = 32, verbose: int = 1, metrics: Metrics = None,
             callbacks: Optional[Iterable[Callback]] = None,
             stream: Any = None) -> Dict[str, float]:
    """The loss and metrics of ``model`` on ``(x, y)``: ``{'loss': ..., name: ...}``."""
    batch_size = _check_batch_size(batch_size)
    x, y = check_data(x, y)
    if y is None:
        raise ValueError("evaluate needs targets y")
    steps = math.ceil(len(x) / batch_size)
    callbacks = _callback_list(callbacks, model, None,
                               {"verbose": verbose, "epochs": 1, "steps": steps}, stream,
                               add_history=False)
    return _evaluate(model, loss_fn, x, y, batch_size, metrics, callbacks)


def predict(model: Any, x: Any, *, batch_size: int = 32, verbose: int = 1,
            callbacks: Optional[Iterable[Callback]] = None,
            stream: Any = None) -> Union[np.ndarray, List[np.ndarray]]:
    """The model's outputs for ``x`` as a host NumPy array (a list of arrays for a model with
    several outputs), computed in evaluation mode, batch by batch. Shape: (n, ...)."""
    batch_size = _check_batch_size(batch_size)
    x, _ = check_data(x)
    callbacks = _callback_list(callbacks, model, None,
                               {"verbose": verbose, "epochs": 1,
                                "steps": math.ceil(len(x) / batch_size)}, stream,
                               add_history=False)
    was_training = model.training
    model.eval()
    outputs: List[Any] = []
    callbacks.on_predict_begin()
    try:
        with no_grad():
            for step, (xb,) in enumerate(_batches(model, (x,), batch_size)):
                callbacks.on_predict_batch_begin(step)
                out = model(xb)
                outputs.append([t.numpy() for t in out] if isinstance(out, (list, tuple))
                               else out.numpy())
                callbacks.on_predict_batch_end(step)
    except BaseException:
        _end_progress_lines(callbacks)
        raise
    finally:
        model.train(was_training)
    callbacks.on_predict_end()
    if isinstance(outputs[0], list):
        return [np.concatenate(parts) for parts in zip(*outputs)]
    return np.concatenate(outputs)
