"""The base of Keras' layers (Keras' ``layers/layer.py``) and its infrastructure: unique names,
model inputs as Tensors, training/inference mode, Keras initialisers on nn weights, ``Input``.

**Lazy building**, as Keras: a layer creates its weights the first time it sees an input
shape (``build(input_shape)``), so ``Dense(1)`` needs no input size. Shapes have the batch
axis first, written ``None`` when unknown: ``(None, 10)``.

**Modes**: layers run in inference mode (dropout off) unless ``fit`` is training them or they
are called with ``training=True``.

The concrete layers are in ``core.py`` and ``recurrent.py``; ``minidl.keras.models`` builds on
this module.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from minidl import backend, nn
from minidl.autograd import Tensor
from minidl.keras import initializers

Shape = Tuple[Optional[int], ...]

# Keras options minidl does not implement: accepted only at their default, None.
_UNSUPPORTED = ("kernel_regularizer", "bias_regularizer", "recurrent_regularizer",
                "activity_regularizer", "embeddings_regularizer", "kernel_constraint",
                "bias_constraint", "recurrent_constraint", "embeddings_constraint", "noise_shape")
# Keras performance hints and per-layer seeds; accepted and ignored (minidl has one seeded
# generator: md.manual_seed).
_IGNORED = ("unroll", "use_cudnn", "seed", "autocast")

_name_counts: Dict[str, int] = {}


def unique_name(base: str) -> str:
    """Keras-style names: ``dense``, ``dense_1``, ``dense_2`` ... in order of creation."""
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def _snake_case(name: str) -> str:
    """``GlobalAveragePooling1D`` → ``global_average_pooling1d``, as Keras names layers."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def to_input_tensor(x: Any) -> Tensor:
    """Model input as a Tensor (on the device of the data): NumPy data, lists or Tensors;
    floating data becomes float32 (Keras' floatx), integer data (token ids) stays integer —
    and so do whole-number floats that float32 cannot hold exactly (ids beyond 2**24), for the
    Embedding to check rather than receive changed."""
    if isinstance(x, Tensor):
        if x.dtype.kind == "f" and x.dtype != np.float32 and not x.requires_grad:
            return Tensor(x.data.astype(np.float32))  # Keras casts inputs to floatx
        return x
    x = x if hasattr(x, "shape") else np.asarray(x)
    if x.dtype.kind == "f" and x.dtype != np.float32:
        cast = x.astype(np.float32)
        xp = backend.get_array_module(x)
        changed_whole = bool((cast != x).any()) and bool((xp.trunc(x) == x).all())
        x = x if changed_whole else cast
    return Tensor(x)


@contextlib.contextmanager
def training_mode(module: nn.Module, training: Optional[bool]):
    """Run the block with ``module`` in training (True) or inference (False) mode, restoring
    its mode afterwards; None leaves the mode alone."""
    if training is None:
        yield
        return
    previous = module.training
    module.train(bool(training))
    try:
        yield
    finally:
        module.train(previous)


def initialise(param: nn.Parameter, initializer: Any, default: str) -> None:
    """Give ``param`` Keras' ``initializer`` (a name or a function) when it is not ``default``,
    the initialiser the wrapped nn layer already used."""
    if initializer == default:
        return
    param.data = initializers.get(initializer)(param.shape, dtype=param.dtype,
                                               device=param.device)


def serialize_value(value: Any) -> Any:
    """A layer argument as JSON: layers as ``{'class_name', 'config'}``, functions (activations,
    initialisers) by name, tuples as lists, NumPy numbers as Python numbers."""
    if isinstance(value, Layer):
        return {"class_name": type(value).__name__, "config": value.get_config()}
    if isinstance(value, (list, tuple)):
        return [serialize_value(v) for v in value]
    if isinstance(value, dict):
        return {k: serialize_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype) or isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if callable(value):
        from minidl.keras import activations
        return activations.name_of(value)
    return value


class Node:
    """One call of a layer in a functional model: the layer, the symbolic tensors it was called
    on, and those it returned."""

    def __init__(self, layer: "Layer", inputs: List["KerasTensor"], outputs_shape: Any,
                 dtype: str = "float32"):
        self.layer, self.inputs = layer, inputs
        shapes = outputs_shape if isinstance(outputs_shape, list) else [outputs_shape]
        self.outputs = [KerasTensor(tuple(shape), dtype, self, i) for i, shape in enumerate(shapes)]
        self.several = isinstance(outputs_shape, list)

    def returned(self) -> Any:
        return list(self.outputs) if self.several else self.outputs[0]


class KerasTensor:
    """A symbolic tensor of the functional API: what ``Input(...)`` and a layer called on one
    return. It has a ``shape`` (batch axis ``None``) and a ``dtype``, and remembers the layer
    call that made it, so that ``Model(inputs, outputs)`` can replay the graph on data."""

    def __init__(self, shape: Shape, dtype: str, node: Node, index: int = 0):
        self.shape, self.dtype, self.node, self.index = shape, dtype, node, index

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return (f"<KerasTensor shape={self.shape}, dtype={self.dtype}, "
                f"name={self.node.layer.name!r}>")


def is_symbolic(x: Any) -> bool:
    """A KerasTensor, or a list/tuple of them (the inputs of a merge layer)."""
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(t, KerasTensor) for t in x)
    return isinstance(x, KerasTensor)


class WeightLists:
    """Keras' views of a layer's or model's weights (its ``nn`` parameters)."""

    @property
    def weights(self) -> List[nn.Parameter]:
        return self.parameters()

    @property
    def trainable_weights(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def non_trainable_weights(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if not p.requires_grad]


class Layer(WeightLists, nn.Module):
    """Base class of Keras layers: a Module that builds its weights on the first input.

    Subclasses define ``build(input_shape)`` (make the nn modules), ``call(x, mask=None)``,
    ``compute_output_shape(input_shape)`` and, if they change the mask, ``compute_mask``.
    ``input_ndim``/``min_ndim`` state the rank the layer needs (batch axis included).
    """

    supports_masking = False
    input_ndim: Optional[int] = None
    min_ndim: Optional[int] = None
    rank_hint = ""
    autocast = True  # integer inputs become float32, as Keras casts them (not for Embedding)
    takes_list = False  # merge layers (Concatenate, Add, ...) take a list of inputs

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Record the arguments of the outermost ``__init__`` of every layer, for
        ``get_config`` (so a layer's config is exactly what it was made with)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def recording_init(self, *args: Any, **kw: Any) -> None:
            if "_init_call" not in self.__dict__:
                object.__setattr__(self, "_init_call", (init, args, kw))
            init(self, *args, **kw)
        cls.__init__ = recording_init

    def __init__(self, trainable: bool = True, name: Optional[str] = None,
                 dtype: Any = None, input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 input_dim: Optional[int] = None, **kwargs: Any):
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)  # Keras 2: Dense(32, input_dim=784)
        for option in _UNSUPPORTED:
            if kwargs.pop(option, None) is not None:
                raise NotImplementedError(f"{type(self).__name__}: {option} is not supported "
                                          f"by minidl.keras")
        for option in _IGNORED:
            kwargs.pop(option, None)
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                            f"{kwargs}")
        if dtype not in (None, "float32", np.float32):
            raise NotImplementedError(f"{type(self).__name__}: minidl.keras layers are float32 "
                                      f"(got dtype={dtype!r}); use minidl.nn for other dtypes")
        super().__init__()
        self.name = name or unique_name(_snake_case(type(self).__name__))
        self.built = False
        self._trainable = bool(trainable)
        self._build_device: Optional[str] = None
        self._last_dim: Optional[int] = None
        self._shapes: Optional[Tuple[Shape, Any]] = None  # (input, output) of the last build_for
        if batch_input_shape is not None:
            self.batch_input_shape: Optional[Shape] = tuple(batch_input_shape)
        elif input_shape is not None:
            self.batch_input_shape = (None,) + tuple(input_shape)
        else:
            self.batch_input_shape = None
        self.eval()

    # -- building
    def build(self, input_shape: Shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis first)."""

    def build_for(self, input_shape: Shape) -> None:
        """Check ``input_shape`` against what the layer needs; build on first use."""
        input_shape = tuple(input_shape)
        rank = len(input_shape)
        if (self.input_ndim is not None and rank != self.input_ndim) or \
                (self.min_ndim is not None and rank < self.min_ndim):
            expected = f"ndim={self.input_ndim}" if self.input_ndim is not None \
                else f"min_ndim={self.min_ndim}"
            raise ValueError(f'Input 0 of layer "{self.name}" is incompatible with the layer: '
                             f'expected {expected}, found ndim={rank}. Full shape received: '
                             f'{input_shape}{self.rank_hint}')
        if not self.built:
            self.build(input_shape)
            self.built = True
            self.train(self.training)  # modules made by build follow the layer's mode
            if not self._trainable:
                self.trainable = False
        if self._last_dim is not None and input_shape[-1] != self._last_dim:
            raise ValueError(f'Input 0 of layer "{self.name}" is incompatible with the layer: '
                             f'expected axis -1 of input shape to have value {self._last_dim}, '
                             f'but received input with shape {input_shape}')
        self._shapes = ((None,) + input_shape[1:], None)

    def _seen(self) -> Tuple[Shape, Any]:
        if self._shapes is None:
            raise AttributeError(f"The layer {self.name!r} has never been called and thus has no "
                                 f"defined input or output shape.")
        input_shape, output_shape = self._shapes
        if output_shape is None:
            output_shape = self.compute_output_shape(input_shape)
            self._shapes = (input_shape, output_shape)
        return input_shape, output_shape

    @property
    def input_shape(self) -> Shape:
        """The input shape the layer was last built or called with (batch axis ``None``);
        AttributeError before, as Keras 2."""
        return self._seen()[0]

    @property
    def output_shape(self) -> Any:
        """The output shape for ``input_shape`` (Keras 2's ``layer.output_shape``)."""
        return self._seen()[1]

    def compute_output_shape(self, input_shape: Shape) -> Any:
        return tuple(input_shape)

    def compute_mask(self, inputs: Tensor, mask: Any = None) -> Any:
        """The mask for the next layer: passed through by layers that support masking."""
        return mask if self.supports_masking else None

    def check_inputs(self, x: np.ndarray) -> None:
        """Check a whole data set before training or prediction (first layer only)."""

    # -- running
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """On data: ``forward``. On a ``KerasTensor`` (the functional API): build the layer for
        its shape and return the symbolic output(s)."""
        inputs = args[0] if args else kwargs.get("inputs")
        if is_symbolic(inputs):
            return self.call_symbolic(inputs)
        return self.forward(*args, **kwargs)

    def call_symbolic(self, inputs: Any) -> Any:
        if not isinstance(inputs, KerasTensor):
            raise TypeError(f"layer {self.name!r} takes one input; merge several with "
                            f"Concatenate() or Add() first")
        self.build_for(inputs.shape)
        node = Node(self, [inputs], self.compute_output_shape(inputs.shape))
        return node.returned()

    def call(self, x: Tensor, mask: Any = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.call")

    def forward(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> Any:
        x = to_input_tensor(inputs)
        if self.autocast and x.dtype != np.float32 and x.creator is None:
            x = Tensor(x.data.astype(np.float32))  # data in: Keras casts to floatx
        self.build_for((None,) + tuple(x.shape[1:]))
        weights = self.parameters()
        if weights:
            x = x.to(weights[0].device)
        with training_mode(self, training):
            return self.call(x, mask=mask)

    def to(self, device: str) -> "Layer":
        """Move the weights to ``device``; weights built later are made there too."""
        self._build_device = backend.check_device(device)
        return super().to(device)

    # -- weights, Keras style
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freeze (False) or unfreeze the layer's weights."""
        self._trainable = bool(value)
        for p in self.trainable_parameters():
            p.requires_grad = self._trainable

    def trainable_parameters(self) -> List[nn.Parameter]:
        """The weights that training may change (BatchNormalization's moving statistics are
        weights that it never does)."""
        return self.parameters()

    def get_weights(self) -> List[np.ndarray]:
        """The weights as host NumPy arrays (copies), in the layer's order."""
        return [p.numpy() for p in self.parameters()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        params = self.parameters()
        if len(weights) != len(params):
            raise ValueError(f"layer {self.name!r} has {len(params)} weights, got "
                             f"{len(weights)} arrays")
        self.load_state_dict(dict(zip(dict(self.named_parameters()), weights)))

    def count_params(self) -> int:
        return self.num_parameters()

    # -- configuration, Keras style
    def get_config(self) -> Dict[str, Any]:
        """The arguments the layer was made with, as JSON-ready values (activations and
        initialisers by name, wrapped layers as ``{'class_name', 'config'}``), with its current
        ``name`` and ``trainable``. ``type(layer).from_config(config)`` makes the same layer."""
        init, args, kwargs = self.__dict__.get("_init_call", (None, (), {}))
        config: Dict[str, Any] = {}
        if init is not None:
            bound = inspect.signature(init).bind(self, *args, **kwargs)
            bound.apply_defaults()
            for key, value in list(bound.arguments.items())[1:]:
                kind = inspect.signature(init).parameters[key].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    config.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    config[key] = value
        config.update(name=self.name, trainable=self.trainable)
        return {key: serialize_value(value) for key, value in config.items()}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Layer":
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class InputLayer(Layer):
    """The declared input of a model: ``Sequential([Input(shape=(10,)), ...])``.

    ``dtype`` is the dtype of the data fed in (Keras' ``Input(shape=(100,), dtype='int32')`` for
    token ids); floating data becomes float32, integer data stays integer, whatever is declared.
    """

    def __init__(self, shape: Optional[Sequence[Optional[int]]] = None,
                 batch_size: Optional[int] = None, name: Optional[str] = None,
                 dtype: Any = None, sparse: Optional[bool] = None, **kwargs: Any):
        if sparse:
            raise NotImplementedError("Input: sparse inputs are not supported by minidl.keras")
        if shape is None and "batch_input_shape" not in kwargs and "input_shape" not in kwargs:
            raise ValueError("Input needs a shape, e.g. Input(shape=(10,))")
        if shape is not None:
            if isinstance(shape, (int, np.integer)):
                shape = (shape,)
            kwargs["batch_input_shape"] = (batch_size,) + tuple(shape)
        super().__init__(name=name or unique_name("input_layer"), **kwargs)
        self.input_dtype = np.dtype(dtype or "float32").name
        self.built = True  # nothing to build
        self._shapes = (self.batch_input_shape, self.batch_input_shape)

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return x


def Input(shape: Optional[Sequence[Optional[int]]] = None, batch_size: Optional[int] = None,
          name: Optional[str] = None, dtype: Any = None, **kwargs: Any) -> KerasTensor:
    """The input of a model (shape without the batch axis): ``Input(shape=(10,))``,
    ``Input(shape=(None,), dtype='int32')`` for token ids of any length.

    Returns a symbolic ``KerasTensor``: call layers on it and give both ends to
    ``Model(inputs, outputs)``, or put it first in a ``Sequential``."""
    layer = InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype, **kwargs)
    return Node(layer, [], layer.batch_input_shape, layer.input_dtype).returned()
