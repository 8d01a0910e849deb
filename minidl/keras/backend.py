"""``keras.backend`` (``from tensorflow.keras import backend as K``): the basics that Keras 2 code
uses in custom losses and metrics, on ``minidl.functions``.

    def mean_pred(y_true, y_pred):
        return K.mean(y_pred)

Each function takes Tensors (inside a loss, where gradients flow through ``minidl.functions``)
or raw arrays (a metric gets arrays), and returns the same kind. ``epsilon()`` is 1e-7 and
``floatx()`` is ``'float32'``, as Keras. ``get_value``/``set_value`` read and change an
optimizer's learning rate (``K.set_value(model.optimizer.lr, 0.01)``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from minidl import backend as _devices
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.functions import activations as _activations
from minidl.functions import elementwise_loss as _losses
from minidl.keras.layers import layer as _layer

_EPSILON = 1e-7


def epsilon() -> float:
    """The fuzz factor of Keras' numerics (clipping probabilities, dividing safely): 1e-7."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def floatx() -> str:
    """Keras' default float type: ``'float32'`` (minidl.keras layers are float32)."""
    return "float32"


def clear_session() -> None:
    """Restart Keras' layer names (``dense``, ``dense_1``, ... count from the start again)."""
    _layer._name_counts.clear()


# ----------------------------------------------------------------------------- Tensors or arrays
def _apply(fn: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on Tensors; if no argument was a Tensor, give back a raw array."""
    any_tensor = any(isinstance(a, Tensor) for a in args)
    like = next((a for a in args if isinstance(a, Tensor)), None)
    tensors = []
    for a in args:
        if isinstance(a, Tensor):
            tensors.append(a)
        elif like is not None:
            tensors.append(Tensor(_devices.to_device_array(a, like.device).astype(like.dtype))
                           if hasattr(a, "shape") else a)
        else:
            tensors.append(Tensor(a if hasattr(a, "shape") else _devices.host_array(a)))
    out = fn(*tensors, **kwargs)
    return out if any_tensor else out.data


def _reducer(name: str) -> Callable[..., Any]:
    def reduce(x: Any, axis: Optional[int] = None, keepdims: bool = False) -> Any:
        return _apply(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)
    reduce.__name__ = name
    reduce.__doc__ = f"The {name} over ``axis`` (all axes when None)."
    return reduce


mean, sum, max, min = (_reducer(n) for n in ("mean", "sum", "max", "min"))  # noqa: A001


def square(x: Any) -> Any:
    return _apply(lambda t: t * t, x)


def sqrt(x: Any) -> Any:
    """√x, with x clipped to [0, ∞) first as Keras does."""
    return _apply(lambda t: F.sqrt(F.relu(t)), x)


def abs(x: Any) -> Any:  # noqa: A001
    return _apply(_activations.abs, x)


def exp(x: Any) -> Any:
    return _apply(F.exp, x)


def log(x: Any) -> Any:
    return _apply(F.log, x)


def pow(x: Any, a: float) -> Any:  # noqa: A001
    return _apply(lambda t: t ** a, x)


def clip(x: Any, min_value: float, max_value: float) -> Any:
    return _apply(lambda t: F.clip(t, min_value, max_value), x)


def maximum(x: Any, y: Any) -> Any:
    return _apply(_activations.maximum, x, y)


def minimum(x: Any, y: Any) -> Any:
    return _apply(_activations.minimum, x, y)


def dot(x: Any, y: Any) -> Any:
    return _apply(F.matmul, x, y)


def sigmoid(x: Any) -> Any:
    return _apply(F.sigmoid, x)


def tanh(x: Any) -> Any:
    return _apply(F.tanh, x)


def relu(x: Any) -> Any:
    return _apply(F.relu, x)


def softmax(x: Any, axis: int = -1) -> Any:
    return _apply(lambda t: F.softmax(t, axis=axis), x)


def reshape(x: Any, shape: Sequence[int]) -> Any:
    return _apply(lambda t: t.reshape(tuple(shape)), x)


def flatten(x: Any) -> Any:
    return _apply(lambda t: t.reshape(-1), x)


def expand_dims(x: Any, axis: int = -1) -> Any:
    return _apply(lambda t: t.unsqueeze(axis), x)


def squeeze(x: Any, axis: int) -> Any:
    return _apply(lambda t: t.squeeze(axis), x)


def transpose(x: Any) -> Any:
    return _apply(lambda t: t.transpose(), x)


def concatenate(tensors: Sequence[Any], axis: int = -1) -> Any:
    return _apply(lambda *ts: F.concat(ts, axis=axis), *tensors)


def stack(tensors: Sequence[Any], axis: int = 0) -> Any:
    return _apply(lambda *ts: F.stack(ts, axis=axis), *tensors)


def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Any:
    """Elementwise binary cross-entropy, Keras 2's form (see ``losses.binary_crossentropy``)."""
    def bce(y: Tensor, p: Tensor) -> Tensor:
        if from_logits:
            return F.binary_cross_entropy_with_logits(p, y, reduction="none")
        return _losses.clipped_binary_cross_entropy(p, y, epsilon())
    return _apply(bce, target, output)


# ----------------------------------------------------------------------------- no gradient
def _values(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _constant(fn: Callable[..., Any], *args: Any) -> Any:
    """A result without a gradient (comparisons, rounding, argmax): same kind as the input."""
    out = fn(*[_values(a) for a in args])
    return Tensor(out) if any(isinstance(a, Tensor) for a in args) else out


def round(x: Any) -> Any:  # noqa: A001
    """Round to the nearest integer (half to even); no gradient, as Keras."""
    return _constant(lambda a: _devices.get_array_module(a).round(a), x)


def argmax(x: Any, axis: int = -1) -> Any:
    return _constant(lambda a: a.argmax(axis=axis), x)


def argmin(x: Any, axis: int = -1) -> Any:
    return _constant(lambda a: a.argmin(axis=axis), x)


def equal(x: Any, y: Any) -> Any:
    return _constant(lambda a, b: a == b, x, y)


def not_equal(x: Any, y: Any) -> Any:
    return _constant(lambda a, b: a != b, x, y)


def greater(x: Any, y: Any) -> Any:
    return _constant(lambda a, b: a > b, x, y)


def less(x: Any, y: Any) -> Any:
    return _constant(lambda a, b: a < b, x, y)


def cast(x: Any, dtype: Any) -> Any:
    """``x`` as ``dtype`` (casting cuts the gradient, as from a comparison)."""
    return _constant(lambda a: a.astype(dtype), x)


def zeros(shape: Sequence[int], dtype: Any = "float32") -> np.ndarray:
    return np.zeros(tuple(shape), dtype=dtype)


def ones(shape: Sequence[int], dtype: Any = "float32") -> np.ndarray:
    return np.ones(tuple(shape), dtype=dtype)


def constant(value: Any, dtype: Any = "float32", shape: Optional[Sequence[int]] = None) -> Tensor:
    array = np.asarray(value, dtype=dtype)
    return Tensor(np.broadcast_to(array, tuple(shape)).copy() if shape is not None else array)


def variable(value: Any, dtype: Any = "float32", name: Optional[str] = None) -> Tensor:
    """A leaf Tensor that requires a gradient (Keras' trainable variable)."""
    return Tensor(np.asarray(value, dtype=dtype), requires_grad=True, name=name)


def shape(x: Any) -> tuple:
    return tuple(x.shape)


def int_shape(x: Any) -> tuple:
    return tuple(x.shape)


def ndim(x: Any) -> int:
    return len(x.shape)


def get_value(x: Any) -> Any:
    """A value as host NumPy data (or a float, for a learning rate)."""
    if isinstance(x, Tensor):
        return x.numpy()
    return float(x) if isinstance(x, float) else _devices.to_numpy(x)


def set_value(x: Any, value: Any) -> None:
    """Assign ``value``: to an optimizer's learning rate (``K.set_value(opt.lr, 0.01)``) or into
    a Tensor's data."""
    if hasattr(x, "assign"):
        x.assign(value)
    elif isinstance(x, Tensor):
        x.data[...] = _devices.to_device_array(np.asarray(value), x.device)
    else:
        raise TypeError(f"set_value needs an optimizer's learning rate or a Tensor, got "
                        f"{type(x).__name__}")
