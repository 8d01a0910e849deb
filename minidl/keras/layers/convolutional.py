"""Keras' convolution and pooling layers, channels last, on ``minidl.functions.conv`` (im2col).

    Conv1D(filters, kernel_size, strides=1, padding='valid', activation=None)
        (batch, steps, channels) -> (batch, new_steps, filters); kernel (k, channels, filters)
    Conv2D(filters, kernel_size, strides=(1, 1), padding='valid', activation=None)
        (batch, rows, cols, channels) -> (batch, new_rows, new_cols, filters);
        kernel (kh, kw, channels, filters)
    MaxPooling1D(pool_size=2, strides=None, padding='valid'), MaxPooling2D(pool_size=(2, 2), ...)
    GlobalMaxPooling1D()   (batch, steps, features) -> (batch, features)

Kernels are glorot-uniform with Keras' fans (fan_in = k·channels, fan_out = k·filters), biases
zero. ``data_format='channels_last'`` and ``dilation_rate=1`` only.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

from minidl import backend, nn
from minidl.autograd import Tensor
from minidl.functions import conv
from minidl.keras import activations
from minidl.keras.layers.layer import Layer, Shape, initialise

IntOrPair = Union[int, Sequence[int]]


def _tuple(value: IntOrPair, rank: int, name: str) -> Tuple[int, ...]:
    values = (value,) * rank if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != rank or min(values) < 1:
        raise ValueError(f"{name} must be a positive integer or a tuple of {rank}, got {value!r}")
    return values


def _check_format(layer: str, data_format: Optional[str], dilation_rate: Any,
                  padding: str) -> None:
    if data_format not in (None, "channels_last"):
        raise NotImplementedError(f"{layer}: minidl.keras implements data_format="
                                  f"'channels_last' only")
    if dilation_rate not in (1, (1,), (1, 1), [1], [1, 1]):
        raise NotImplementedError(f"{layer}: minidl.keras implements dilation_rate=1 only")
    if padding not in ("valid", "same"):
        raise ValueError(f"{layer}: padding must be 'valid' or 'same', got {padding!r}")


class _Conv(Layer):
    """Shared by Conv1D and Conv2D: ``kernel`` (*kernel_size, channels, filters), ``bias``."""

    rank = 1

    def __init__(self, filters: int, kernel_size: IntOrPair, strides: IntOrPair = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: IntOrPair = 1, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        super().__init__(**kwargs)
        _check_format(type(self).__name__, data_format, dilation_rate, padding)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"{type(self).__name__}: filters must be a positive integer, got "
                             f"{filters!r}")
        self.filters, self.padding, self.use_bias = filters, padding, use_bias
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size")
        self.strides = _tuple(strides, self.rank, "strides")
        self.activation = activations.get(activation)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape: Shape) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"The channel dimension of the inputs to {self.name!r} should be "
                             f"defined. Found None.")
        # glorot_uniform in PyTorch's layout (filters, channels, *kernel) has Keras' fans.
        device = backend.check_device(self._build_device)
        torch_shape = (self.filters, channels) + self.kernel_size
        kernel = nn.init.glorot_uniform(torch_shape, device=device)
        order = tuple(range(2, 2 + self.rank)) + (1, 0)
        self.kernel = nn.Parameter(kernel.transpose(order).copy())
        initialise(self.kernel, self.kernel_initializer, "glorot_uniform")
        if self.use_bias:
            self.bias = nn.Parameter(nn.init.zeros((self.filters,), device=device))
            initialise(self.bias, self.bias_initializer, "zeros")
        self._last_dim = channels

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        sizes = tuple(conv.output_size(n, k, s, self.padding) for n, k, s in
                      zip(input_shape[1:1 + self.rank], self.kernel_size, self.strides))
        return (input_shape[0],) + sizes + (self.filters,)

    def extra_repr(self) -> str:
        return (f"{self.filters}, kernel_size={self.kernel_size}, strides={self.strides}, "
                f"padding={self.padding!r}, name={self.name!r}")


class Conv1D(_Conv):
    """1-D convolution over time. Shape: (batch, steps, channels) -> (batch, new_steps,
    filters)."""

    rank, input_ndim = 1, 3

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        bias = self.bias if self.use_bias else None
        return self.activation(conv.conv1d(x, self.kernel, bias, self.strides[0], self.padding))


class Conv2D(_Conv):
    """2-D convolution. Shape: (batch, rows, cols, channels) -> (batch, new_rows, new_cols,
    filters)."""

    rank, input_ndim = 2, 4

    def __init__(self, filters: int, kernel_size: IntOrPair, strides: IntOrPair = (1, 1),
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: IntOrPair = (1, 1), activation: Any = None,
                 use_bias: bool = True, kernel_initializer: Any = "glorot_uniform",
                 bias_initializer: Any = "zeros", **kwargs: Any):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer, **kwargs)

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        bias = self.bias if self.use_bias else None
        return self.activation(conv.conv2d(x, self.kernel, bias, self.strides, self.padding))


class _MaxPooling(Layer):
    rank = 1

    def __init__(self, pool_size: IntOrPair = 2, strides: Optional[IntOrPair] = None,
                 padding: str = "valid", data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        _check_format(type(self).__name__, data_format, 1, padding)
        self.pool_size = _tuple(pool_size, self.rank, "pool_size")
        self.strides = self.pool_size if strides is None else _tuple(strides, self.rank,
                                                                     "strides")
        self.padding = padding

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        sizes = tuple(conv.output_size(n, k, s, self.padding) for n, k, s in
                      zip(input_shape[1:1 + self.rank], self.pool_size, self.strides))
        return (input_shape[0],) + sizes + (input_shape[-1],)


class MaxPooling1D(_MaxPooling):
    """The maximum over windows of ``pool_size`` steps (stride: the pool size).
    Shape: (batch, steps, features) -> (batch, new_steps, features)."""

    rank, input_ndim = 1, 3

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return conv.max_pool1d(x, self.pool_size[0], self.strides[0], self.padding)


class MaxPooling2D(_MaxPooling):
    """The maximum over ``pool_size`` windows. Shape: (batch, rows, cols, channels) ->
    (batch, new_rows, new_cols, channels)."""

    rank, input_ndim = 2, 4

    def __init__(self, pool_size: IntOrPair = (2, 2), strides: Optional[IntOrPair] = None,
                 padding: str = "valid", data_format: Optional[str] = None, **kwargs: Any):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return conv.max_pool2d(x, self.pool_size, self.strides, self.padding)


class GlobalMaxPooling1D(Layer):
    """The maximum over the time axis (the mask is not used, as Keras).
    Shape: (batch, steps, features) -> (batch, features) (``keepdims``: (batch, 1, features))."""

    input_ndim = 3

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False,
                 **kwargs: Any):
        super().__init__(**kwargs)
        _check_format("GlobalMaxPooling1D", data_format, 1, "valid")
        self.keepdims = keepdims

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return x.max(axis=1, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], 1, input_shape[2]) if self.keepdims else \
            (input_shape[0], input_shape[2])


Convolution1D, Convolution2D = Conv1D, Conv2D  # Keras 2 aliases
MaxPool1D, MaxPool2D, GlobalMaxPool1D = MaxPooling1D, MaxPooling2D, GlobalMaxPooling1D
