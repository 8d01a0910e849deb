"""Keras' layers (``tensorflow.keras.layers``), each a thin wrapper of a ``minidl.nn`` module.

    Embedding(input_dim, output_dim, mask_zero=False, input_length=None)  → nn.Embedding
    LSTM(units, return_sequences=False, return_state=False)               → nn.LSTM
    GRU(units, ...), SimpleRNN(units, ...)                                 → nn.GRU, nn.RNN
    Dense(units, activation=None)                                          → nn.Linear + activation
    Dropout(rate), Flatten(), GlobalAveragePooling1D(), Activation(name), Input(shape)

**Lazy building**, as Keras: a layer creates its weights the first time it sees an input
shape (``build(input_shape)``), so ``Dense(1)`` needs no input size. Shapes have the batch
axis first, written ``None`` when unknown: ``(None, 10)``.

**Masking**, as Keras: ``Embedding(mask_zero=True)`` marks token id 0 as padding; the mask
travels to the next layers of a ``Sequential`` model. Recurrent layers leave their state
unchanged at masked steps, so a pre-padded sequence gives the same final output as the
unpadded one; ``GlobalAveragePooling1D`` averages over the unmasked steps only.

**Modes**: layers run in inference mode (dropout off) unless ``fit`` is training them or they
are called with ``training=True``.

Weights and defaults are Keras': Dense and recurrent kernels glorot-uniform, recurrent kernels
orthogonal, biases zero (LSTM forget gate 1), embeddings U(−0.05, 0.05).
"""
from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from minidl import backend, nn
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.keras import activations, initializers
from minidl.keras.losses import integer_labels

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
    floating data becomes float32 (Keras' floatx), integer data (token ids) stays integer."""
    if isinstance(x, Tensor):
        return x
    x = x if hasattr(x, "shape") else np.asarray(x)
    if x.dtype.kind == "f" and x.dtype != np.float32:
        x = x.astype(np.float32)
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


def _mask_array(mask: Any, x: Tensor) -> Any:
    """A (batch, time) mask as 0/1 values in x's dtype."""
    mask = mask.data if isinstance(mask, Tensor) else mask
    return mask.astype(x.dtype)


def _initialise(param: nn.Parameter, initializer: Any, default: str) -> None:
    """Replace the values the nn layer chose when the Keras initialiser is not its default."""
    if initializer == default:
        return
    param.data = initializers.get(initializer)(param.shape, dtype=param.dtype,
                                               device=param.device)


class Layer(nn.Module):
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

    def __init__(self, trainable: bool = True, name: Optional[str] = None,
                 dtype: Any = None, input_shape: Optional[Sequence[Optional[int]]] = None,
                 batch_input_shape: Optional[Sequence[Optional[int]]] = None,
                 **kwargs: Any):
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

    def compute_output_shape(self, input_shape: Shape) -> Any:
        return tuple(input_shape)

    def compute_mask(self, inputs: Tensor, mask: Any = None) -> Any:
        """The mask for the next layer: passed through by layers that support masking."""
        return mask if self.supports_masking else None

    def check_inputs(self, x: np.ndarray) -> None:
        """Check a whole data set before training or prediction (first layer only)."""

    # -- running
    def call(self, x: Tensor, mask: Any = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.call")

    def forward(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> Any:
        x = to_input_tensor(inputs)
        if self.autocast and x.dtype.kind in "biu":
            x = Tensor(x.data.astype(np.float32))
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
        for p in self.parameters():
            p.requires_grad = self._trainable

    @property
    def weights(self) -> List[nn.Parameter]:
        return self.parameters()

    @property
    def trainable_weights(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def non_trainable_weights(self) -> List[nn.Parameter]:
        return [p for p in self.parameters() if not p.requires_grad]

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

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class InputLayer(Layer):
    """The declared input of a model: ``Sequential([Input(shape=(10,)), ...])``."""

    def __init__(self, shape: Optional[Sequence[Optional[int]]] = None,
                 batch_size: Optional[int] = None, name: Optional[str] = None, **kwargs: Any):
        if shape is None and "batch_input_shape" not in kwargs and "input_shape" not in kwargs:
            raise ValueError("Input needs a shape, e.g. Input(shape=(10,))")
        if shape is not None:
            kwargs["batch_input_shape"] = (batch_size,) + tuple(shape)
        super().__init__(name=name or unique_name("input_layer"), **kwargs)

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return x


def Input(shape: Optional[Sequence[Optional[int]]] = None, batch_size: Optional[int] = None,
          name: Optional[str] = None, dtype: Any = None, **kwargs: Any) -> InputLayer:
    """The input of a Sequential model (shape without the batch axis): ``Input(shape=(10,))``."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype, **kwargs)


class Dense(Layer):
    """activation(x @ W + b) on the last axis. Shape: (batch, ..., in) -> (batch, ..., units).

    Wraps ``nn.Linear`` (``self.linear``: W glorot-uniform, b zeros) made at the first call.
    """

    supports_masking = True
    min_ndim = 2

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be a positive integer, got {units!r}")
        self.units, self.use_bias = int(units), use_bias
        self.activation = activations.get(activation)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape: Shape) -> None:
        in_features = input_shape[-1]
        if in_features is None:
            raise ValueError(f"The last dimension of the inputs to Dense layer {self.name!r} "
                             f"should be defined. Found None (shape {input_shape}).")
        self.linear = nn.Linear(in_features, self.units, bias=self.use_bias,
                                device=self._build_device)
        _initialise(self.linear.W, self.kernel_initializer, "glorot_uniform")
        if self.use_bias:
            _initialise(self.linear.b, self.bias_initializer, "zeros")
        self._last_dim = in_features

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return self.activation(self.linear(x))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape[:-1]) + (self.units,)

    def extra_repr(self) -> str:
        return (f"{self.units}, activation={activations.name_of(self.activation)!r}, "
                f"name={self.name!r}")


class Activation(Layer):
    """An activation function as a layer: ``Activation('relu')``. Shape: unchanged."""

    supports_masking = True

    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return self.activation(x)


class Dropout(Layer):
    """Inverted dropout with probability ``rate`` while training; the identity otherwise.
    Shape: unchanged."""

    supports_masking = True

    def __init__(self, rate: float, noise_shape: Any = None, seed: Any = None, **kwargs: Any):
        super().__init__(noise_shape=noise_shape, seed=seed, **kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = rate

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return F.dropout(x, self.rate, self.training)

    def extra_repr(self) -> str:
        return f"rate={self.rate}, name={self.name!r}"


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1·d2·...)."""

    def __init__(self, data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return x.reshape(x.shape[0], -1)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        rest = input_shape[1:]
        size = None if any(n is None for n in rest) else int(math.prod(rest))
        return (input_shape[0], size)


class GlobalAveragePooling1D(Layer):
    """The mean over the time axis. Shape: (batch, steps, features) -> (batch, features)
    (``keepdims``: (batch, 1, features); ``data_format='channels_first'``: (batch, features,
    steps) in). With a mask, the mean over the unmasked steps (a fully masked row gives 0,
    where Keras would divide by zero)."""

    supports_masking = True
    input_ndim = 3

    def __init__(self, data_format: str = "channels_last", keepdims: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                             f"{data_format!r}")
        self.data_format, self.keepdims = data_format, keepdims

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        steps_axis = 1 if self.data_format == "channels_last" else 2
        if mask is None:
            return x.mean(axis=steps_axis, keepdims=self.keepdims)
        m = _mask_array(mask, x)
        m = m[:, :, None] if steps_axis == 1 else m[:, None, :]
        xp = backend.get_array_module(m)
        count = xp.maximum(m.sum(axis=steps_axis, keepdims=self.keepdims), 1)
        return (x * Tensor(m)).sum(axis=steps_axis, keepdims=self.keepdims) / Tensor(count)

    def compute_mask(self, inputs: Tensor, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        batch = input_shape[0]
        features = input_shape[2] if self.data_format == "channels_last" else input_shape[1]
        if self.keepdims:
            return (batch, 1, features) if self.data_format == "channels_last" \
                else (batch, features, 1)
        return (batch, features)


class Embedding(Layer):
    """Token id -> vector. Shape: (batch, length) integers in [0, input_dim) ->
    (batch, length, output_dim).

    Wraps ``nn.Embedding`` (``self.embedding``, weights U(−0.05, 0.05)). ``mask_zero=True``
    treats id 0 as padding and passes a mask to the next layers. ``input_length`` (Keras 2)
    declares the sequence length: inputs of another length are then an error. Ids given as
    whole-number floats are cast to integers, as Keras does.
    """

    autocast = False

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 mask_zero: bool = False, input_length: Optional[int] = None, **kwargs: Any):
        if input_length is not None and "input_shape" not in kwargs \
                and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        for what, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Embedding: {what} must be a positive integer, got {value!r}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer, self.mask_zero = embeddings_initializer, mask_zero
        self.input_length = input_length

    def build(self, input_shape: Shape) -> None:
        self.embedding = nn.Embedding(self.input_dim, self.output_dim, device=self._build_device)
        _initialise(self.embedding.W, self.embeddings_initializer, "uniform")

    def _ids(self, x: Any) -> Any:
        data = x.data if isinstance(x, Tensor) else x
        return integer_labels(data, f"Embedding layer {self.name!r}", "integer token ids")

    def check_inputs(self, x: np.ndarray) -> None:
        """Every id of the data set must be an integer in [0, input_dim)."""
        ids = self._ids(x)
        if ids.size == 0:
            return
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.input_dim:
            bad = low if low < 0 else high
            where = tuple(int(i) for i in np.argwhere(ids == bad)[0])
            raise IndexError(f"Embedding layer {self.name!r}: token id {bad} at x{list(where)} "
                             f"is out of range; input_dim={self.input_dim} allows ids 0 to "
                             f"{self.input_dim - 1}. Make input_dim larger than the largest "
                             f"id, e.g. input_dim=len(tokenizer.word_index) + 1.")

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return self.embedding(self._ids(x))

    def compute_mask(self, inputs: Tensor, mask: Any = None) -> Any:
        return (inputs.data != 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape) + (self.output_dim,)

    def extra_repr(self) -> str:
        return (f"{self.input_dim}, {self.output_dim}, mask_zero={self.mask_zero}, "
                f"name={self.name!r}")


class _Recurrent(Layer):
    """Shared by LSTM, GRU and SimpleRNN: wraps an ``nn`` recurrent layer made at the first
    call. Output: the last output (batch, units), or every step's (batch, timesteps, units)
    with ``return_sequences``; with ``return_state`` a list ``[output, *final_states]``."""

    supports_masking = True
    input_ndim = 3
    rank_hint = (". Recurrent layers take (batch, timesteps, features); to feed token ids, "
                 "put an Embedding layer first.")
    core_class: type = nn.LSTM
    core_name = "lstm"
    n_states = 1

    def __init__(self, units: int, activation: str, use_bias: bool, kernel_initializer: Any,
                 recurrent_initializer: Any, bias_initializer: Any, dropout: float,
                 recurrent_dropout: float, return_sequences: bool, return_state: bool,
                 go_backwards: bool, stateful: bool, **kwargs: Any):
        super().__init__(**kwargs)
        unsupported = {"activation": activation != "tanh", "use_bias": not use_bias,
                       "recurrent_dropout": recurrent_dropout != 0, "go_backwards": go_backwards,
                       "stateful": stateful}
        for option, used in unsupported.items():
            if used:
                raise NotImplementedError(f"{type(self).__name__}: minidl.keras implements "
                                          f"the default {option} only")
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"{type(self).__name__}: units must be a positive integer, got "
                             f"{units!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        self.units, self.dropout = int(units), dropout
        self.return_sequences, self.return_state = return_sequences, return_state
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer

    @property
    def core(self) -> nn.Module:
        """The wrapped ``nn`` layer."""
        return getattr(self, self.core_name)

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"The last dimension of the inputs to {self.name!r} should be "
                             f"defined. Found None.")
        setattr(self, self.core_name, self.core_class(features, self.units,
                                                      device=self._build_device))
        cell = self.core.cell
        _initialise(cell.W_x, self.kernel_initializer, "glorot_uniform")
        _initialise(cell.W_h, self.recurrent_initializer, "orthogonal")
        self._initialise_bias(cell)
        self._last_dim = features

    def _initialise_bias(self, cell: nn.Module) -> None:
        _initialise(cell.b, self.bias_initializer, "zeros")

    def call(self, x: Tensor, mask: Any = None) -> Any:
        if self.dropout and self.training:
            # Keras drops the same input features at every time step of a sequence.
            xp = backend.get_array_module(x.data)
            ones = Tensor(xp.ones((x.shape[0], 1, x.shape[2]), dtype=x.dtype))
            x = x * F.dropout(ones, self.dropout, True)
        outputs, state = self.core(x, mask=mask)
        states = list(state) if isinstance(state, tuple) else [state]
        # The last output is the final h: at masked steps the state, and so h, is carried on.
        output = outputs if self.return_sequences else states[0]
        return [output] + states if self.return_state else output

    def compute_mask(self, inputs: Tensor, mask: Any = None) -> Any:
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape: Shape) -> Any:
        batch, steps = input_shape[0], input_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [output] + [(batch, self.units)] * self.n_states
        return output

    def extra_repr(self) -> str:
        return (f"{self.units}, return_sequences={self.return_sequences}, "
                f"return_state={self.return_state}, name={self.name!r}")


class LSTM(_Recurrent):
    """Long short-term memory (Keras' defaults: tanh, sigmoid gates, unit forget bias).
    Wraps ``nn.LSTM`` (``self.lstm``). ``return_state``: ``[output, h, c]``."""

    core_class, core_name, n_states = nn.LSTM, "lstm", 2

    def __init__(self, units: int, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 **kwargs: Any):
        if recurrent_activation != "sigmoid":
            raise NotImplementedError("LSTM: minidl.keras implements the default "
                                      "recurrent_activation='sigmoid' only")
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, dropout, recurrent_dropout, return_sequences,
                         return_state, go_backwards, stateful, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    def _initialise_bias(self, cell: nn.Module) -> None:
        H = self.units
        _initialise(cell.b, self.bias_initializer, "zeros")
        if self.bias_initializer != "zeros" or not self.unit_forget_bias:
            cell.b.data[H:2 * H] = 1.0 if self.unit_forget_bias else 0.0


class GRU(_Recurrent):
    """Gated recurrent unit, Keras' default ``reset_after=True`` form (the reset gate applied
    after the recurrent matmul, as PyTorch and cuDNN). Wraps ``nn.GRU`` (``self.gru``).
    ``return_state``: ``[output, h]``."""

    core_class, core_name, n_states = nn.GRU, "gru", 1

    def __init__(self, units: int, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, reset_after: bool = True,
                 **kwargs: Any):
        if recurrent_activation != "sigmoid" or not reset_after:
            raise NotImplementedError("GRU: minidl.keras implements the default "
                                      "recurrent_activation='sigmoid' and reset_after=True only")
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, dropout, recurrent_dropout, return_sequences,
                         return_state, go_backwards, stateful, **kwargs)

    def _initialise_bias(self, cell: nn.Module) -> None:
        _initialise(cell.b_x, self.bias_initializer, "zeros")
        _initialise(cell.b_h, self.bias_initializer, "zeros")


class SimpleRNN(_Recurrent):
    """The simple (Elman) recurrent layer h' = tanh(x W_x + h W_h + b). Wraps ``nn.RNN``
    (``self.rnn``). ``return_state``: ``[output, h]``."""

    core_class, core_name, n_states = nn.RNN, "rnn", 1

    def __init__(self, units: int, activation: str = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, **kwargs: Any):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, dropout, recurrent_dropout, return_sequences,
                         return_state, go_backwards, stateful, **kwargs)
