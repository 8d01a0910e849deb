"""Embedding lookup: row ``ids[...]`` of a weight matrix, checked for out-of-range ids."""
from __future__ import annotations

from typing import Any, Optional

from minidl import backend
from minidl.autograd import Tensor
from minidl.functions.shape import getitem


def token_ids(ids: Any, xp, num_embeddings: int, what: str = "token id") -> Any:
    """Integer ids (list, array or Tensor) as an integer array on ``xp``'s device, with every id
    in [0, num_embeddings) — NumPy would silently wrap -1 to the last row."""
    if isinstance(ids, Tensor):
        ids = ids.data
    if backend.get_array_module(ids) is not xp:
        ids = xp.asarray(backend.to_numpy(ids) if hasattr(ids, "shape") else ids)
    if ids.dtype.kind not in "iu":
        if ids.dtype.kind == "b" or ids.size == 0:
            ids = ids.astype("int64")
        else:
            raise TypeError(f"{what}s must be integers, got dtype {ids.dtype} (cast with "
                            f".astype('int64') — did you pass features instead of ids?)")
    if ids.size:
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= num_embeddings:
            bad = low if low < 0 else high
            where = tuple(int(i) for i in backend.to_numpy(xp.argwhere(ids == bad)[0]))
            raise IndexError(f"{what} {bad} at position {where} is out of range: expected ids "
                             f"in [0, {num_embeddings - 1}] for a table of {num_embeddings} rows")
    return ids


def embedding(ids: Any, W: Tensor, padding_idx: Optional[int] = None) -> Tensor:
    """Look up rows of ``W``: ``out[..., :] = W[ids[...], :]``.

    Shape: ids (...) integers, W (num_embeddings, dim) -> (..., dim).
    Backward: the rows' gradients add up (an id used twice gets both contributions).
    ``padding_idx``: positions holding that id output zeros and send no gradient to its row.
    """
    xp = backend.get_array_module(W.data)
    ids = token_ids(ids, xp, W.shape[0])
    flat = ids.reshape(-1)
    out = getitem(W, flat).reshape(*ids.shape, W.shape[1])
    if padding_idx is not None:
        keep = (ids != padding_idx)[..., None].astype(W.dtype)
        out = out * Tensor(keep)
    return out
