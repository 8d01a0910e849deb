"""Recycled buffers: memory management for ops that need large scratch arrays every call.

Allocating and freeing megabytes every training step makes the C library hand them back to the
operating system, and the page faults on the next touch cost more than the arithmetic. A
``BufferPool`` keeps a few freed buffers per (array module, shape, dtype) for the next call.
The fused LSTM takes its per-sequence buffers from ``workspace`` and gives them back only when
the Function that used them is freed, so a graph that is still alive (two forward passes before
one backward, or ``backward()`` called twice) never sees its saved values overwritten.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple


class BufferPool:
    """At most ``keep`` free buffers per (array module, shape, dtype)."""

    def __init__(self, keep: int = 2):
        self.free: Dict[tuple, List[Any]] = {}
        self.keep = keep

    def take(self, xp: Any, shape: Tuple[int, ...], dtype: Any) -> Any:
        """A buffer of this shape and dtype (uninitialised): a recycled one, or a new one."""
        stack = self.free.get((xp, shape, xp.dtype(dtype)))
        return stack.pop() if stack else xp.empty(shape, dtype=dtype)

    def give(self, xp: Any, arrays: Iterable[Any]) -> None:
        """Hand buffers back; they may be returned by a later ``take``."""
        for a in arrays:
            stack = self.free.setdefault((xp, a.shape, a.dtype), [])
            if len(stack) < self.keep:
                stack.append(a)


workspace = BufferPool()
