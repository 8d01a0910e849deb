"""Classification metrics with scikit-learn's names, signatures and semantics.

With the confusion matrix C[i, j] = number of samples of true class i predicted as j, and for
a binary problem TN = C[0, 0], FP = C[0, 1], FN = C[1, 0], TP = C[1, 1]:

    accuracy  = (TP + TN) / N      the fraction of correct predictions (what Keras logs as
                                   `accuracy`). It is NOT precision, whatever some tutorials say.
    precision = TP / (TP + FP)     of the samples predicted positive, how many are positive
    recall    = TP / (TP + FN)     of the positive samples, how many were found
    F_beta    = (1 + β²)·TP / ((1 + β²)·TP + β²·FN + FP);  F1 = 2PR / (P + R)

Averages over classes: 'binary' (only `pos_label`), 'micro' (pool the counts of all classes),
'macro' (unweighted mean of per-class scores), 'weighted' (mean weighted by support), None
(per-class array). A zero denominator gives `zero_division` ('warn': 0.0 plus an
`UndefinedMetricWarning`).

Inputs are labels, not probabilities: lists, NumPy arrays or minidl Tensors (anything with a
`.numpy()` method). Threshold probabilities first, e.g. `(p > 0.5).astype(int)`.

For training loops there is also `binary_accuracy(y_true, y_pred)`: one value per sample, from
probabilities, on the arrays' device (CuPy too), without a copy to the host. It is the one
per-sample accuracy of the framework (the Keras facade and the applications log it), and
`binary_accuracy(y, p).mean() == accuracy_score(y, p > 0.5)` for 0/1 labels of shape (n, 1).
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Union

import numpy as np

from minidl import backend
from minidl.autograd import Tensor

__all__ = ['UndefinedMetricWarning', 'accuracy_score', 'precision_score', 'recall_score',
           'f1_score', 'fbeta_score', 'precision_recall_fscore_support', 'confusion_matrix',
           'classification_report', 'binary_accuracy', 'binary_scores']

AVERAGES = (None, 'binary', 'micro', 'macro', 'weighted')


class UndefinedMetricWarning(UserWarning):
    """A metric had a zero denominator (e.g. precision with no positive prediction)."""


def _as_labels(y: Any, name: str) -> np.ndarray:
    """y as a 1-D NumPy array of labels; a (n, 1) column (Keras' predict output) is flattened."""
    if hasattr(y, 'numpy') and not isinstance(y, np.ndarray):
        y = y.numpy()
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f'{name} must be a 1-D array of class labels, got shape {y.shape}. '
                         'For one-hot rows or class scores, take argmax(axis=1) first.')
    if y.dtype.kind == 'f' and not np.all(np.isfinite(y)):
        raise ValueError(f'{name} contains NaN or infinity.')
    return y


def _kind_of_target(y: np.ndarray) -> str:
    """'continuous' (non-integer floats), 'binary' (<= 2 distinct labels) or 'multiclass'."""
    if y.dtype.kind == 'f' and np.any(y != np.round(y)):
        return 'continuous'
    return 'binary' if len(np.unique(y)) <= 2 else 'multiclass'


def _check_targets(y_true: Any, y_pred: Any) -> tuple[str, np.ndarray, np.ndarray]:
    """Convert both label arrays and name the task: 'binary' (<= 2 labels) or 'multiclass'."""
    y_true, y_pred = _as_labels(y_true, 'y_true'), _as_labels(y_pred, 'y_pred')
    if len(y_true) != len(y_pred):
        raise ValueError('Found input variables with inconsistent numbers of samples: '
                         f'[{len(y_true)}, {len(y_pred)}]')
    kinds = [_kind_of_target(y_true), _kind_of_target(y_pred)]
    if 'continuous' in kinds:
        name = 'y_true' if kinds[0] == 'continuous' else 'y_pred'
        raise ValueError(f"Classification metrics can't handle a mix of {kinds[0]} and {kinds[1]} "
                         f'targets: {name} holds non-integer values, such as probabilities. '
                         'Threshold them into labels first, e.g. (p > 0.5).astype(int).')
    if (y_true.dtype.kind in 'USO') != (y_pred.dtype.kind in 'USO'):
        raise ValueError('Mix of label input types (string and number)')
    task = 'binary' if len(np.union1d(y_true, y_pred)) <= 2 else 'multiclass'
    return task, y_true, y_pred


def _zero_division_value(zero_division: Union[str, float]) -> float:
    if isinstance(zero_division, str) and zero_division == 'warn':
        return 0.0
    if isinstance(zero_division, (int, float)) and (zero_division in (0, 1)
                                                    or np.isnan(zero_division)):
        return float(zero_division)
    raise ValueError(f"zero_division must be 'warn', 0, 1 or np.nan, got {zero_division!r}")


def _divide(numerator: np.ndarray, denominator: np.ndarray, metric: str, reason: str,
            warn: bool, zero_division: Union[str, float]) -> np.ndarray:
    """numerator / denominator, with `zero_division` where the denominator is 0."""
    undefined = denominator == 0
    result = numerator / np.where(undefined, 1, denominator)
    if np.any(undefined):
        result[undefined] = _zero_division_value(zero_division)
        if warn and zero_division == 'warn':
            where = 'due to' if len(result) == 1 else 'in labels with'
            warnings.warn(f'{metric} is ill-defined and being set to 0.0 {where} no {reason} '
                          'samples. Use `zero_division` parameter to control this behavior.',
                          UndefinedMetricWarning, stacklevel=4)
    return result


def accuracy_score(y_true: Any, y_pred: Any, *, normalize: bool = True,
                   sample_weight: Optional[Sequence[float]] = None) -> float:
    """Fraction of correct predictions, (TP + TN) / N; the count of them if not `normalize`."""
    _, y_true, y_pred = _check_targets(y_true, y_pred)
    correct = (y_true == y_pred).astype(float)
    weights = np.ones(len(correct)) if sample_weight is None else np.asarray(sample_weight, float)
    if normalize:
        return float(np.average(correct, weights=weights))
    return float(np.sum(correct * weights))


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """Per sample, the fraction of outputs on the right side of `threshold`: the mean over the
    last axis of [y_true == (y_pred > threshold)] (Keras' binary accuracy; strictly greater).

    Shape: y_true and y_pred (n, ..., k) -> (n, ...), in y_pred's floating dtype, on y_pred's
    device (y_true is moved there). Arrays of any device, lists or Tensors.
    """
    y_pred = y_pred.data if isinstance(y_pred, Tensor) else y_pred
    y_pred = y_pred if hasattr(y_pred, 'shape') else backend.host_array(y_pred, 'float32')
    y_true = y_true.data if isinstance(y_true, Tensor) else y_true
    y_true = backend.to_device_array(y_true, backend.device_of(y_pred))
    predicted = (y_pred > threshold).astype(y_pred.dtype)
    return (y_true == predicted).astype(y_pred.dtype).mean(axis=-1)


def precision_recall_fscore_support(
        y_true: Any, y_pred: Any, *, beta: float = 1.0, labels: Optional[Sequence] = None,
        pos_label: Any = 1, average: Optional[str] = None,
        warn_for: Sequence[str] = ('precision', 'recall', 'f-score'),
        sample_weight: Optional[Sequence[float]] = None,
        zero_division: Union[str, float] = 'warn') -> tuple:
    """Precision, recall, F-beta and support (true count) per class, or averaged.

    Returns (precision, recall, fbeta, support): arrays of shape (n_labels,) when `average`
    is None, otherwise three floats and support None.
    Per class: P = TP / (TP + FP), R = TP / (TP + FN), F = (1 + β²)·TP / (β²·(TP + FN) + TP + FP).
    """
    if average not in AVERAGES:
        raise ValueError(f'average has to be one of {AVERAGES}, got {average!r}')
    if beta < 0:
        raise ValueError('beta should be >=0 in the F-beta score')
    _zero_division_value(zero_division)
    task, y_true, y_pred = _check_targets(y_true, y_pred)
    present = np.union1d(y_true, y_pred).tolist()
    if average == 'binary':
        if task != 'binary':
            raise ValueError(f"Target is {task} but average='binary'. Please choose another "
                             "average setting, one of [None, 'micro', 'macro', 'weighted'].")
        if pos_label not in present and len(present) >= 2:
            raise ValueError(f'pos_label={pos_label!r} is not a valid label. '
                             f'It should be one of {present}')
        labels = [pos_label]
    elif pos_label not in (None, 1):
        warnings.warn(f'Note that pos_label (set to {pos_label!r}) is ignored when average != '
                      f"'binary' (got {average!r}). You may use labels=[pos_label] to specify "
                      'a single positive class.', UserWarning, stacklevel=2)
    labels = np.asarray(present if labels is None else labels)
    weights = None if sample_weight is None else np.asarray(sample_weight, float)

    # (n_samples, n_labels) indicators; summing them over samples gives per-class counts.
    is_true = y_true[:, None] == labels[None, :]
    is_pred = y_pred[:, None] == labels[None, :]
    def count(indicator):
        return indicator.sum(axis=0) if weights is None else weights @ indicator
    tp_sum, true_sum, pred_sum = count(is_true & is_pred), count(is_true), count(is_pred)
    if average == 'micro':
        tp_sum, true_sum, pred_sum = (np.sum(n, keepdims=True) for n in (tp_sum, true_sum, pred_sum))

    beta2 = beta ** 2
    precision = _divide(tp_sum, pred_sum, 'Precision', 'predicted',
                        'precision' in warn_for, zero_division)
    recall = _divide(tp_sum, true_sum, 'Recall', 'true', 'recall' in warn_for, zero_division)
    if np.isposinf(beta):
        fscore = recall
    elif beta == 0:
        fscore = precision
    else:
        fscore = _divide((1 + beta2) * tp_sum, beta2 * true_sum + pred_sum, 'F-score',
                         'true nor predicted', 'f-score' in warn_for, zero_division)
    if average is None:
        return precision, recall, fscore, true_sum
    class_weights = true_sum if average == 'weighted' else None
    return (_nan_average(precision, class_weights), _nan_average(recall, class_weights),
            _nan_average(fscore, class_weights), None)


def _nan_average(scores: np.ndarray, weights: Optional[np.ndarray]) -> float:
    """Mean of the scores that are not NaN (zero_division=np.nan); all-zero weights count as equal."""
    defined = ~np.isnan(scores)
    if not np.any(defined):
        return float('nan')
    if weights is None or np.sum(weights[defined]) == 0:
        return float(np.mean(scores[defined]))
    return float(np.average(scores[defined], weights=weights[defined]))


def precision_score(y_true: Any, y_pred: Any, *, labels: Optional[Sequence] = None,
                    pos_label: Any = 1, average: Optional[str] = 'binary',
                    sample_weight: Optional[Sequence[float]] = None,
                    zero_division: Union[str, float] = 'warn'):
    """Precision TP / (TP + FP): of the samples predicted positive, the fraction truly positive."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average, warn_for=('precision',),
        sample_weight=sample_weight, zero_division=zero_division)[0]


def recall_score(y_true: Any, y_pred: Any, *, labels: Optional[Sequence] = None,
                 pos_label: Any = 1, average: Optional[str] = 'binary',
                 sample_weight: Optional[Sequence[float]] = None,
                 zero_division: Union[str, float] = 'warn'):
    """Recall TP / (TP + FN): of the truly positive samples, the fraction predicted positive."""
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average, warn_for=('recall',),
        sample_weight=sample_weight, zero_division=zero_division)[1]


def fbeta_score(y_true: Any, y_pred: Any, *, beta: float, labels: Optional[Sequence] = None,
                pos_label: Any = 1, average: Optional[str] = 'binary',
                sample_weight: Optional[Sequence[float]] = None,
                zero_division: Union[str, float] = 'warn'):
    """F-beta = (1 + β²)·P·R / (β²·P + R): recall counts β times as much as precision."""
    return precision_recall_fscore_support(
        y_true, y_pred, beta=beta, labels=labels, pos_label=pos_label, average=average,
        warn_for=('f-score',), sample_weight=sample_weight, zero_division=zero_division)[2]


def f1_score(y_true: Any, y_pred: Any, *, labels: Optional[Sequence] = None,
             pos_label: Any = 1, average: Optional[str] = 'binary',
             sample_weight: Optional[Sequence[float]] = None,
             zero_division: Union[str, float] = 'warn'):
    """F1 = 2·P·R / (P + R), the harmonic mean of precision and recall.

    Macro-F1 is the mean of the per-class F1, not the F1 of macro precision and macro recall.
    """
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average, warn_for=('f-score',),
        sample_weight=sample_weight, zero_division=zero_division)[2]


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Optional[Sequence] = None,
                     sample_weight: Optional[Sequence[float]] = None,
                     normalize: Optional[str] = None) -> np.ndarray:
    """C[i, j] = number of samples of true class labels[i] predicted as labels[j].

    Shape: (n_labels, n_labels); labels default to the sorted union of both arrays; samples
    whose labels are not in `labels` are ignored. normalize='true' divides each row by its
    sum, 'pred' each column, 'all' the whole matrix. Binary: [[TN, FP], [FN, TP]].
    """
    if normalize not in ('true', 'pred', 'all', None):
        raise ValueError("normalize must be one of {'true', 'pred', 'all', None}")
    _, y_true, y_pred = _check_targets(y_true, y_pred)
    if labels is None:
        labels = np.union1d(y_true, y_pred)
        if len(labels) == 1:
            warnings.warn("A single label was found in 'y_true' and 'y_pred'. For the confusion "
                          "matrix to have the correct shape, use the 'labels' parameter to pass "
                          'all known labels.', UserWarning, stacklevel=2)
    else:
        labels = np.asarray(labels)
        if len(labels) == 0:
            raise ValueError("'labels' should contain at least one label.")
        if not np.any(np.isin(y_true, labels)):
            raise ValueError('At least one label specified must be in y_true')
    weights = (np.ones(len(y_true), dtype=np.int64) if sample_weight is None
               else np.asarray(sample_weight))
    is_true = (y_true[:, None] == labels[None, :]).astype(weights.dtype)
    is_pred = (y_pred[:, None] == labels[None, :]).astype(weights.dtype)
    C = (is_true * weights[:, None]).T @ is_pred
    if normalize is None:
        return C
    total = {'true': C.sum(axis=1, keepdims=True), 'pred': C.sum(axis=0, keepdims=True),
             'all': C.sum()}[normalize]
    with np.errstate(all='ignore'):
        return np.nan_to_num(C / total)  # an empty row or column gives 0, not NaN


def classification_report(y_true: Any, y_pred: Any, *, labels: Optional[Sequence] = None,
                          target_names: Optional[Sequence[str]] = None,
                          sample_weight: Optional[Sequence[float]] = None, digits: int = 2,
                          output_dict: bool = False,
                          zero_division: Union[str, float] = 'warn') -> Union[str, dict]:
    """A table of precision, recall, F1 and support per class, then accuracy, macro and
    weighted averages (scikit-learn's layout). The 'accuracy' row appears when every class is
    reported; otherwise a 'micro avg' row is shown instead."""
    _, y_true, y_pred = _check_targets(y_true, y_pred)
    present = np.union1d(y_true, y_pred)
    labels_given = labels is not None
    labels = present if labels is None else np.asarray(labels)
    if target_names is not None and len(target_names) != len(labels):
        message = (f'Number of classes, {len(labels)}, does not match size of target_names, '
                   f'{len(target_names)}.')
        if not labels_given:
            raise ValueError(message + ' Try specifying the labels parameter')
        warnings.warn(message, UserWarning, stacklevel=2)
    names = [str(label) for label in labels] if target_names is None else list(target_names)
    show_accuracy = not labels_given or set(present.tolist()) <= set(labels.tolist())
    kwargs = dict(labels=labels, sample_weight=sample_weight, zero_division=zero_division)
    per_class = precision_recall_fscore_support(y_true, y_pred, average=None, **kwargs)
    support = per_class[3]
    class_rows = [(name, *(float(v[k]) for v in per_class[:3]), support[k])
                  for k, name in zip(range(len(labels)), names)]  # zip: sizes may differ (warned)
    average_rows = []
    for average in ('micro', 'macro', 'weighted'):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, **kwargs)
        heading = 'accuracy' if average == 'micro' and show_accuracy else f'{average} avg'
        average_rows.append((heading, p, r, f, support.sum()))

    headers = ('precision', 'recall', 'f1-score', 'support')
    if output_dict:
        report = {row[0]: dict(zip(headers, map(float, row[1:])))
                  for row in class_rows + average_rows}
        if 'accuracy' in report:
            report['accuracy'] = report['accuracy']['f1-score']
        return report
    width = max(max((len(name) for name in names), default=0), len('weighted avg'), digits)
    lines = [' ' * width + ' ' + ''.join(f' {h:>9}' for h in headers), '']
    def line(heading, p, r, f, s):
        if heading == 'accuracy':  # accuracy has a single value, shown in the F1 column
            return f'{heading:>{width}} ' + ' ' * 20 + f' {f:>9.{digits}f} {s:>9}'
        return f'{heading:>{width}}  {p:>9.{digits}f} {r:>9.{digits}f} {f:>9.{digits}f} {s:>9}'
    lines += [line(*row) for row in class_rows] + [''] + [line(*row) for row in average_rows]
    return '\n'.join(lines) + '\n'


def binary_scores(y_true: Any, probability: Any, threshold: float = 0.5) -> dict:
    """The report of a binary classifier from its probabilities of the positive class:
    accuracy, precision, recall, F1 (positive = 1; 0 where undefined) and the confusion matrix
    ``C[true][predicted]`` as nested lists (JSON-ready).

    Shape: y_true (n,) labels 0/1, probability (n,) or (n, 1).
    """
    p = _as_labels(probability, 'probability').astype(np.float64)
    predicted = (p > threshold).astype(int)
    y = _as_labels(y_true, 'y_true').astype(int)
    return {'accuracy': accuracy_score(y, predicted),
            'precision': precision_score(y, predicted, zero_division=0),
            'recall': recall_score(y, predicted, zero_division=0),
            'f1': f1_score(y, predicted, zero_division=0),
            'confusion_matrix': confusion_matrix(y, predicted, labels=[0, 1]).tolist()}
