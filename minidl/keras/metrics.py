"""Keras' metrics (``tensorflow.keras.metrics``): functions of ``(y_true, y_pred)`` that return
one value per sample, and stateful ``Metric`` objects that average them.

``compile(metrics=['accuracy'])`` picks the accuracy by Keras' rule (``accuracy_for``):
    y_pred has a last axis of 1                       → binary_accuracy (threshold 0.5, strict >)
    y_true has lower rank than y_pred, or y_true's
    last axis is 1 while y_pred's is larger            → sparse_categorical_accuracy
    otherwise (one-hot y_true)                         → categorical_accuracy
The logged name is the string given (``'accuracy'`` or ``'acc'``).

Metric functions compute on raw arrays (NumPy or CuPy) or Tensors, outside the graph.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from minidl import backend
from minidl.autograd import Tensor, no_grad
from minidl.keras import losses as _losses
from minidl.keras.losses import squeeze_or_expand_to_same_rank
from minidl.metrics import binary_accuracy as per_sample_binary_accuracy


def _raw(y_true: Any, y_pred: Any) -> Tuple[Any, Any]:
    """Both as raw arrays, y_true moved to y_pred's device."""
    y_pred = y_pred.data if isinstance(y_pred, Tensor) else y_pred
    y_pred = y_pred if hasattr(y_pred, "shape") else backend.host_array(y_pred)
    y_true = y_true.data if isinstance(y_true, Tensor) else y_true
    return backend.to_device_array(y_true, backend.device_of(y_pred)), y_pred


def _arrays(y_true: Any, y_pred: Any) -> Tuple[Any, Any]:
    """Raw arrays on y_pred's device, ranks aligned as Keras does."""
    return squeeze_or_expand_to_same_rank(*_raw(y_true, y_pred))


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """mean over the last axis of [y_true == (y_pred > threshold)]: ``minidl.metrics``'
    ``binary_accuracy`` after Keras' rank alignment (labels (n,) for predictions (n, 1)).
    Shape: (n, ..., k) -> (n, ...)."""
    return per_sample_binary_accuracy(*_arrays(y_true, y_pred), threshold=threshold)


def categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1 where argmax(y_true) == argmax(y_pred) (one-hot targets).
    Shape: (n, ..., C) -> (n, ...)."""
    y_true, y_pred = _arrays(y_true, y_pred)
    xp = backend.get_array_module(y_pred)
    return (xp.argmax(y_true, axis=-1) == xp.argmax(y_pred, axis=-1)).astype(y_pred.dtype)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1 where the integer label equals argmax(y_pred). Shape: labels (n, ...) or (n, ..., 1),
    y_pred (n, ..., C) -> (n, ...)."""
    y_true, y_pred = _raw(y_true, y_pred)
    xp = backend.get_array_module(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape[:-1])
    predicted = xp.argmax(y_pred, axis=-1)
    return (y_true.astype(predicted.dtype) == predicted).astype(y_pred.dtype)


def accuracy_for(y_true_shape: Sequence[int], y_pred_shape: Sequence[int]) -> Callable:
    """The accuracy Keras means by ``'accuracy'`` for targets and predictions of these shapes."""
    if y_pred_shape[-1] == 1:
        return binary_accuracy
    if len(y_true_shape) < len(y_pred_shape) or \
            (y_true_shape[-1] == 1 and y_pred_shape[-1] != 1):
        return sparse_categorical_accuracy
    return categorical_accuracy


def accuracy(y_true: Any, y_pred: Any) -> Any:
    """``'accuracy'``: binary, categorical or sparse-categorical accuracy by the shapes."""
    return accuracy_for(y_true.shape, y_pred.shape)(y_true, y_pred)


def _loss_metric(loss: Callable) -> Callable:
    """A loss function used as a metric: per-sample values, computed without a graph."""
    def metric(y_true: Any, y_pred: Any) -> Any:
        with no_grad():
            y_pred = y_pred if isinstance(y_pred, Tensor) else Tensor(y_pred)
            return loss(y_true, y_pred).data
    metric.__name__ = loss.__name__
    return metric


_BY_NAME = {
    "accuracy": accuracy, "acc": accuracy,
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_crossentropy": _loss_metric(_losses.binary_crossentropy),
    "categorical_crossentropy": _loss_metric(_losses.categorical_crossentropy),
    "sparse_categorical_crossentropy": _loss_metric(_losses.sparse_categorical_crossentropy),
    "mean_squared_error": _loss_metric(_losses.mean_squared_error),
    "mse": _loss_metric(_losses.mean_squared_error),
    "mean_absolute_error": _loss_metric(_losses.mean_absolute_error),
    "mae": _loss_metric(_losses.mean_absolute_error),
    "mean_absolute_percentage_error": _loss_metric(_losses.mean_absolute_percentage_error),
    "mape": _loss_metric(_losses.mean_absolute_percentage_error),
    "mean_squared_logarithmic_error": _loss_metric(_losses.mean_squared_logarithmic_error),
    "msle": _loss_metric(_losses.mean_squared_logarithmic_error),
    "kl_divergence": _loss_metric(_losses.kl_divergence),
    "kld": _loss_metric(_losses.kl_divergence),
    "poisson": _loss_metric(_losses.poisson),
    "hinge": _loss_metric(_losses.hinge),
    "squared_hinge": _loss_metric(_losses.squared_hinge),
    "log_cosh": _loss_metric(_losses.log_cosh), "logcosh": _loss_metric(_losses.log_cosh),
}
mape = MAPE = mean_absolute_percentage_error = _BY_NAME["mape"]


# ----------------------------------------------------------------------------- metric objects
class Metric:
    """A running mean of a per-sample metric: ``update_state(y_true, y_pred)``, ``result()``,
    ``reset_state()``. Subclasses set ``fn``."""

    fn: Callable = staticmethod(binary_accuracy)

    def __init__(self, name: Optional[str] = None, **options: Any):
        self.name = name or self.fn.__name__
        self.options = options
        self.reset_state()

    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0

    def per_sample(self, y_true: Any, y_pred: Any) -> Any:
        return type(self).fn(y_true, y_pred, **self.options)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        values = self.per_sample(y_true, y_pred)
        self.total += float(values.sum())
        self.count += int(values.size)

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class StatefulMetric:
    """A metric whose result is not a mean of per-sample values (Precision, Recall, AUC): it
    keeps counts over batches. ``update_state(y_true, y_pred)``, ``result()``,
    ``reset_state()``; calling it updates and returns the result, as Keras' metric objects.
    During ``fit``, a callback puts ``result()`` into the logs (see ``models/model.py``)."""

    stateful = True

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def reset_state(self) -> None:
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def batch_update(self, y_true: Any, y_pred: Any) -> float:
        """The function the training loop calls on each batch."""
        self.update_state(y_true, y_pred)
        return self.result()

    def __call__(self, y_true: Any, y_pred: Any) -> float:
        return self.batch_update(y_true, y_pred)

    def reset_states(self) -> None:  # Keras 2's name
        self.reset_state()


def _confusion_counts(y_true: Any, y_pred: Any, thresholds: Any) -> Tuple[Any, Any, Any, Any]:
    """True/false positives/negatives at each threshold (prediction > threshold is positive;
    a non-zero label is positive, as Keras). Shape: thresholds (k,) -> four (k,) host arrays."""
    y_true, y_pred = _arrays(y_true, y_pred)
    xp = backend.get_array_module(y_pred)
    positive = (y_true != 0).reshape(-1)
    scores = y_pred.reshape(-1)
    predicted = scores[None, :] > xp.asarray(thresholds, dtype=scores.dtype)[:, None]
    tp = (predicted & positive[None, :]).sum(axis=1)
    fp = (predicted & ~positive[None, :]).sum(axis=1)
    fn = (~predicted & positive[None, :]).sum(axis=1)
    tn = (~predicted & ~positive[None, :]).sum(axis=1)
    return tuple(backend.to_numpy(c).astype("float64") for c in (tp, fp, fn, tn))


def _ratio(numerator: Any, denominator: Any) -> Any:
    """numerator / denominator, 0 where the denominator is 0 (Keras' divide_no_nan)."""
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


class Precision(StatefulMetric):
    """TP / (TP + FP) over all batches seen, predictions > ``thresholds`` (0.5) counting as
    positive; 0 while nothing has been predicted positive."""

    def __init__(self, thresholds: float = 0.5, name: str = "precision", **kwargs: Any):
        not_default = {k: v for k, v in kwargs.items() if v is not None}
        if not_default:
            raise NotImplementedError(f"Precision: {sorted(not_default)} are not supported")
        self.thresholds = 0.5 if thresholds is None else float(thresholds)
        super().__init__(name)

    def reset_state(self) -> None:
        self.true_positives = self.false_positives = self.false_negatives = 0.0

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        tp, fp, fn, _ = _confusion_counts(y_true, y_pred, [self.thresholds])
        self.true_positives += float(tp[0])
        self.false_positives += float(fp[0])
        self.false_negatives += float(fn[0])

    def result(self) -> float:
        return float(_ratio(self.true_positives, self.true_positives + self.false_positives))


class Recall(Precision):
    """TP / (TP + FN) over all batches seen (threshold 0.5 as ``Precision``)."""

    def __init__(self, thresholds: float = 0.5, name: str = "recall", **kwargs: Any):
        super().__init__(thresholds, name, **kwargs)

    def result(self) -> float:
        return float(_ratio(self.true_positives, self.true_positives + self.false_negatives))


class AUC(StatefulMetric):
    """Area under the ROC curve, as Keras computes it: confusion counts at ``num_thresholds``
    thresholds evenly spaced in [0, 1] (plus −ε and 1 + ε), accumulated over batches, and the
    curve (false-positive rate, recall) integrated with the trapezoidal rule."""

    def __init__(self, num_thresholds: int = 200, curve: str = "ROC",
                 summation_method: str = "interpolation", name: str = "auc", **kwargs: Any):
        if curve != "ROC" or summation_method != "interpolation":
            raise NotImplementedError("AUC: minidl.keras implements curve='ROC' with "
                                      "summation_method='interpolation' (Keras' defaults)")
        not_default = {k: v for k, v in kwargs.items() if v not in (None, False)}
        if not_default:
            raise NotImplementedError(f"AUC: {sorted(not_default)} are not supported")
        if num_thresholds < 2:
            raise ValueError("AUC: num_thresholds must be > 1")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.thresholds = np.array([-1e-7] + inner + [1.0 + 1e-7])
        super().__init__(name)

    def reset_state(self) -> None:
        self.counts = np.zeros((4, len(self.thresholds)))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        self.counts += np.stack(_confusion_counts(y_true, y_pred, self.thresholds))

    def result(self) -> float:
        tp, fp, fn, tn = self.counts
        recall = _ratio(tp, tp + fn)
        fp_rate = _ratio(fp, fp + tn)
        return float(((fp_rate[:-1] - fp_rate[1:]) * (recall[:-1] + recall[1:]) / 2).sum())


_STATEFUL_BY_NAME: dict = {"precision": Precision, "Precision": Precision, "recall": Recall,
                           "Recall": Recall, "auc": AUC, "AUC": AUC}


class BinaryAccuracy(Metric):
    fn = staticmethod(binary_accuracy)

    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5):
        super().__init__(name, threshold=threshold)


class CategoricalAccuracy(Metric):
    fn = staticmethod(categorical_accuracy)

    def __init__(self, name: str = "categorical_accuracy"):
        super().__init__(name)


class SparseCategoricalAccuracy(Metric):
    fn = staticmethod(sparse_categorical_accuracy)

    def __init__(self, name: str = "sparse_categorical_accuracy"):
        super().__init__(name)


def stateful(identifier: Any) -> Any:
    """The metric object when ``identifier`` is a stateful metric (its result is not a mean of
    per-sample values: Precision, Recall, AUC), else None."""
    if isinstance(identifier, str):
        identifier = _STATEFUL_BY_NAME.get(identifier)
        return identifier() if identifier is not None else None
    return identifier if getattr(identifier, "stateful", False) else None


def get(identifier: Any) -> Tuple[str, Callable[[Any, Any], Any]]:
    """``(logged name, per-sample function)`` for a metric name, a ``Metric`` object, a ``Loss``
    object or a function of your own (logged under its ``__name__``)."""
    found = stateful(identifier)
    if found is not None:
        return found.name, found.batch_update
    if isinstance(identifier, str):
        try:
            return identifier, _BY_NAME[identifier]
        except KeyError:
            raise ValueError(f"unknown metric {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)}, a Metric object or a function") from None
    if isinstance(identifier, Metric):
        return identifier.name, identifier.per_sample
    if isinstance(identifier, _losses.Loss):
        return identifier.name, _loss_metric(identifier.per_sample)
    if callable(identifier):
        return getattr(identifier, "__name__", type(identifier).__name__), identifier
    raise TypeError(f"a metric must be a name, a Metric object or a function, got "
                    f"{type(identifier).__name__}")
