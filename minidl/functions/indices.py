"""Integer indices — token ids, class labels — as integer arrays, checked against their range.

The one range check of the framework: ``F.embedding`` (token ids), ``F.cross_entropy`` (class
targets) and the Keras facade (its Embedding layer, its sparse losses and the model's check of
the labels before training) all call it. NumPy would silently wrap an index of -1 to the last
row; here a negative or too large index is an error that names it and where it is.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from minidl import backend
from minidl.autograd import Tensor


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

    Shape: indices (...) -> the same shape, an integer dtype (booleans and empty arrays become
    int64). ``what`` names one index in errors (``'token id'``, ``'class target'``); ``of`` says
    what ``size`` counts (default: ``'a table of {size} rows'``).
    Errors: TypeError for non-integer values, IndexError for an index out of range.
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
        else:
            raise TypeError(f"{what}s must be integers, got dtype {indices.dtype} (cast with "
                            f".astype('int64') — did you pass features instead of ids?)")
    found = first_out_of_range(indices, size)
    if found is not None:
        bad, position = found
        of = of or f"a table of {size} rows"
        raise IndexError(f"{what} {bad} at position {position} is out of range: expected ids "
                         f"in [0, {size - 1}] for {of}")
    return indices
