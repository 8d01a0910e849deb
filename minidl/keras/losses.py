"""Keras' losses (``tensorflow.keras.losses``), written with ``minidl.functions``.

Keras' argument order: ``loss(y_true, y_pred)``. The functions return one loss per sample (the
mean over the last axis), as Keras' do; the classes (``BinaryCrossentropy()``, ...) and
``model.compile(loss=...)`` reduce that to the mean over the batch.

    binary_crossentropy       −[y ln(p + ε) + (1 − y) ln(1 − p + ε)], p clipped to [ε, 1 − ε]
                              (Keras 2's form, ε = 1e-7: see below)
    categorical_crossentropy  −Σ y ln p over classes (p renormalised to sum to 1, then clipped)
    sparse_categorical_crossentropy   the same with integer class labels
    mean_squared_error (mse)  mean (p − y)²        mean_absolute_error (mae)  mean |p − y|
    mean_absolute_percentage_error (mape)   mean 100·|y − p| / max(|y|, ε)
    mean_squared_logarithmic_error (msle)   mean (ln(max(p, ε) + 1) − ln(max(y, ε) + 1))²
    hinge, squared_hinge      mean max(1 − y·p, 0) (squared); labels 0/1 become −1/1
    kl_divergence (kld)       Σ ỹ ln(ỹ / p̃), both clipped to [ε, 1]
    poisson                   mean p − y ln(p + ε)
    log_cosh (logcosh)        mean ln cosh(p − y)
    huber (huber_loss)        mean ½d² for |d| ≤ δ, else δ(|d| − ½δ); δ = 1
    cosine_similarity         −Σ ŷ·p̂ with ŷ, p̂ the L2-normalised rows

The math of each is in ``minidl.functions`` (``elementwise_loss.py``), with its gradient checked.

**Binary cross-entropy follows Keras 2** (tf.keras): probabilities are clipped to [ε, 1 − ε]
*and* ε is added inside both logarithms, so ``binary_crossentropy([[0],[1],[1],[0],[1]],
[[.1],[.8],[1.],[0.],[1e-9]])`` is ``[0.10536, 0.22314, -0, -0, 15.4249]`` as in Keras 2.
Keras 3 (and ``F.binary_cross_entropy``) only clip, giving 1.19e-7 for the saturated rows and
16.1181 for the last.

``from_logits=True`` takes scores before the sigmoid/softmax and uses the stable
log-sigmoid/log-softmax forms. Targets of rank one less than the prediction with a last axis of
1 — labels of shape (n,) for predictions (n, 1) — are reshaped to match, as Keras does.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

from minidl import backend
from minidl import functions as F
from minidl.autograd import Tensor, as_tensor
from minidl.functions import elementwise_loss as EL
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
    Stability: p is clipped to [1e-7, 1 − 1e-7] and ε is added inside the logarithms, as
    Keras 2 (module docstring); from logits it never overflows.
    """
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, "none").mean(axis=axis)
    return EL.clipped_binary_cross_entropy(y_pred, y_true).mean(axis=axis)


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


def _per_sample(name: str, elementwise: Callable[[Tensor, Any], Tensor], y_true: Any,
                y_pred: Any) -> Tensor:
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape(name, y_true, y_pred)
    return elementwise(y_pred, y_true).mean(axis=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> Tensor:
    """mean(100·|y − p| / max(|y|, ε)) over the last axis. Shape: (n, ..., k) -> (n, ...)."""
    return _per_sample("mean_absolute_percentage_error", EL.absolute_percentage_error, y_true,
                       y_pred)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> Tensor:
    """mean((ln(max(p, ε) + 1) − ln(max(y, ε) + 1))²) over the last axis."""
    return _per_sample("mean_squared_logarithmic_error", EL.squared_log_error, y_true, y_pred)


def _signed_labels(y_true: Tensor) -> Tensor:
    """Keras' hinge labels: 0/1 labels become −1/1 (labels already −1/1 are kept)."""
    data = y_true.data
    if bool(((data == 0) | (data == 1)).all()):
        return Tensor(data * 2 - 1)
    return y_true


def hinge(y_true: Any, y_pred: Any) -> Tensor:
    """mean(max(1 − y·p, 0)) over the last axis; labels 0/1 are read as −1/1."""
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("hinge", y_true, y_pred)
    return EL.hinge(y_pred, _signed_labels(y_true)).mean(axis=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """mean(max(1 − y·p, 0)²) over the last axis; labels 0/1 are read as −1/1."""
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("squared_hinge", y_true, y_pred)
    return EL.squared_hinge(y_pred, _signed_labels(y_true)).mean(axis=-1)


def kl_divergence(y_true: Any, y_pred: Any) -> Tensor:
    """Σ ỹ ln(ỹ / p̃) over the last axis, both clipped to [ε, 1]."""
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("kl_divergence", y_true, y_pred)
    return EL.kl_divergence(y_pred, y_true).sum(axis=-1)


def poisson(y_true: Any, y_pred: Any) -> Tensor:
    """mean(p − y ln(p + ε)) over the last axis."""
    return _per_sample("poisson", EL.poisson, y_true, y_pred)


def log_cosh(y_true: Any, y_pred: Any) -> Tensor:
    """mean(ln cosh(p − y)) over the last axis."""
    return _per_sample("log_cosh", EL.log_cosh, y_true, y_pred)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> Tensor:
    """mean over the last axis of ½d² (|d| ≤ δ) or δ(|d| − ½δ), d = p − y."""
    return _per_sample("huber", lambda p, y: EL.huber(p, y, delta), y_true, y_pred)


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> Tensor:
    """−Σ ŷ·p̂ over ``axis`` (L2-normalised rows): −1 for the same direction, as Keras' loss."""
    y_true, y_pred = _tensors(y_true, y_pred)
    _check_same_shape("cosine_similarity", y_true, y_pred)
    return -EL.cosine_similarity(y_pred, y_true, axis=axis)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
huber_loss = huber


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


class MeanAbsolutePercentageError(Loss):
    fn = staticmethod(mean_absolute_percentage_error)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "mean_absolute_percentage_error"):
        super().__init__(reduction, name)


class MeanSquaredLogarithmicError(Loss):
    fn = staticmethod(mean_squared_logarithmic_error)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "mean_squared_logarithmic_error"):
        super().__init__(reduction, name)


class Hinge(Loss):
    fn = staticmethod(hinge)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size", name: str = "hinge"):
        super().__init__(reduction, name)


class SquaredHinge(Loss):
    fn = staticmethod(squared_hinge)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "squared_hinge"):
        super().__init__(reduction, name)


class KLDivergence(Loss):
    fn = staticmethod(kl_divergence)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "kl_divergence"):
        super().__init__(reduction, name)


class Poisson(Loss):
    fn = staticmethod(poisson)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size", name: str = "poisson"):
        super().__init__(reduction, name)


class LogCosh(Loss):
    fn = staticmethod(log_cosh)

    def __init__(self, reduction: Optional[str] = "sum_over_batch_size", name: str = "log_cosh"):
        super().__init__(reduction, name)


class Huber(Loss):
    fn = staticmethod(huber)

    def __init__(self, delta: float = 1.0, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "huber_loss"):
        super().__init__(reduction, name, delta=delta)


class CosineSimilarity(Loss):
    fn = staticmethod(cosine_similarity)

    def __init__(self, axis: int = -1, reduction: Optional[str] = "sum_over_batch_size",
                 name: str = "cosine_similarity"):
        super().__init__(reduction, name, axis=axis)


_BY_NAME = {
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mape": mean_absolute_percentage_error, "MAPE": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "msle": mean_squared_logarithmic_error, "MSLE": mean_squared_logarithmic_error,
    "hinge": hinge, "squared_hinge": squared_hinge,
    "kl_divergence": kl_divergence, "kld": kl_divergence, "KLD": kl_divergence,
    "kullback_leibler_divergence": kl_divergence,
    "poisson": poisson, "log_cosh": log_cosh, "logcosh": log_cosh,
    "huber": huber, "huber_loss": huber, "cosine_similarity": cosine_similarity,
    "MSE": mean_squared_error, "MAE": mean_absolute_error,
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
