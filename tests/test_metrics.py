"""minidl.metrics follows scikit-learn (KERAS-SEMANTICS.md §7); numbers below are hand-computed."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minidl.metrics import (UndefinedMetricWarning, accuracy_score, binary_accuracy,
                            classification_report, confusion_matrix, f1_score, fbeta_score,
                            precision_recall_fscore_support, precision_score, recall_score)

# Binary: TP = 2, FN = 2, FP = 1, TN = 2.
Y_TRUE = [1, 1, 1, 1, 0, 0, 0]
Y_PRED = [1, 1, 0, 0, 1, 0, 0]

# Multiclass, supports 3, 2, 1. Per class (P, R, F1): 0: (1, 2/3, 0.8); 1: (1/2, 1/2, 1/2);
# 2: (1/2, 1, 2/3).
M_TRUE = [0, 0, 0, 1, 1, 2]
M_PRED = [0, 0, 1, 1, 2, 2]


class FakeTensor:
    """Stands in for a minidl Tensor: anything with a .numpy() method is accepted."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def numpy(self):
        return self.data.copy()


# --- binary -----------------------------------------------------------------------------------

def test_accuracy_is_correct_over_all():
    assert accuracy_score(Y_TRUE, Y_PRED) == pytest.approx(4 / 7)


def test_accuracy_is_not_precision():
    assert accuracy_score(Y_TRUE, Y_PRED) != pytest.approx(precision_score(Y_TRUE, Y_PRED))


# --- per-sample binary accuracy (training loops) ------------------------------------------------

def test_binary_accuracy_is_one_value_per_sample_with_a_strict_threshold():
    y_true = np.array([[1.0], [1.0], [0.0]], dtype=np.float32)
    y_pred = np.array([[0.5], [0.51], [0.2]], dtype=np.float32)
    values = binary_accuracy(y_true, y_pred)
    assert values.shape == (3,) and values.dtype == np.float32
    assert values.tolist() == [0.0, 1.0, 1.0]


def test_binary_accuracy_averages_over_the_last_axis():
    assert binary_accuracy([[1, 0], [1, 1]], [[0.9, 0.8], [0.7, 0.6]]).tolist() == [0.5, 1.0]


def test_binary_accuracy_mean_is_accuracy_score_of_thresholded_predictions():
    p = np.random.default_rng(0).random((50, 1)).astype(np.float32)
    y = (np.random.default_rng(1).random((50, 1)) > 0.5).astype(np.float32)
    assert binary_accuracy(y, p).mean() == pytest.approx(accuracy_score(y, (p > 0.5).astype(int)))


def test_accuracy_without_normalize_counts_correct_predictions():
    assert accuracy_score(Y_TRUE, Y_PRED, normalize=False) == 4


def test_accuracy_with_sample_weight():
    assert accuracy_score([1, 0], [1, 1], sample_weight=[3, 1]) == pytest.approx(0.75)


def test_binary_precision_is_tp_over_predicted_positives():
    assert precision_score(Y_TRUE, Y_PRED) == pytest.approx(2 / 3)


def test_binary_recall_is_tp_over_true_positives():
    assert recall_score(Y_TRUE, Y_PRED) == pytest.approx(1 / 2)


def test_binary_f1_is_harmonic_mean():
    assert f1_score(Y_TRUE, Y_PRED) == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))


def test_fbeta_weights_recall_by_beta():
    p, r = 2 / 3, 1 / 2
    assert fbeta_score(Y_TRUE, Y_PRED, beta=2) == pytest.approx(5 * p * r / (4 * p + r))


def test_pos_label_selects_the_positive_class():
    assert precision_score(Y_TRUE, Y_PRED, pos_label=0) == pytest.approx(2 / 4)


def test_string_labels_with_pos_label():
    assert recall_score(['spam', 'ham', 'spam'], ['spam', 'spam', 'ham'], pos_label='spam') == 0.5


def test_binary_confusion_matrix_is_tn_fp_fn_tp():
    assert confusion_matrix(Y_TRUE, Y_PRED).tolist() == [[2, 1], [2, 2]]


# --- multiclass averages ----------------------------------------------------------------------

def test_average_none_gives_per_class_scores_and_support():
    p, r, f, support = precision_recall_fscore_support(M_TRUE, M_PRED)
    np.testing.assert_allclose(p, [1, 1 / 2, 1 / 2])
    np.testing.assert_allclose(r, [2 / 3, 1 / 2, 1])
    np.testing.assert_allclose(f, [0.8, 1 / 2, 2 / 3])
    assert support.tolist() == [3, 2, 1]


def test_macro_average_is_the_unweighted_mean():
    assert precision_score(M_TRUE, M_PRED, average='macro') == pytest.approx(2 / 3)
    assert recall_score(M_TRUE, M_PRED, average='macro') == pytest.approx(13 / 18)


def test_macro_f1_is_the_mean_of_per_class_f1_not_f1_of_macro_p_and_r():
    macro_f1 = f1_score(M_TRUE, M_PRED, average='macro')
    assert macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    p, r = 2 / 3, 13 / 18
    assert macro_f1 != pytest.approx(2 * p * r / (p + r))


def test_weighted_average_weights_by_support():
    assert f1_score(M_TRUE, M_PRED, average='weighted') == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)


def test_micro_average_pools_counts_and_equals_accuracy_for_single_label_data():
    for score in (precision_score, recall_score, f1_score):
        assert score(M_TRUE, M_PRED, average='micro') == pytest.approx(4 / 6)


def test_labels_restrict_and_order_the_classes():
    p, _, _, support = precision_recall_fscore_support(M_TRUE, M_PRED, labels=[2, 0])
    np.testing.assert_allclose(p, [1 / 2, 1])
    assert support.tolist() == [1, 3]


def test_sample_weight_scales_the_counts():
    # weighted TP = 3, FP = 1 → precision 3/4
    assert precision_score([1, 1, 0], [1, 1, 1], sample_weight=[1, 2, 1]) == pytest.approx(3 / 4)


def test_multiclass_confusion_matrix_counts_true_rows_predicted_columns():
    assert confusion_matrix(M_TRUE, M_PRED).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize('normalize, expected', [
    ('true', [[2 / 3, 1 / 3, 0], [0, 1 / 2, 1 / 2], [0, 0, 1]]),
    ('pred', [[1, 1 / 2, 0], [0, 1 / 2, 1 / 2], [0, 0, 1 / 2]]),
    ('all', [[2 / 6, 1 / 6, 0], [0, 1 / 6, 1 / 6], [0, 0, 1 / 6]]),
])
def test_confusion_matrix_normalizes_rows_columns_or_all(normalize, expected):
    np.testing.assert_allclose(confusion_matrix(M_TRUE, M_PRED, normalize=normalize), expected)


def test_confusion_matrix_labels_select_and_order_rows():
    assert confusion_matrix(M_TRUE, M_PRED, labels=[2, 0]).tolist() == [[1, 0], [0, 2]]


def test_confusion_matrix_rejects_unknown_normalize():
    with pytest.raises(ValueError, match='normalize'):
        confusion_matrix(M_TRUE, M_PRED, normalize='rows')


def test_confusion_matrix_rejects_labels_absent_from_y_true():
    with pytest.raises(ValueError, match='At least one label'):
        confusion_matrix([0, 1], [0, 1], labels=[5])


# --- zero division ----------------------------------------------------------------------------

def test_precision_without_positive_predictions_is_zero_with_a_warning():
    with pytest.warns(UndefinedMetricWarning, match='Precision is ill-defined'):
        assert precision_score([1, 0], [0, 0]) == 0.0


def test_recall_without_positive_samples_is_zero_with_a_warning():
    with pytest.warns(UndefinedMetricWarning, match='Recall is ill-defined'):
        assert recall_score([0, 0], [1, 0]) == 0.0


def test_f1_without_true_or_predicted_positives_is_zero_with_a_warning():
    with pytest.warns(UndefinedMetricWarning, match='F-score is ill-defined'):
        assert f1_score([0, 0], [0, 0]) == 0.0


@pytest.mark.parametrize('zero_division', [0, 1])
def test_zero_division_value_replaces_the_score_silently(zero_division):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert precision_score([1, 0], [0, 0], zero_division=zero_division) == zero_division


def test_zero_division_nan_is_left_out_of_macro_average():
    assert np.isnan(precision_score([1, 0], [0, 0], zero_division=np.nan))
    # class 2 is never predicted: its NaN precision is ignored by the macro mean
    assert precision_score([0, 1, 2], [0, 1, 1], average='macro', zero_division=np.nan) == 0.75


def test_undefined_metric_warning_is_a_user_warning():
    assert issubclass(UndefinedMetricWarning, UserWarning)


def test_invalid_zero_division_raises():
    with pytest.raises(ValueError, match='zero_division'):
        precision_score(Y_TRUE, Y_PRED, zero_division=2)


# --- errors -----------------------------------------------------------------------------------

def test_binary_average_on_multiclass_data_raises():
    with pytest.raises(ValueError, match="Target is multiclass but average='binary'"):
        f1_score(M_TRUE, M_PRED)


def test_pos_label_not_among_labels_raises():
    with pytest.raises(ValueError, match='pos_label=1 is not a valid label'):
        precision_score([0, 2, 2], [0, 2, 0])


def test_pos_label_is_ignored_with_a_warning_when_averaging():
    with pytest.warns(UserWarning, match='pos_label'):
        precision_score(M_TRUE, M_PRED, average='macro', pos_label=2)


def test_unknown_average_raises():
    with pytest.raises(ValueError, match='average has to be one of'):
        precision_score(Y_TRUE, Y_PRED, average='samples')


def test_probabilities_raise_and_say_to_threshold_first():
    with pytest.raises(ValueError, match=r'continuous.*\(p > 0\.5\)\.astype\(int\)'):
        accuracy_score([0, 1, 1], [0.2, 0.7, 0.9])


def test_inconsistent_lengths_raise():
    with pytest.raises(ValueError, match=r'inconsistent numbers of samples: \[3, 2\]'):
        accuracy_score([0, 1, 1], [0, 1])


def test_string_and_number_labels_raise():
    with pytest.raises(ValueError, match='Mix of label input types'):
        accuracy_score(['a', 'b'], [0, 1])


def test_negative_beta_raises():
    with pytest.raises(ValueError, match='beta'):
        fbeta_score(Y_TRUE, Y_PRED, beta=-1)


def test_two_dimensional_scores_raise_and_suggest_argmax():
    with pytest.raises(ValueError, match='argmax'):
        accuracy_score([0, 1], [[0.9, 0.1], [0.2, 0.8]])


# --- input types ------------------------------------------------------------------------------

def test_tensors_with_a_numpy_method_are_accepted():
    assert accuracy_score(FakeTensor(Y_TRUE), FakeTensor(Y_PRED)) == pytest.approx(4 / 7)


def test_a_column_of_predictions_is_flattened():
    column = (np.array(Y_PRED, dtype=float)[:, None] > 0.5).astype(int)  # Keras predict shape
    assert recall_score(np.array(Y_TRUE)[:, None], column) == pytest.approx(1 / 2)


def test_float_labels_with_integer_values_are_labels():
    assert accuracy_score([0.0, 1.0], [0.0, 0.0]) == 0.5


# --- classification_report ----------------------------------------------------------------------

def test_classification_report_text_layout():
    expected = (
        '              precision    recall  f1-score   support\n'
        '\n'
        '    negative       0.50      0.67      0.57         3\n'
        '    positive       0.67      0.50      0.57         4\n'
        '\n'
        '    accuracy                           0.57         7\n'
        '   macro avg       0.58      0.58      0.57         7\n'
        'weighted avg       0.60      0.57      0.57         7\n')
    assert classification_report(Y_TRUE, Y_PRED, target_names=['negative', 'positive']) == expected


def test_classification_report_digits():
    assert '    0.6667' in classification_report(Y_TRUE, Y_PRED, digits=4)


def test_classification_report_dict():
    report = classification_report(M_TRUE, M_PRED, output_dict=True)
    assert report['0'] == pytest.approx({'precision': 1.0, 'recall': 2 / 3, 'f1-score': 0.8, 'support': 3})
    assert report['accuracy'] == pytest.approx(4 / 6)
    assert report['macro avg']['f1-score'] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert set(report) == {'0', '1', '2', 'accuracy', 'macro avg', 'weighted avg'}


def test_classification_report_shows_micro_avg_when_some_classes_are_left_out():
    report = classification_report(M_TRUE, M_PRED, labels=[0, 1])
    assert 'micro avg' in report and 'accuracy' not in report


def test_classification_report_rejects_wrong_number_of_target_names():
    with pytest.raises(ValueError, match='target_names'):
        classification_report(Y_TRUE, Y_PRED, target_names=['a', 'b', 'c'])


# --- agreement with scikit-learn, when it is installed ------------------------------------------

labels_st = st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 3), min_size=n, max_size=n),
    st.lists(st.integers(0, 3), min_size=n, max_size=n)))


@settings(max_examples=100, deadline=None)
@given(labels_st, st.sampled_from([None, 'binary', 'micro', 'macro', 'weighted']),
       st.sampled_from(['warn', 0, 1]), st.booleans())
def test_scores_match_scikit_learn(data, average, zero_division, weighted):
    sklearn_metrics = pytest.importorskip('sklearn.metrics')
    y_true, y_pred = data
    kwargs = dict(average=average, zero_division=zero_division,
                  sample_weight=np.linspace(0.5, 2, len(y_true)) if weighted else None)
    for name in ('precision_recall_fscore_support', 'precision_score', 'recall_score', 'f1_score'):
        results = []
        for module in (__import__('minidl.metrics', fromlist=['_']), sklearn_metrics):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                try:
                    results.append((getattr(module, name)(y_true, y_pred, **kwargs),
                                    sorted(str(w.message) for w in caught)))
                except ValueError:
                    results.append(('ValueError', []))
        (mine, my_warnings), (theirs, their_warnings) = results
        assert my_warnings == their_warnings, name
        if isinstance(mine, tuple):
            for a, b in zip(mine, theirs):
                assert (a is None and b is None) or np.allclose(a, b), name
        else:
            assert mine == theirs if isinstance(mine, str) else np.allclose(mine, theirs), name


@settings(max_examples=100, deadline=None)
@given(labels_st, st.sampled_from([None, 'true', 'pred', 'all']))
def test_confusion_matrix_and_report_match_scikit_learn(data, normalize):
    sklearn_metrics = pytest.importorskip('sklearn.metrics')
    y_true, y_pred = data
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        np.testing.assert_allclose(confusion_matrix(y_true, y_pred, normalize=normalize),
                                   sklearn_metrics.confusion_matrix(y_true, y_pred, normalize=normalize))
        mine = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
        theirs = sklearn_metrics.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert mine[key] == pytest.approx(theirs[key]), key
