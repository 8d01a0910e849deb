"""Keras' losses (``tensorflow.keras.losses``), written with ``minidl.functions``.

Keras' argument order: ``loss(y_true, y_pred)``. The functions return one loss per sample (the
mean over the last axis), as Keras' do; the classes (``BinaryCrossentropy()``, ...) and
``model.compile(loss=...)`` reduce that to the mean over the batch.

    binary_crossentropy       −[y ln p + (1 − y) ln(1 − p)], p clipped to [1e-7, 1 − 1e-7]
    categorical_crossentropy  −Σ y ln p over classes (p renormalised to sum to 1, then clipped)
    sparse_categorical_crossentropy   the same with integer class labels
    mean_squared_error (mse)  mean (p − y)²        mean_absolute_error (mae)  mean |p − y|

``from_logits=True`` takes scores before the sigmoid/softmax and uses the stable
log-sigmoid/log-softmax forms. Targets of rank one less than the prediction with a last axis of
1 — labels of shape (n,) for predictions (n, 1) — are reshaped to match, as Keras does.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

from minidl import backend
from minidl import functions as F
from minidl.autograd import Tensor, as_tensor
from minidl.functions.indices import checked_indices
from minidl.functions.loss import EPSILON


def squeeze_or_expand_to_same_rank(y_true: Any, y_pred: Any) -> Tuple[Any, Any]:
    """Keras' rank alignment: when the ranks differ by one and the larger has a last axis of 1,
    drop that axis (``y (n,)`` with ``p (n, 1)`` → ``y (n, 1)``). Works on arrays and Tensors."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape[:-1])
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_true = y_true.reshape(tuple(y_true.shape) + (1,))
    return y_true, y_pred


def _tensors(y_true: Any, y_pred: Any) -> Tuple[Tensor, Tensor]:
    """Both arguments as Tensors, y_true on y_pred's device, ranks aligned. A y_pred given as an
    array (calling a loss by hand) becomes float32 on the default device."""
    if not isinstance(y_pred, Tensor):
        y_pred = Tensor(backend.to_device_array(y_pred, backend.default_device()).astype("float32"))
    if not isinstance(y_true, Tensor):
        y_true = Tensor(backend.to_device_array(y_true, y_pred.device))
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def _check_same_shape(name: str, y_true: Tensor, y_pred: Tensor, hint: str = "") -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true has shape {y_true.shape} but y_pred has shape "
                         f"{y_pred.shape}; they must be equal{hint}")


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                        label_smoothing: float = 0.0, axis: int = -1) -> Tensor:
    """Binary cross-entropy per sample. Shape: (n, ..., k) -> (n, ...).

    ``label_smoothing`` moves targets towards 0.5: y ← y·(1 − ls) + ls/2.
    Stability: p is clipped to [1e-7, 1 − 1e-7] (Keras' ε); from logits it never overflows.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, "none").mean(axis=axis)
    return F.binary_cross_entropy(y_pred, y_true, "none").mean(axis=axis)


_CATEGORICAL_HINT = (" (y_true must be one-hot encoded; for integer class labels use "
                     "'sparse_categorical_crossentropy', or one-hot encode them with "
                     "minidl.keras.utils.to_categorical)")


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1) -> Tensor:
    """−Σ_c y_c ln p_c per sample, for one-hot (or soft) targets. Shape: (n, ..., C) -> (n, ...).

    Probabilities are renormalised to sum to 1 and clipped to [1e-7, 1 − 1e-7], as Keras;
    ``from_logits`` uses log_softmax. ``label_smoothing``: y ← y·(1 − ls) + ls/C.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("categorical_crossentropy", y_true, y_pred, _CATEGORICAL_HINT)
    if y_true.dtype != y_pred.dtype:
        y_true = Tensor(y_true.data.astype(y_pred.dtype))
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    if from_logits:
        log_p = F.log_softmax(y_pred, axis=axis)
    else:
        p = y_pred / y_pred.sum(axis=axis, keepdims=True)
        log_p = F.log(F.clip(p, EPSILON, 1.0 - EPSILON))
    return -(y_true * log_p).sum(axis=axis)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                                    axis: int = -1) -> Tensor:
    """−ln p[label] per sample, for integer labels. Shape: labels (n, ...) or (n, ..., 1),
    y_pred (n, ..., C) -> (n, ...). Labels outside [0, C) raise IndexError.

    Probabilities are renormalised and clipped as in ``categorical_crossentropy``.
    """
    if axis != -1:
        raise NotImplementedError("sparse_categorical_crossentropy supports axis=-1 only")
    y_true, y_pred = _tensors(y_true, y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape[:-1])
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(f"sparse_categorical_crossentropy: labels of shape {y_true.shape} do "
                         f"not fit predictions of shape {y_pred.shape}; expected labels of "
                         f"shape {y_pred.shape[:-1]} (one integer class per sample)")
    labels = integer_labels(y_true.data, "sparse_categorical_crossentropy")
    if from_logits:
        return F.cross_entropy(y_pred, labels, reduction="none")
    classes = y_pred.shape[-1]
    xp = backend.get_array_module(y_pred.data)
    flat = checked_indices(labels, xp, classes, what="class label",
                           of=f"{classes} classes").reshape(-1)
    p = y_pred / y_pred.sum(axis=-1, keepdims=True)
    log_p = F.log(F.clip(p, EPSILON, 1.0 - EPSILON)).reshape(-1, classes)
    return -log_p[xp.arange(flat.shape[0]), flat].reshape(*labels.shape)


def integer_labels(labels: Any, name: str, what: str = "integer class labels") -> Any:
    """Labels (or token ids) as an integer array: whole-number floats (``1.0``) are accepted,
    as Keras casts them; anything else raises ValueError naming ``name``."""
    if labels.dtype.kind in "iu":
        return labels
    if labels.dtype.kind == "b":
        return labels.astype("int64")
    as_int = labels.astype("int64")
    if not bool((as_int == labels).all()):
        raise ValueError(f"{name} needs {what}, got non-integer values such as "
                         f"{labels[as_int != labels].ravel()[0]}")
    return as_int


def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """mean((p − y)²) over the last axis. Shape: (n, ..., k) -> (n, ...)."""
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("mean_squared_error", y_true, y_pred)
    return F.mse_loss(y_pred, y_true, "none").mean(axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor:
    """mean(|p − y|) over the last axis, with |d| = relu(d) + relu(−d) (gradient 0 at 0)."""
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("mean_absolute_error", y_true, y_pred)
    difference = y_pred - as_tensor(y_true, y_pred)
    return (F.relu(difference) + F.relu(-difference)).mean(axis=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# ----------------------------------------------------------------------------- loss objects
class Loss:
    """A loss as an object: ``BinaryCrossentropy(from_logits=True)(y_true, y_pred)`` is the mean
    of the per-sample losses (``reduction='sum_over_batch_size'``), or their sum (``'sum'``),
    or the per-sample values (``'none'``/None)."""

    fn: Callable[..., Tensor] = staticmethod(mean_squared_error)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: Optional[str] = None, **options: Any):
        if reduction not in ("sum_over_batch_size", "sum", "none", None, "mean"):
            raise ValueError(f"reduction must be 'sum_over_batch_size', 'sum' or 'none', got "
                             f"{reduction!r}")
        self.reduction, self.options = reduction, options
        self.name = name or self.fn.__name__

    def __call__(self, y_true: Any, y_pred: Any) -> Tensor:
        values = self.per_sample(y_true, y_pred)
        if self.reduction in ("none", None):
            return values
        return values.sum() if self.reduction == "sum" else values.mean()

    def per_sample(self, y_true: Any, y_pred: Any) -> Tensor:
        """The unreduced losses, one per sample."""
        return type(self).fn(y_true, y_pred, **self.options)

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(reduction={self.reduction!r}{options})"


class BinaryCrossentropy(Loss):
    fn = staticmethod(binary_crossentropy)

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "binary_crossentropy"):
        super().__init__(reduction, name, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class CategoricalCrossentropy(Loss):
    fn = staticmethod(categorical_crossentropy)

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "categorical_crossentropy"):
        super().__init__(reduction, name, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class SparseCategoricalCrossentropy(Loss):
    fn = staticmethod(sparse_categorical_crossentropy)

    def __init__(self, from_logits: bool = False,
                 reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "sparse_categorical_crossentropy"):
        super().__init__(reduction, name, from_logits=from_logits)


class MeanSquaredError(Loss):
    fn = staticmethod(mean_squared_error)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "mean_squared_error"):
        super().__init__(reduction, name)


class MeanAbsoluteError(Loss):
    fn = staticmethod(mean_absolute_error)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "mean_absolute_error"):
        super().__init__(reduction, name)


_BY_NAME = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
}


def get(identifier: Union[str, Loss, Callable]) -> Callable[[Any, Any], Tensor]:
    """A per-sample loss ``fn(y_true, y_pred)`` from a name (``'binary_crossentropy'``,
    ``'mse'``, ...), a ``Loss`` object, or a function of your own."""
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(f"unknown loss {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)}, a Loss object or a function") from None
    if isinstance(identifier, Loss):
        return identifier.per_sample
    if callable(identifier):
        return identifier
    raise TypeError(f"loss must be a name, a Loss object or a function, got "
                    f"{type(identifier).__name__}")


def kind(identifier: Any) -> Optional[str]:
    """Which cross-entropy a loss identifier is (``'binary'``, ``'categorical'``,
    ``'sparse_categorical'``), or None: used to check targets before training."""
    fn = type(identifier).fn if isinstance(identifier, Loss) else \
        _BY_NAME.get(identifier) if isinstance(identifier, str) else identifier
    return {binary_crossentropy: "binary", categorical_crossentropy: "categorical",
            sparse_categorical_crossentropy: "sparse_categorical"}.get(fn)
