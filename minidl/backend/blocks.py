"""Row blocks: run a fused op's chain of NumPy ufuncs block by block, so the block stays in cache.

A fused op written with NumPy (GELU, the attention softmax, log-softmax, LayerNorm) is a chain
of ufuncs, and each ufunc makes one pass over the whole array. On a (2048, 768) float32 block
that is 6 MB a pass: the data leaves the cache between passes and every pass reads it from
memory again. Cutting the rows into blocks of ~128 K elements (512 KB of float32) and running
the whole chain on one block before the next keeps the block in the L2 cache between passes.
Measured on the 2-core machine (SkylakeX), the tanh GELU of a (16, 128, 768) float32 block:
forward 2.84 → 1.84 ms, backward 3.70 → 2.17 ms; a GPT training step (B16 T128 d192 L4)
330 → 317 ms.

    kernel(*blocks)                 one call per block; blocks[i] = arrays[i][lo:hi]
    for_row_blocks(kernel, *arrays) the kernel over all rows (axis 0) of the arrays

A kernel must treat rows independently (elementwise work, or reductions within a row) and write
its results into output arrays passed among ``arrays``. Small arrays, and arrays on a device
that compiles fused kernels (CUDA: there the GPU runs every element at once and blocks would
only add launches), go to the kernel whole, in one call — which is also the reference a test
compares the blocks with.

Why not threads as well: NumPy releases the GIL inside each ufunc, and a second thread halves
the GELU above when measured alone, but inside a training step it gained nothing measurable
(317 vs 319 ms; OpenBLAS's own threads and the step's Python share the two cores), so the code
stays single-threaded.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from minidl import backend

BLOCK_ELEMENTS = 1 << 17        # ~128 K elements: 512 KB of float32 per array, within L2


def for_row_blocks(kernel: Callable[..., Any], *arrays: Any) -> None:
    """Call ``kernel`` on blocks of rows of ``arrays`` (split along axis 0, which all share).

    Shape: every array has the same length n along axis 0. The kernel sees slices
    ``a[lo:hi]`` (views: writing into one writes into the array) and returns nothing.
    """
    if arrays[0].ndim == 0:
        kernel(*arrays)
        return
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"for_row_blocks: the arrays must share their first axis, got shapes "
                         f"{', '.join(str(a.shape) for a in arrays)}")
    size = max(a.size for a in arrays)
    if n < 2 or size <= BLOCK_ELEMENTS or _whole_arrays_device(arrays):
        kernel(*arrays)
        return
    rows = max(1, n * BLOCK_ELEMENTS // size)                 # rows per block
    for start in range(0, n, rows):
        kernel(*[a[start:start + rows] for a in arrays])


def _whole_arrays_device(arrays: Any) -> bool:
    """Whether these arrays live where whole-array calls are best (a device with fused kernels)."""
    return any(type(a) is not np.ndarray and backend.array_device(a).fused_kernels
               for a in arrays)


TILE_ELEMENTS = 1 << 14         # 64 KB of float32: a tile and its transpose stay in L1/L2


def copy_transposed(src: Any, out: Any) -> Any:
    """``out[..., j, i] = src[..., i, j]``: the last two axes swapped, written into ``out``.

    NumPy's own transposing copy (``np.ascontiguousarray(a.swapaxes(-1, -2))``) walks one side
    with a large stride and misses the cache on nearly every element once the arrays outgrow
    it. Copying one matrix of the leading axes at a time, a tile of rows at a time, keeps both
    sides of each tile in cache. Measured on the 2-core machine, float32: the LSTM's gate
    gradients (50, 512, 256) → (50, 256, 512) 8.1 → 3.8 ms; its outputs (50, 128, 256) →
    (256, 50, 128) 11.2 → 1.8 ms.
    Shape: src (..., m, n), out (..., n, m) (any strides: ``out`` may be a transposed view);
    returns out.
    """
    if _whole_arrays_device((src, out)):
        out[...] = src.swapaxes(-1, -2)
        return out
    m, n = src.shape[-2:]
    rows = max(8, TILE_ELEMENTS // max(n, 1))
    for index in np.ndindex(*src.shape[:-2]):
        s, o = src[index], out[index]
        for i in range(0, m, rows):
            o[:, i:i + rows] = s[i:i + rows].T
    return out
