"""Embedding lookup: row ``ids[...]`` of a weight matrix, checked for out-of-range ids
(``functions.indices``)."""
from __future__ import annotations

from typing import Any, Optional

from minidl import backend
from minidl.autograd import Tensor
from minidl.functions.indices import checked_indices
from minidl.functions.shape import getitem


def embedding(ids: Any, W: Tensor, padding_idx: Optional[int] = None) -> Tensor:
    """Look up rows of ``W``: ``out[..., :] = W[ids[...], :]``.

    Shape: ids (...) integers, W (num_embeddings, dim) -> (..., dim).
    Backward: the rows' gradients add up (an id used twice gets both contributions).
    ``padding_idx``: positions holding that id output zeros and send no gradient to its row.
    """
    xp = backend.get_array_module(W.data)
    ids = checked_indices(ids, xp, W.shape[0], what="token id")
    flat = ids.reshape(-1)
    out = getitem(W, flat).reshape(*ids.shape, W.shape[1])
    if padding_idx is not None:
        keep = (ids != padding_idx)[..., None].astype(W.dtype)
        out = out * Tensor(keep)
    return out
