"""Keras' ``Sequential`` model (``tensorflow.keras.models.Sequential``) on minidl.

    model = Sequential()
    model.add(Embedding(input_dim=1000, output_dim=50, input_length=10))
    model.add(LSTM(100))
    model.add(Dense(1, activation='sigmoid'))
    model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
    history = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2)
    model.predict(x)                      # NumPy array (n, 1)

A ``Sequential`` is a ``Model`` (``model.py``: compile, fit, evaluate, predict, saving) whose
layers form a chain, each feeding the next and passing on the padding mask. Everything
``nn.Module`` offers works too (``parameters()``, ``state_dict()``, ``to('cuda')``); the layers
are registered as ``'0'``, ``'1'``, ... (state dict keys ``'0.embedding.W'``, ...).

Weights files: ``save_weights``/``load_weights`` write and read minidl's pickle-free ``.npz``
format (atomically) whatever the file name — Keras 3 wants ``.weights.h5``; minidl accepts any
name and never writes HDF5.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

from minidl.keras.layers.layer import Layer, Shape, to_input_tensor, training_mode
from minidl.keras.models.model import Model, layers_of_input


class Sequential(Model):
    """A stack of Keras layers, each feeding the next (and passing on the padding mask).

    The model is built — every layer given its input shape and weights — when its input shape
    is first known: declared by the first layer (``input_shape=``, ``input_dim=``, Embedding's
    ``input_length=``, or an ``Input``), by ``build(input_shape)``, or taken from the data of
    the first ``fit``/``evaluate``/``predict``/call.
    """

    def __init__(self, layers: Optional[Iterable[Layer]] = None, name: Optional[str] = None,
                 trainable: bool = True):
        super().__init__(name=name)
        self._declared = False  # the input shape was declared, not taken from data
        object.__setattr__(self, "_input_layer", None)  # not a sub-module: it has no weights
        for layer in layers or ():
            self.add(layer)
        if not trainable:
            self.trainable = False

    def _default_name(self) -> str:
        return "sequential"

    # ------------------------------------------------------------------ layers and shapes
    @property
    def layers(self) -> List[Layer]:
        return list(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def add(self, layer: Any) -> None:
        """Append a layer (an ``Input(shape=...)`` first declares the input shape)."""
        input_layer = layers_of_input(layer)
        if input_layer is not None:
            if len(self):
                raise ValueError("an Input must come before every other layer of a Sequential "
                                 "model")
            self._input_shape, self._declared = input_layer.batch_input_shape, True
            object.__setattr__(self, "_input_layer", input_layer)
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
        setattr(self, str(len(self)), layer)
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
        elif not len(self):
            self.built, self._output_shape = False, None
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

    def _check_inputs(self, x: Any) -> None:
        if not len(self):
            raise ValueError("the model has no layers: add some with model.add(...)")
        self.layers[0].check_inputs(x)

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

    def _summary_rows(self) -> List[Tuple[Layer, Any]]:
        rows, shape = [], self._input_shape if self.built else None
        for layer in self.layers:
            if shape is not None:
                shape = layer.compute_output_shape(shape)
            rows.append((layer, shape))
        return rows
