"""Keras' core layers, each a thin wrapper of ``minidl.nn`` modules or functions.

    Dense(units, activation=None)                                          → nn.Linear + activation
    Embedding(input_dim, output_dim, mask_zero=False, input_length=None)  → nn.Embedding
    Activation(name), Dropout(rate), SpatialDropout1D(rate), Flatten(), GlobalAveragePooling1D()

**Masking**, as Keras: ``Embedding(mask_zero=True)`` marks token id 0 as padding; the mask
travels to the next layers of a ``Sequential`` model; ``GlobalAveragePooling1D`` averages over
the unmasked steps only.

Weights and defaults are Keras': Dense kernels glorot-uniform, biases zero, embeddings
U(−0.05, 0.05).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from minidl import backend, nn
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.functions.indices import (IndexOutOfRangeError, NonIntegerIndexError,
                                      checked_indices)
from minidl.keras import activations
from minidl.keras.layers.layer import Layer, Shape, initialise
from minidl.nn.recurrent import mask_array


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
        initialise(self.linear.W, self.kernel_initializer, "glorot_uniform")
        if self.use_bias:
            initialise(self.linear.b, self.bias_initializer, "zeros")
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


class SpatialDropout1D(Layer):
    """Dropout of whole feature channels: each sample drops a channel at every time step at
    once (neighbouring steps are correlated, so single values would be guessed back).
    Shape: (batch, steps, channels), unchanged."""

    supports_masking = True
    input_ndim = 3

    def __init__(self, rate: float, seed: Any = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"SpatialDropout1D: rate must be in [0, 1), got {rate}")
        self.rate = rate

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        if not self.training or not self.rate:
            return x
        xp = backend.get_array_module(x.data)
        ones = Tensor(xp.ones((x.shape[0], 1, x.shape[2]), dtype=x.dtype))
        return x * F.dropout(ones, self.rate, True)


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
        m = mask_array(mask, x, time_axis=steps_axis)
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
    whole-number floats are accepted, as Keras casts them; other floats (1.5, NaN) are an error,
    where Keras would truncate them. Float ids are checked before any cast, so an id beyond
    float32's precision (2**24 + 1) is not silently changed.
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
        initialise(self.embedding.W, self.embeddings_initializer, "uniform")

    def _ids(self, x: Any) -> Any:
        """The ids as integers, checked by the framework's one index check
        (``functions.indices.checked_indices``) before any cast: whole-number floats are
        accepted (as Keras casts them), other floats and ids outside [0, input_dim) raise."""
        data = x.data if isinstance(x, Tensor) else x
        return checked_indices(data, backend.get_array_module(data), self.input_dim,
                               what="token id",
                               of=f"Embedding layer {self.name!r} with input_dim="
                                  f"{self.input_dim}")

    def check_inputs(self, x: np.ndarray) -> None:
        """Every id of the data set must be an integer in [0, input_dim)."""
        try:
            self._ids(x)
        except IndexOutOfRangeError as error:
            raise IndexOutOfRangeError(
                error.value, error.position, self.input_dim, "token id",
                f"Embedding layer {self.name!r}: input_dim={self.input_dim} allows ids 0 to "
                f"{self.input_dim - 1}. Make input_dim larger than the largest id, e.g. "
                f"input_dim=len(tokenizer.word_index) + 1", f"x{list(error.position)}") from None
        except NonIntegerIndexError as error:
            if error.value is None:
                raise
            raise error.located(f"x{list(error.position)}") from None

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return self.embedding(self._ids(x))

    def compute_mask(self, inputs: Tensor, mask: Any = None) -> Any:
        return (inputs.data != 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape) + (self.output_dim,)

    def extra_repr(self) -> str:
        return (f"{self.input_dim}, {self.output_dim}, mask_zero={self.mask_zero}, "
                f"name={self.name!r}")
