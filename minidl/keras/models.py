"""Keras' ``Sequential`` model (``tensorflow.keras.models.Sequential``) on minidl.

    model = Sequential()
    model.add(Embedding(input_dim=1000, output_dim=50, input_length=10))
    model.add(LSTM(100))
    model.add(Dense(1, activation='sigmoid'))
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    history = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2)
    model.predict(x)                      # NumPy array (n, 1)

A ``Sequential`` is an ``nn.Sequential`` of Keras layers, so everything ``nn.Module`` offers
works too (``parameters()``, ``state_dict()``, ``to('cuda')``). Training runs
``minidl.training.fit`` with the compiled loss, metrics and optimizer.

Weights files: ``save_weights``/``load_weights`` write and read minidl's pickle-free ``.npz``
format (atomically) whatever the file name — Keras 3 wants ``.weights.h5``; minidl accepts any
name and never writes HDF5.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from minidl import nn
from minidl.autograd import Tensor
from minidl.functions.indices import first_out_of_range
from minidl.io import load, save
from minidl.keras import losses as losses_module
from minidl.keras import metrics as metrics_module
from minidl.keras import optimizers as optimizers_module
from minidl.keras.layers.layer import (InputLayer, Layer, Shape, to_input_tensor, training_mode,
                                       unique_name)
from minidl.keras.losses import integer_labels
from minidl.data.validation import check_data
from minidl.training import loop
from minidl.training.callbacks import Callback, History


def _verbosity(verbose: Any) -> int:
    """Keras' ``verbose``: 'auto' means 1 (progress bar); 0 silent; 2 one line per epoch."""
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _not_supported(method: str, **options: Any) -> None:
    """Raise for Keras options minidl does not implement, when they are used."""
    for option, value in options.items():
        if value is not None:
            raise NotImplementedError(f"{method}: {option} is not supported by minidl.keras")


def _readable_size(n_bytes: float) -> str:
    """Keras' memory size in summaries: ``238.48 KB``."""
    for unit in ("Byte", "KB", "MB", "GB", "TB"):
        if n_bytes < 1024:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} PB"


class Sequential(nn.Sequential):
    """A stack of Keras layers, each feeding the next (and passing on the padding mask).

    The model is built — every layer given its input shape and weights — when its input shape
    is first known: declared by the first layer (``input_shape=``, Embedding's
    ``input_length=``, or an ``Input``), by ``build(input_shape)``, or taken from the data of
    the first ``fit``/``evaluate``/``predict``/call.
    """

    def __init__(self, layers: Optional[Iterable[Layer]] = None, name: Optional[str] = None,
                 trainable: bool = True):
        super().__init__()
        self.name = name or unique_name("sequential")
        self.built = False
        self.optimizer: Optional[optimizers_module.Optimizer] = None
        self.loss: Any = None
        self.compiled_metrics: List[Tuple[str, Callable]] = []
        self.history: Optional[History] = None
        self.stop_training = False
        self._loss_fn: Optional[Callable] = None
        self._input_shape: Optional[Shape] = None
        self._output_shape: Any = None
        self._declared = False  # the input shape was declared, not taken from data
        self._build_device: Optional[str] = None
        self.eval()
        for layer in layers or ():
            self.add(layer)
        if not trainable:
            self.trainable = False

    # ------------------------------------------------------------------ layers and shapes
    @property
    def layers(self) -> List[Layer]:
        return list(self._modules.values())

    def add(self, layer: Layer) -> None:
        """Append a layer (an ``Input(shape=...)`` first declares the input shape)."""
        if isinstance(layer, InputLayer):
            if len(self):
                raise ValueError("an Input must come before every other layer of a Sequential "
                                 "model")
            self._input_shape, self._declared = layer.batch_input_shape, True
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"The added layer must be an instance of class Layer (a "
                            f"minidl.keras.layers layer). Received: layer={layer!r} of type "
                            f"{type(layer).__name__}")
        if getattr(layer, "return_state", False):
            raise ValueError(f"All layers in a Sequential model should have a single output "
                             f"tensor; {layer.name!r} has return_state=True. Call such a layer "
                             f"directly on a tensor instead.")
        if not len(self) and layer.batch_input_shape is not None and not self._declared:
            self._input_shape, self._declared = layer.batch_input_shape, True
        layer._build_device = layer._build_device or self._build_device
        self.append(layer)
        self.built = False
        if self._input_shape is not None:
            self.build(self._input_shape)

    def pop(self) -> Layer:
        """Remove and return the last layer."""
        if not len(self):
            raise TypeError("There are no layers in the model.")
        layer = self.layers[-1]
        delattr(self, str(len(self) - 1))
        if self._input_shape is not None and len(self):
            self.build(self._input_shape)
        return layer

    def build(self, input_shape: Optional[Sequence[Optional[int]]] = None) -> None:
        """Give every layer its input shape (batch axis first, e.g. ``(None, 10)``) and weights."""
        shape = tuple(input_shape) if input_shape is not None else self._input_shape
        if shape is None:
            raise ValueError("This model has not yet been built: give it an input shape with "
                             "model.build((None, ...)), an Input or input_shape= on the first "
                             "layer, or pass data to fit/predict")
        if self._declared:
            self._check_declared(shape)
        else:
            self._input_shape = (None,) + shape[1:]
        for layer in self.layers:
            layer.build_for(shape)
            shape = layer.compute_output_shape(shape)
        self._output_shape = shape
        self.built = True

    def _check_declared(self, shape: Shape) -> None:
        declared = self._input_shape
        if len(shape) != len(declared) or any(
                d is not None and s is not None and d != s for d, s in zip(declared, shape)):
            raise ValueError(f'Input 0 of layer "{self.name}" is incompatible with the layer: '
                             f'expected shape={declared}, found shape={(None,) + shape[1:]}')

    @property
    def input_shape(self) -> Optional[Shape]:
        return self._input_shape

    @property
    def output_shape(self) -> Any:
        if not self.built:
            raise AttributeError(f"model {self.name!r} has not been built yet, so it has no "
                                 f"output shape")
        return self._output_shape

    def to(self, device: str) -> "Sequential":
        """Move the weights to ``device``; layers built later are built there."""
        for layer in self.layers:
            layer.to(device)
        self._build_device = device
        return self

    # ------------------------------------------------------------------ running
    def forward(self, x: Any, training: Optional[bool] = None, mask: Any = None) -> Any:
        x = to_input_tensor(x)
        shape = (None,) + tuple(x.shape[1:])
        if not self.built:
            self.build(shape)
        elif self._declared:
            self._check_declared(shape)
        if self.parameters():
            x = x.to(self.device)
        with training_mode(self, training):
            for layer in self.layers:
                output = layer(x, mask=mask)
                mask = layer.compute_mask(x, mask)
                x = output
        return x

    # ------------------------------------------------------------------ compile / fit
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None,
                loss_weights: Any = None, metrics: Optional[Sequence[Any]] = None,
                weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: Any = "auto",
                auto_scale_loss: bool = True) -> None:
        """Choose the optimizer, loss and metrics (by name or object) for ``fit``.
        ``run_eagerly``, ``steps_per_execution``, ``jit_compile`` are accepted and ignored."""
        _not_supported("compile", loss_weights=loss_weights, weighted_metrics=weighted_metrics)
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list, e.g. metrics=['accuracy'], got "
                            f"{type(metrics).__name__}")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = loss
        self._loss_fn = losses_module.get(loss) if loss is not None else None
        self.compiled_metrics = [metrics_module.get(m) for m in metrics or ()]

    @property
    def metrics_names(self) -> List[str]:
        return ["loss"] + [name for name, _ in self.compiled_metrics]

    def _training_loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """The compiled loss, averaged over the batch (Keras' sum_over_batch_size)."""
        return self._loss_fn(target, prediction).mean()

    def _require_compiled(self, what: str) -> None:
        if self.optimizer is None or self._loss_fn is None:
            raise RuntimeError(f"You must compile your model before {what}: "
                               f"model.compile(optimizer='adam', loss='binary_crossentropy')")

    def _prepare(self, x: Any, y: Any = None, names: Tuple[str, str] = ("x", "y")):
        """Check the data before running: arrays, same lengths, no NaN, shapes that fit the
        model, token ids inside the Embedding, targets that fit the loss."""
        x, y = check_data(x, y, names)
        if not len(self):
            raise ValueError("the model has no layers: add some with model.add(...)")
        self.build((None,) + x.shape[1:])
        self.layers[0].check_inputs(x)
        if y is not None and self.loss is not None:
            self._check_targets(y, names[1])
        return x, y

    def _check_targets(self, y: np.ndarray, name: str) -> None:
        """Targets that cannot work with the compiled loss give an error now, not mid-epoch."""
        kind = losses_module.kind(self.loss)
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

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Any = "auto", callbacks: Optional[List[Callback]] = None,
            validation_split: float = 0.0, validation_data: Optional[tuple] = None,
            shuffle: bool = True, class_weight: Any = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: Any = None, validation_steps: Any = None,
            validation_batch_size: Any = None, validation_freq: int = 1) -> History:
        """Train for ``epochs`` epochs on ``(x, y)`` in batches of ``batch_size`` (32).

        ``validation_split``: the last fraction of the data (before shuffling) is held out;
        ``validation_data=(x_val, y_val)`` overrides it. Returns the ``History`` (also set as
        ``model.history``): per-epoch ``loss``, metrics and their ``val_`` versions.
        """
        self._require_compiled("training")
        _not_supported("fit", class_weight=class_weight, sample_weight=sample_weight,
                       steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                       validation_batch_size=validation_batch_size)
        if validation_freq != 1:
            raise NotImplementedError("fit: validation_freq other than 1 is not supported")
        x, y = self._prepare(x, y)
        if y is None:
            raise ValueError("fit needs targets: model.fit(x, y)")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val)")
            validation_data = self._prepare(validation_data[0], validation_data[1],
                                            ("x_val", "y_val"))
        self.optimizer.build(self.parameters())
        self.history = loop.fit(
            self, self._training_loss, self.optimizer, x, y,
            batch_size=32 if batch_size is None else batch_size, epochs=epochs,
            verbose=_verbosity(verbose), callbacks=callbacks, validation_split=validation_split,
            validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
            metrics=dict(self.compiled_metrics))
        return self.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Any = "auto", sample_weight: Any = None, steps: Any = None,
                 callbacks: Optional[List[Callback]] = None,
                 return_dict: bool = False) -> Union[float, List[float], Dict[str, float]]:
        """The loss (a float) when compiled without metrics, else ``[loss, *metrics]``
        (``return_dict=True``: ``{'loss': ..., 'accuracy': ...}``)."""
        self._require_compiled("evaluating")
        _not_supported("evaluate", sample_weight=sample_weight, steps=steps)
        x, y = self._prepare(x, y)
        if y is None:
            raise ValueError("evaluate needs targets: model.evaluate(x, y)")
        logs = loop.evaluate(self, self._training_loss, x, y,
                             batch_size=32 if batch_size is None else batch_size,
                             verbose=_verbosity(verbose), metrics=dict(self.compiled_metrics),
                             callbacks=callbacks)
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Any = "auto",
                steps: Any = None, callbacks: Optional[List[Callback]] = None) -> np.ndarray:
        """The outputs for ``x`` as a NumPy array, e.g. shape (n, 1) for ``Dense(1)``."""
        _not_supported("predict", steps=steps)
        x, _ = self._prepare(x)
        return loop.predict(self, x, batch_size=32 if batch_size is None else batch_size,
                            verbose=_verbosity(verbose), callbacks=callbacks)

    # ------------------------------------------------------------------ weights
    @property
    def trainable(self) -> bool:
        return all(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self.layers:
            layer.trainable = value

    @property
    def weights(self) -> List[nn.Parameter]:
        return self.parameters()

    def get_weights(self) -> List[np.ndarray]:
        """Every weight as a host NumPy array (copies), layer by layer."""
        return [p.numpy() for p in self.parameters()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        names = [name for name, _ in self.named_parameters()]
        if len(weights) != len(names):
            raise ValueError(f"model {self.name!r} has {len(names)} weights, got "
                             f"{len(weights)} arrays")
        self.load_state_dict(dict(zip(names, weights)))

    def count_params(self) -> int:
        return self.num_parameters()

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Write the weights to ``filepath`` (minidl's ``.npz`` format, atomically, any name)."""
        if not self.built:
            raise ValueError(f"model {self.name!r} has no weights yet: build it (fit, build or "
                             f"call it on data) before save_weights")
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"{filepath!r} exists and overwrite=False")
        save(self.state_dict(), filepath)

    def load_weights(self, filepath: str) -> None:
        """Read weights written by ``save_weights`` or by ``ModelCheckpoint`` into this model,
        which must have the same layers and be built. Mismatched names or shapes raise
        ``StateDictError``."""
        if not self.built:
            raise ValueError(f"model {self.name!r} is not built, so it has no weights to load "
                             f"into: build it first (model.build(input_shape) or call it on "
                             f"data)")
        state = load(filepath)
        if isinstance(state, dict) and {"model", "optimizer", "epoch"} <= set(state):
            state = state["model"]  # a full checkpoint (ModelCheckpoint, save_weights_only=False)
        self.load_state_dict(state)

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
        shape = self._input_shape if self.built else None
        for layer in self.layers:
            if shape is not None:
                shape = layer.compute_output_shape(shape)
            shown = str(shape) if shape is not None else "?"
            params = str(layer.count_params()) if layer.built else "0 (unbuilt)"
            lines.append(row([f" {layer.name} ({type(layer).__name__})", shown, params]))
        total = sum(p.data.nbytes for p in self.parameters())
        trainable = sum(p.data.nbytes for p in self.parameters() if p.requires_grad)
        count, count_trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        lines += ["=" * line_length,
                  f"Total params: {count} ({_readable_size(total)})",
                  f"Trainable params: {count_trainable} ({_readable_size(trainable)})",
                  f"Non-trainable params: {count - count_trainable} "
                  f"({_readable_size(total - trainable)})",
                  "_" * line_length]
        for line in lines:
            print_fn(line)
