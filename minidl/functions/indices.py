"""Integer indices — token ids, class labels — as integer arrays, checked against their range.

The one range check of the framework: ``F.embedding`` (token ids), ``F.cross_entropy`` (class
targets) and the Keras facade (its Embedding layer, its sparse losses and the model's check of
the labels before training) all call it. NumPy would silently wrap an index of -1 to the last
row; here a negative or too large index is an error that names it and where it is.

Floating-point ids are accepted when every one is a whole number (``2.0``; a NumPy array read
from a CSV file is float64): they are checked as they are — whole, finite, in range — and only
then converted to int64, so no cast can change an id first (float32 cannot hold 16,777,217;
a float beyond the int64 range would wrap). ``0.5`` or NaN is an error naming it.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from minidl import backend
from minidl.autograd import Tensor


class IndexOutOfRangeError(IndexError):
    """An index outside [0, size): ``value`` and its ``position`` in the checked array.
    ``located(where)`` tells the same error at another place (the index in a user's data set
    instead of the position in a shuffled batch)."""

    def __init__(self, value: int, position: Tuple[int, ...], size: int,
                 what: str = "token id", of: Optional[str] = None,
                 where: Optional[str] = None):
        self.value, self.position, self.size, self.what = value, position, size, what
        self.of = of or f"a table of {size} rows"
        super().__init__(f"{what} {value} at {where or f'position {position}'} is out of "
                         f"range: expected ids in [0, {size - 1}] for {self.of}")

    def located(self, where: str) -> "IndexOutOfRangeError":
        return IndexOutOfRangeError(self.value, self.position, self.size, self.what, self.of,
                                    where)


class NonIntegerIndexError(TypeError):
    """Indices that are not whole numbers: ``value`` (None for a non-numeric dtype) and its
    ``position`` in the checked array, of ``dtype``; ``located(where)`` as above."""

    def __init__(self, value: Any, position: Tuple[int, ...], dtype: Any,
                 what: str = "token id", where: Optional[str] = None):
        self.value, self.position, self.dtype, self.what = value, position, dtype, what
        if value is None:
            message = (f"{what}s must be integers, got dtype {dtype} (did you pass features or "
                       f"text instead of ids?)")
        else:
            message = (f"{what}s must be integers, got dtype {dtype} holding {value} at "
                       f"{where or f'position {position}'} (whole numbers such as 2.0 are "
                       f"accepted; did you pass features instead of ids?)")
        super().__init__(message)

    def located(self, where: str) -> "NonIntegerIndexError":
        return NonIntegerIndexError(self.value, self.position, self.dtype, self.what, where)


def first_out_of_range(indices: Any, size: int) -> Optional[Tuple[int, Tuple[int, ...]]]:
    """The first index outside [0, size) — the smallest if any is negative, else the largest —
    and its position, or None when every index is in range.

    Shape: indices (...) integers on any device -> (value, position) with len(position) ==
    indices.ndim, or None.
    """
    if indices.size == 0:
        return None
    low, high = int(indices.min()), int(indices.max())
    if low >= 0 and high < size:
        return None
    bad = low if low < 0 else high
    xp = backend.get_array_module(indices)
    position = tuple(int(i) for i in backend.to_numpy(xp.argwhere(indices == bad)[0]))
    return bad, position


def checked_indices(indices: Any, xp: Any, size: int, what: str = "token id",
                    of: Optional[str] = None) -> Any:
    """Integer indices (list, array or Tensor) as an integer array on ``xp``'s device, every one
    in [0, size).

    Shape: indices (...) -> the same shape, an integer dtype (booleans, whole-number floats and
    empty arrays become int64). ``what`` names one index in errors (``'token id'``,
    ``'class target'``); ``of`` says what ``size`` counts (default: ``'a table of {size} rows'``).
    Errors: ``NonIntegerIndexError`` (a TypeError) for non-numbers and for floats that are not
    whole, ``IndexOutOfRangeError`` (an IndexError) for an index out of range; both carry the
    ``value`` and its ``position``.
    """
    if isinstance(indices, Tensor):
        indices = indices.data
    if not hasattr(indices, "shape"):
        indices = xp.asarray(backend.host_array(indices))
    elif backend.get_array_module(indices) is not xp:
        indices = xp.asarray(backend.to_numpy(indices))
    if indices.dtype.kind not in "iu":
        if indices.dtype.kind == "b" or indices.size == 0:
            indices = indices.astype("int64")
        elif indices.dtype.kind != "f":
            raise NonIntegerIndexError(None, (), indices.dtype, what)
        else:
            _check_whole(indices, xp, what)
    found = first_out_of_range(indices, size)
    if found is not None:
        bad, position = found
        raise IndexOutOfRangeError(bad, position, size, what, of)
    return indices.astype("int64") if indices.dtype.kind == "f" else indices


def _check_whole(indices: Any, xp: Any, what: str) -> None:
    """Raise ``NonIntegerIndexError`` at the first float that is not a whole finite number."""
    finite = xp.isfinite(indices)
    not_whole = ~finite | (xp.floor(xp.where(finite, indices, 0)) != indices)
    if bool(not_whole.any()):
        position = tuple(int(i) for i in backend.to_numpy(xp.argwhere(not_whole)[0]))
        value = float(indices[position])
        raise NonIntegerIndexError(value, position, indices.dtype, what)
