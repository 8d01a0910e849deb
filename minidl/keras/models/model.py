"""Keras' ``Model``: the training API every Keras model shares, and the functional API.

    inputs = Input(shape=(100,), dtype='int32')
    x = Embedding(1000, 32)(inputs)
    a = LSTM(16)(x)
    b = GlobalMaxPooling1D()(x)
    outputs = Dense(1, activation='sigmoid')(Concatenate()([a, b]))
    model = Model(inputs, outputs)

A ``Model`` is an ``nn.Module`` of Keras layers. ``compile`` chooses the optimizer, loss and
metrics; ``fit``/``evaluate``/``predict`` run ``minidl.training``'s loop;
``train_on_batch``/``test_on_batch``/``predict_on_batch`` run one batch. ``Sequential``
(``sequential.py``) is a Model whose layers form a chain.

Sample weights, as Keras 2: ``fit(sample_weight=w)`` (one weight per sample) and
``class_weight={0: 1.0, 1: 5.0}`` (one per class; multiplied together when both are given)
weight each sample's loss; the batch loss is Σ wᵢ·lossᵢ / batch size (Keras'
sum_over_batch_size). Compiled metrics stay unweighted. The weights travel with the targets
through the training loop as one extra column.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from minidl import nn
from minidl.autograd import Tensor, no_grad
from minidl.data.loader import ArrayDataset, DataLoader
from minidl.data.validation import check_data
from minidl.functions.indices import first_out_of_range
from minidl.io import save
from minidl.keras import losses as losses_module
from minidl.keras import metrics as metrics_module
from minidl.keras import optimizers as optimizers_module
from minidl.keras.layers.layer import (InputLayer, KerasTensor, Layer, Shape, WeightLists,
                                       to_input_tensor, training_mode, unique_name)
from minidl.keras.losses import integer_labels
from minidl.keras.models import functional
from minidl.training import loop
from minidl.training.callbacks import Callback, History, ProgbarLogger


def verbosity(verbose: Any) -> int:
    """Keras' ``verbose``: 'auto' means 1 (progress bar); 0 silent; 2 one line per epoch."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def not_supported(method: str, **options: Any) -> None:
    """Raise for Keras options minidl does not implement, when they are used."""
    for option, value in options.items():
        if value is not None:
            raise NotImplementedError(f"{method}: {option} is not supported by minidl.keras")


def readable_size(n_bytes: float) -> str:
    """Keras' memory size in summaries: ``238.48 KB``."""
    for unit in ("Byte", "KB", "MB", "GB", "TB"):
        if n_bytes < 1024:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} PB"


# ----------------------------------------------------------------------------- sample weights
def sample_weights(y: np.ndarray, sample_weight: Any, class_weight: Any,
                   name: str = "y") -> Optional[np.ndarray]:
    """One weight per sample from Keras' ``sample_weight`` and ``class_weight`` (None if
    neither is given). Shape: (n,)."""
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.ndim == 2 and weights.shape[1] == 1:
            weights = weights[:, 0]
        if weights.ndim != 1 or len(weights) != len(y):
            raise ValueError(f"sample_weight must have one weight per sample, shape "
                             f"({len(y)},), got shape {weights.shape}")
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
    if class_weight is not None:
        by_class = class_weights(y, class_weight, name)
        weights = by_class if weights is None else weights * by_class
    return weights


def class_weights(y: np.ndarray, class_weight: Dict[int, float], name: str) -> np.ndarray:
    """Keras 2's ``class_weight``: the weight of each sample's class (the argmax of one-hot
    rows, else the label). Keys must be 0 … K−1."""
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class: weight}}, got "
                        f"{type(class_weight).__name__}")
    keys = sorted(class_weight)
    if keys != list(range(len(keys))):
        raise ValueError(f"Expected `class_weight` to be a dict with keys from 0 to one less "
                         f"than the number of classes, found {class_weight}")
    if y.ndim > 2:
        raise ValueError("`class_weight` not supported for 3+ dimensional targets.")
    labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(y))
    labels = labels.astype(np.int64)
    table = np.array([class_weight[k] for k in keys], dtype=np.float64)
    found = first_out_of_range(labels, len(table))
    if found is not None:
        raise ValueError(f"class_weight has no weight for class {found[0]} "
                         f"({name}{list(found[1])}); give one for each class 0 to "
                         f"{len(table) - 1}")
    return table[labels]


class _PackedTargets:
    """Targets with their sample weight as one last column: ``(n, k + 1)``, so that they are
    shuffled and batched together by the loop; ``unpack`` gives back both."""

    def __init__(self, y: np.ndarray):
        self.shape, self.dtype = y.shape[1:], y.dtype

    def pack(self, y: np.ndarray, weights: Optional[np.ndarray]) -> np.ndarray:
        weights = np.ones(len(y)) if weights is None else weights
        return np.concatenate([y.reshape(len(y), -1).astype(np.float64), weights[:, None]],
                              axis=1)

    def unpack(self, target: Any) -> Tuple[Any, Any]:
        data = target.data if isinstance(target, Tensor) else target
        y = data[:, :-1].reshape((len(data),) + tuple(self.shape))
        if self.dtype.kind in "biu":
            y = y.astype(self.dtype)
        return y, data[:, -1]


# ----------------------------------------------------------------------------- stateful metrics
class StatefulMetricsLogger(Callback):
    """Puts the results of stateful metrics (Precision, Recall, AUC: not means of per-sample
    values) into the logs, in place of the loop's running means. First among the callbacks, so
    every other one (progress bar, History, EarlyStopping) sees the right values. Validation
    inside ``fit`` gets states of its own."""

    def __init__(self, metrics: Dict[str, Any]):
        super().__init__()
        self.metrics = metrics
        self._saved: Dict[str, Any] = {}

    def _write(self, logs: Any) -> None:
        if logs is not None:
            for name, metric in self.metrics.items():
                logs[name] = metric.result()

    def _reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset_state()

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_train_batch_end(self, batch, logs=None):
        self._write(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._write(logs)

    def on_test_begin(self, logs=None):
        self._saved = {name: copy.deepcopy(m.__dict__) for name, m in self.metrics.items()}
        self._reset()

    def on_test_batch_end(self, batch, logs=None):
        self._write(logs)

    def on_test_end(self, logs=None):
        self._write(logs)
        for name, metric in self.metrics.items():
            metric.__dict__.update(self._saved.get(name, {}))


# ============================================================================= Model
class Model(WeightLists, nn.Module):
    """A Keras model: ``Model(inputs, outputs)`` (functional API) or a subclass that defines
    ``call(inputs)`` with layers set as attributes. See the module docstring."""

    def __init__(self, inputs: Any = None, outputs: Any = None, name: Optional[str] = None,
                 trainable: bool = True, **kwargs: Any):
        super().__init__()
        if kwargs:
            raise TypeError(f"Model got unexpected keyword arguments {sorted(kwargs)}")
        self.name = name or unique_name(self._default_name())
        self.built = False
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.loss: Any = None
        self.compiled_metrics: List[Tuple[str, Callable]] = []
        self._stateful_metrics: Dict[str, Any] = {}
        self._metrics_seen = False
        self.history: Optional[History] = None
        self.stop_training = False
        self._loss_fn: Optional[Callable] = None
        self._packing: Optional[_PackedTargets] = None
        self._batch_means: Optional[loop.RunningMeans] = None
        self._input_shape: Optional[Shape] = None
        self._output_shape: Any = None
        self._build_device: Optional[str] = None
        self.graph: Optional[functional.Graph] = None
        self.eval()
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model needs both inputs and outputs: Model(inputs, outputs)")
            self.graph = functional.Graph(inputs, outputs)
            for i, layer in enumerate(self.graph.layers):
                setattr(self, str(i), layer)
            self._input_shape = self.graph.input.shape
            self._output_shape = self.graph.output_shape
            self.built = True
        if not trainable:
            self.trainable = False

    def _default_name(self) -> str:
        return "model"

    # ------------------------------------------------------------------ layers and shapes
    @property
    def layers(self) -> List[Layer]:
        return [m for m in self._modules.values() if isinstance(m, Layer)]

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """A layer by name or by position in ``layers``."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[layer.name for layer in self.layers]}.")

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Functional models are built when made; check ``input_shape`` against the Input."""
        if self.graph is not None:
            if input_shape is not None:
                self.graph.check_shape(tuple(input_shape))
            return
        if input_shape is not None and not self.built:  # a subclassed model: run it once
            xp_shape = tuple(1 if n is None else n for n in input_shape)
            with no_grad():
                self.forward(Tensor(np.zeros(xp_shape, dtype=np.float32)))
            self._input_shape = (None,) + tuple(input_shape[1:])
            self.built = True

    @property
    def input_shape(self) -> Optional[Shape]:
        return self._input_shape

    @property
    def output_shape(self) -> Any:
        if not self.built or self._output_shape is None:
            raise AttributeError(f"model {self.name!r} has not been built yet, so it has no "
                                 f"output shape")
        return self._output_shape

    @property
    def inputs(self) -> List[KerasTensor]:
        return [self.graph.input] if self.graph is not None else []

    @property
    def outputs(self) -> List[KerasTensor]:
        return list(self.graph.outputs) if self.graph is not None else []

    @property
    def input(self) -> KerasTensor:
        return self.graph.input

    @property
    def output(self) -> Any:
        return self.graph.returned_outputs()

    def to(self, device: str) -> "Model":
        """Move the weights to ``device``; layers built later are built there."""
        for layer in self.layers:
            layer.to(device)
        self._build_device = device
        return self

    # ------------------------------------------------------------------ running
    def call(self, inputs: Tensor, training: Optional[bool] = None, mask: Any = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__}: make a Model from inputs and outputs "
                                  f"(Model(inputs, outputs)) or define call(inputs) in a subclass")

    def forward(self, x: Any, training: Optional[bool] = None, mask: Any = None) -> Any:
        x = to_input_tensor(x)
        if self.graph is not None:
            self.graph.check_shape((None,) + tuple(x.shape[1:]))
        if self.parameters():
            x = x.to(self.device)
        with training_mode(self, training):
            if self.graph is not None:
                return self.graph.run(x)
            output = self.call(x)
        if not self.built:
            self._input_shape = (None,) + tuple(x.shape[1:])
            self._output_shape = (None,) + tuple(output.shape[1:])
            self.built = True
        return output

    def _check_inputs(self, x: np.ndarray) -> None:
        """Check a whole data set against the layers that read the input (token ids inside
        an Embedding's range)."""
        first = self.graph.first_layers() if self.graph is not None else self.layers[:1]
        for layer in first:
            layer.check_inputs(x)

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None,
                loss_weights: Any = None, metrics: Optional[Sequence[Any]] = None,
                weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: Any = "auto",
                auto_scale_loss: bool = True, **kwargs: Any) -> None:
        """Choose the optimizer, loss and metrics (by name or object) for ``fit``.
        ``run_eagerly``, ``steps_per_execution``, ``jit_compile`` are accepted and ignored."""
        not_supported("compile", loss_weights=loss_weights, weighted_metrics=weighted_metrics)
        kwargs.pop("sample_weight_mode", None)  # Keras 2; None is the only mode minidl has
        if kwargs:
            raise TypeError(f"compile got unexpected keyword arguments {sorted(kwargs)}")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list, e.g. metrics=['accuracy'], got "
                            f"{type(metrics).__name__}")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss
        self._loss_fn = losses_module.get(loss) if loss is not None else None
        self.compiled_metrics, self._stateful_metrics = [], {}
        for metric in metrics or ():
            found = metrics_module.stateful(metric)
            if found is None:
                self.compiled_metrics.append(metrics_module.get(metric))
                continue
            name = found.name  # 'AUC' logs as 'auc', as Keras
            self.compiled_metrics.append((name, found.batch_update))
            self._stateful_metrics[name] = found
        self._compile_config = {"optimizer": optimizer, "loss": loss, "metrics": metrics}
        self._metrics_seen = False

    @property
    def metrics_names(self) -> List[str]:
        """``['loss', 'accuracy', ...]`` once the model has been trained or evaluated on data;
        ``[]`` before, as Keras 2 (tf.keras) reports it."""
        if not self._metrics_seen:
            return []
        return ["loss"] + [name for name, _ in self.compiled_metrics]

    def _loss_names(self) -> List[str]:
        return ["loss"] + [name for name, _ in self.compiled_metrics]

    def _metrics(self) -> Dict[str, Callable]:
        """The compiled metrics for the loop, reading targets through the weight packing."""
        packing = self._packing
        if packing is None:
            return dict(self.compiled_metrics)
        return {name: (lambda y, p, fn=fn: fn(packing.unpack(y)[0], p))
                for name, fn in self.compiled_metrics}

    def _training_loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """The compiled loss, averaged over the batch (Keras' sum_over_batch_size); with sample
        weights, Σ wᵢ·lossᵢ divided by the number of loss values."""
        if self._packing is None:
            return self._loss_fn(target, prediction).mean()
        y, weights = self._packing.unpack(target)
        values = self._loss_fn(y, prediction)
        weights = Tensor(weights.reshape((len(weights),) + (1,) * (values.ndim - 1))
                         .astype(values.dtype))
        return (values * weights).sum() * (1.0 / max(values.size, 1))

    def _require_compiled(self, what: str) -> None:
        if self.optimizer is None or self._loss_fn is None:
            raise RuntimeError(f"You must compile your model before {what}: "
                               f"model.compile(optimizer='adam', loss='binary_crossentropy')")

    def _prepare(self, x: Any, y: Any = None, names: Tuple[str, str] = ("x", "y")):
        """Check the data before running: arrays, same lengths, no NaN, shapes that fit the
        model, token ids inside the Embedding, targets that fit the loss."""
        x, y = check_data(x, y, names)
        if not self.layers and self.graph is None and type(self).call is Model.call:
            raise ValueError("the model has no layers: add some with model.add(...)")
        self.build((None,) + x.shape[1:])
        self._check_inputs(x)
        if y is not None and self.loss is not None and self.built:
            self._check_targets(y, names[1])
        return x, y

    def _check_targets(self, y: np.ndarray, name: str) -> None:
        """Targets that cannot work with the compiled loss give an error now, not mid-epoch."""
        kind = losses_module.kind(self.loss)
        if self._output_shape is None or isinstance(self._output_shape, list):
            return
        classes = self._output_shape[-1]
        if kind == "binary" and y.size and (y.min() < 0 or y.max() > 1):
            bad = y.min() if y.min() < 0 else y.max()
            where = tuple(int(i) for i in np.argwhere(y == bad)[0])
            raise ValueError(f"binary_crossentropy needs targets in [0, 1] (class 0 or 1, or a "
                             f"probability), but {name}{list(where)} is {bad}. For more than "
                             f"two classes use loss='sparse_categorical_crossentropy' with "
                             f"Dense(n_classes, activation='softmax').")
        if kind == "sparse_categorical":
            labels = integer_labels(y, f"sparse_categorical_crossentropy ({name})")
            found = first_out_of_range(labels, classes)
            if found is not None:
                bad, where = found
                raise ValueError(f"sparse_categorical_crossentropy: label {bad} at "
                                 f"{name}{list(where)} is not a class of this model, whose last "
                                 f"layer has {classes} units (labels 0 to {classes - 1})")
        if kind == "categorical" and y.shape[-1] != classes:
            raise ValueError(f"categorical_crossentropy needs one-hot targets of {classes} "
                             f"columns (the last layer's units), but {name} has shape {y.shape}. "
                             f"For integer labels use loss='sparse_categorical_crossentropy' "
                             f"(or one-hot encode them with minidl.keras.utils.to_categorical).")

    def _callbacks(self, callbacks: Optional[List[Callback]], verbose: int) -> List[Callback]:
        """The user's callbacks, with the stateful-metrics logger first when needed (and the
        progress bar right after it, so that the bar shows the metrics' own results)."""
        callbacks = list(callbacks or [])
        if not self._stateful_metrics:
            return callbacks
        first: List[Callback] = [StatefulMetricsLogger(self._stateful_metrics)]
        if verbose and not any(isinstance(c, ProgbarLogger) for c in callbacks):
            first.append(ProgbarLogger())
        return first + callbacks

    # ------------------------------------------------------------------ fit / evaluate / predict
    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Any = "auto", callbacks: Optional[List[Callback]] = None,
            validation_split: float = 0.0, validation_data: Optional[tuple] = None,
            shuffle: bool = True, class_weight: Any = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: Any = None, validation_steps: Any = None,
            validation_batch_size: Any = None, validation_freq: int = 1,
            **kwargs: Any) -> History:
        """Train for ``epochs`` epochs on ``(x, y)`` in batches of ``batch_size`` (32).

        ``validation_split``: the last fraction of the data (before shuffling) is held out;
        ``validation_data=(x_val, y_val)`` (or ``(x_val, y_val, val_sample_weight)``) overrides
        it. ``sample_weight``/``class_weight``: see the module docstring. Returns the
        ``History`` (also set as ``model.history``): per-epoch ``loss``, metrics and their
        ``val_`` versions. Keras 2's ``nb_epoch`` is accepted for ``epochs``.
        """
        if "nb_epoch" in kwargs:
            epochs = kwargs.pop("nb_epoch")
        if kwargs:
            raise TypeError(f"fit got unexpected keyword arguments {sorted(kwargs)}")
        self._require_compiled("training")
        not_supported("fit", steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                      validation_batch_size=validation_batch_size)
        if validation_freq != 1:
            raise NotImplementedError("fit: validation_freq other than 1 is not supported")
        x, y = self._prepare(x, y)
        if y is None:
            raise ValueError("fit needs targets: model.fit(x, y)")
        weights = sample_weights(y, sample_weight, class_weight)
        validation_weights = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, val_sample_weight)")
            x_val, y_val = self._prepare(validation_data[0], validation_data[1],
                                         ("x_val", "y_val"))
            if len(validation_data) == 3 and validation_data[2] is not None:
                validation_weights = sample_weights(y_val, validation_data[2], None, "y_val")
            validation_data = (x_val, y_val)
        packing = None
        if weights is not None or validation_weights is not None:
            packing = _PackedTargets(y)
            if validation_data is None and validation_split:
                # Split here: the held-out part keeps its sample weights but, as Keras 2,
                # not the class weights, which are for training only.
                split_at = len(loop.split_validation(x, y, validation_split)[0][0])
                unweighted = sample_weights(y, sample_weight, None)
                validation_data = (x[split_at:], y[split_at:])
                if unweighted is not None:
                    validation_weights = unweighted[split_at:]
                x, y, weights = x[:split_at], y[:split_at], weights[:split_at]
                validation_split = 0.0
            y = packing.pack(y, weights)
            if validation_data is not None:
                validation_data = (validation_data[0],
                                   packing.pack(validation_data[1], validation_weights))
        self.optimizer.build(self.parameters())
        verbose = verbosity(verbose)
        self._packing = packing
        try:
            self.history = loop.fit(
                self, self._training_loss, self.optimizer, x, y,
                batch_size=32 if batch_size is None else batch_size, epochs=epochs,
                verbose=verbose, callbacks=self._callbacks(callbacks, verbose),
                validation_split=validation_split, validation_data=validation_data,
                shuffle=shuffle, initial_epoch=initial_epoch, metrics=self._metrics())
        finally:
            self._packing = None
        self._metrics_seen = True
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Any = "auto", sample_weight: Any = None, steps: Any = None,
                 callbacks: Optional[List[Callback]] = None,
                 return_dict: bool = False) -> Union[float, List[float], Dict[str, float]]:
        """The loss (a float) when compiled without metrics, else ``[loss, *metrics]``
        (``return_dict=True``: ``{'loss': ..., 'accuracy': ...}``)."""
        self._require_compiled("evaluating")
        not_supported("evaluate", steps=steps)
        x, y = self._prepare(x, y)
        if y is None:
            raise ValueError("evaluate needs targets: model.evaluate(x, y)")
        weights = sample_weights(y, sample_weight, None)
        packing = None
        if weights is not None:
            packing = _PackedTargets(y)
            y = packing.pack(y, weights)
        verbose = verbosity(verbose)
        self._packing = packing
        try:
            logs = loop.evaluate(self, self._training_loss, x, y,
                                 batch_size=32 if batch_size is None else batch_size,
                                 verbose=verbose, metrics=self._metrics(),
                                 callbacks=self._callbacks(callbacks, verbose))
        finally:
            self._packing = None
        self._metrics_seen = True
        return self._report(logs, return_dict)

    def _report(self, logs: Dict[str, float], return_dict: bool) -> Any:
        if return_dict:
            return logs
        values = [logs[name] for name in self._loss_names()]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Any = "auto",
                steps: Any = None, callbacks: Optional[List[Callback]] = None) -> np.ndarray:
        """The outputs for ``x`` as a NumPy array, e.g. shape (n, 1) for ``Dense(1)``."""
        not_supported("predict", steps=steps)
        x, _ = self._prepare(x)
        return loop.predict(self, x, batch_size=32 if batch_size is None else batch_size,
                            verbose=verbosity(verbose), callbacks=callbacks)

    # ------------------------------------------------------------------ one batch
    def _one_batch(self, x: np.ndarray, y: np.ndarray) -> Tuple[Tensor, Tensor]:
        loader = DataLoader(ArrayDataset(x, y), batch_size=len(x), device=self.device,
                            dtype=np.float32)
        return next(iter(loader))

    def _batch_logs(self, loss: Tensor, prediction: Tensor, target: Tensor,
                    reset_metrics: bool) -> Dict[str, float]:
        if reset_metrics or self._batch_means is None:
            self._batch_means = loop.RunningMeans()
            for metric in self._stateful_metrics.values():
                metric.reset_state()
        self._batch_means.update(loss, prediction, target, self._metrics())
        logs = self._batch_means.result()
        for name, metric in self._stateful_metrics.items():
            logs[name] = metric.result()
        self._metrics_seen = True
        return logs

    def _run_batch(self, x: Any, y: Any, sample_weight: Any, class_weight: Any, train: bool,
                   reset_metrics: bool) -> Dict[str, float]:
        """One batch through the model: a gradient step when ``train``; its logs."""
        self._require_compiled("training" if train else "evaluating")
        x, y = self._prepare(x, y)
        weights = sample_weights(y, sample_weight, class_weight)
        self._packing = _PackedTargets(y) if weights is not None else None
        try:
            if self._packing is not None:
                y = self._packing.pack(y, weights)
            xb, yb = self._one_batch(x, y)
            if train:
                self.optimizer.build(self.parameters())
                with training_mode(self, True):
                    prediction = self(xb)
                loss = self._training_loss(prediction, yb)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
            else:
                with no_grad(), training_mode(self, False):
                    prediction = self(xb)
                    loss = self._training_loss(prediction, yb)
            return self._batch_logs(loss, prediction, yb, reset_metrics)
        finally:
            self._packing = None

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                       class_weight: Any = None, reset_metrics: bool = True,
                       return_dict: bool = False) -> Any:
        """One gradient step on the batch ``(x, y)``; returns the loss (and metrics) of the
        batch, as ``evaluate`` does. ``reset_metrics=False`` averages over successive calls."""
        logs = self._run_batch(x, y, sample_weight, class_weight, True, reset_metrics)
        return self._report(logs, return_dict)

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Any = None,
                      reset_metrics: bool = True, return_dict: bool = False) -> Any:
        """The loss (and metrics) on one batch, without training."""
        logs = self._run_batch(x, y, sample_weight, None, False, reset_metrics)
        return self._report(logs, return_dict)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """The outputs for one batch, as a NumPy array."""
        x, _ = self._prepare(x)
        with no_grad(), training_mode(self, False):
            out = self(to_input_tensor(x))
        return [t.numpy() for t in out] if isinstance(out, (list, tuple)) else out.numpy()

    # ------------------------------------------------------------------ weights
    @property
    def trainable(self) -> bool:
        return all(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self.layers:
            layer.trainable = value

    def get_weights(self) -> List[np.ndarray]:
        """Every weight as a host NumPy array (copies), layer by layer, each layer's in Keras'
        layout (``layer.get_weights()``), so ``set_weights(keras_model.get_weights())`` works."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        weights = list(weights)
        counts = [len(layer.get_weights()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(f"model {self.name!r} has {sum(counts)} weights, got "
                             f"{len(weights)} arrays")
        for layer, count in zip(self.layers, counts):
            layer.set_weights(weights[:count])
            weights = weights[count:]

    def count_params(self) -> int:
        return self.num_parameters()

    def save_weights(self, filepath: str, overwrite: bool = True, **kwargs: Any) -> None:
        """Write the weights to ``filepath`` (minidl's ``.npz`` format, atomically, any name)."""
        if not self.built:
            raise ValueError(f"model {self.name!r} has no weights yet: build it (fit, build or "
                             f"call it on data) before save_weights")
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath!r} exists and overwrite=False")
        save(self.state_dict(), os.fspath(filepath))

    def load_weights(self, filepath: str, **kwargs: Any) -> None:
        """Read weights written by ``save_weights`` or by ``ModelCheckpoint`` into this model,
        which must have the same layers and be built. Mismatched names or shapes raise
        ``StateDictError``."""
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built, so it has no weights to load "
                             f"into: build it first (model.build(input_shape) or call it on "
                             f"data)")
        from minidl.keras.models import saving
        state = saving.read_weights(os.fspath(filepath))
        if isinstance(state, dict) and {"model", "optimizer", "epoch"} <= set(state):
            state = state["model"]  # a full checkpoint (training.ModelCheckpoint)
        self.load_state_dict(state)

    # ------------------------------------------------------------------ saving (saving.py)
    def save(self, filepath: str, overwrite: bool = True, include_optimizer: bool = True,
             save_format: Optional[str] = None, **kwargs: Any) -> None:
        """Write the whole model — architecture, weights, compile settings and optimizer state —
        to one file that ``keras.models.load_model`` reads back. See ``saving.py``."""
        from minidl.keras.models import saving
        saving.save_model(self, filepath, overwrite=overwrite,
                          include_optimizer=include_optimizer, save_format=save_format)

    def get_config(self) -> Dict[str, Any]:
        """The architecture as a JSON-ready dict (``from_config`` rebuilds it)."""
        from minidl.keras.models import saving
        return saving.model_config(self)["config"]

    @classmethod
    def from_config(cls, config: Dict[str, Any], custom_objects: Any = None) -> "Model":
        from minidl.keras.models import saving
        return saving.model_from_config({"class_name": cls.__name__, "config": config},
                                        custom_objects)

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as a JSON string (``models.model_from_json`` rebuilds it)."""
        from minidl.keras.models import saving
        return saving.to_json(self, **kwargs)

    # ------------------------------------------------------------------ summary
    def summary(self, line_length: Optional[int] = None,
                positions: Optional[Sequence[float]] = None,
                print_fn: Optional[Callable[[str], Any]] = None, **unused: Any) -> None:
        """Print a table of the layers, output shapes and parameter counts (Keras 2 layout).
        ``print_fn`` is called once per line (``print`` by default)."""
        line_length = line_length or 65
        positions = list(positions or [0.45, 0.85, 1.0])
        if positions[-1] <= 1:
            positions = [int(line_length * p) for p in positions]
        print_fn = print_fn or print

        def row(fields: Sequence[str]) -> str:
            line = ""
            for text, end in zip(fields, positions):
                line = (line + text).ljust(end)
                if len(line) > end:  # too long for its column: keep two spaces before the next
                    line += "  "
            return line.rstrip() if len(line) > positions[-1] else line

        lines = [f'Model: "{self.name}"', "_" * line_length,
                 row([" Layer (type)", "Output Shape", "Param #"]), "=" * line_length]
        for layer, shape in self._summary_rows():
            shown = str(shape) if shape is not None else "?"
            params = str(layer.count_params()) if layer.built else "0 (unbuilt)"
            lines.append(row([f" {layer.name} ({type(layer).__name__})", shown, params]))
        total = sum(p.data.nbytes for p in self.parameters())
        trainable = sum(p.data.nbytes for p in self.parameters() if p.requires_grad)
        count, count_trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        lines += ["=" * line_length,
                  f"Total params: {count} ({readable_size(total)})",
                  f"Trainable params: {count_trainable} ({readable_size(trainable)})",
                  f"Non-trainable params: {count - count_trainable} "
                  f"({readable_size(total - trainable)})",
                  "_" * line_length]
        for line in lines:
            print_fn(line)

    def _summary_rows(self) -> List[Tuple[Layer, Any]]:
        if self.graph is not None:
            return self.graph.summary_rows()
        return [(layer, layer._shapes[1] if layer._shapes else None) for layer in self.layers]


def layers_of_input(x: Any) -> Optional[InputLayer]:
    """The InputLayer behind ``Input(...)``'s symbolic tensor (or the layer itself)."""
    if isinstance(x, KerasTensor) and isinstance(x.node.layer, InputLayer):
        return x.node.layer
    return x if isinstance(x, InputLayer) else None
