"""Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p)."""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Tensor


def keep_mask(shape: tuple, p: float, dtype, device: str):
    """m / (1 − p) with m ~ Bernoulli(1 − p): the scaled mask of inverted dropout, a raw array
    of ``shape`` on ``device`` (0 where dropped, 1/(1 − p) where kept)."""
    kept = backend.random_uniform(shape, 0.0, 1.0, dtype, device) >= p
    xp = backend.get_array_module(kept)
    return xp.multiply(kept, 1.0 / (1.0 - p), dtype=dtype)   # one pass: bool × scale → dtype


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """During training: y = x ⊙ m / (1 - p) with m ~ Bernoulli(1 - p); at evaluation: y = x.

    Scaling at training time ("inverted" dropout) keeps E[y] = x, so nothing changes at test
    time. Shape: unchanged.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return x * Tensor(keep_mask(x.shape, p, x.dtype, x.device))
