"""Ops that move values around without changing them: reshape, transpose, broadcast_to,
sum_to, getitem, concat, stack, split, chunk.

``sum_to`` and ``broadcast_to`` are each other's backward. Both accept raw arrays as well as
Tensors, because backward passes (which work on raw arrays) need them.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from minidl import backend
from minidl.autograd import Function, ShapeError, Tensor, as_tensor


def _sum_to_array(g: Any, shape: tuple) -> Any:
    """Sum the array ``g`` over the axes that broadcasting added or stretched, giving ``shape``."""
    # BEGIN EXERCISE sum_to
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes).reshape(shape)
    # END EXERCISE


class Reshape(Function):
    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return gy.transpose()
        inverse = [0] * len(self.axes)
        for position, axis in enumerate(self.axes):
            inverse[axis % len(self.axes)] = position
        return gy.transpose(tuple(inverse))


class BroadcastTo(Function):
    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return backend.get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.x_shape)


class SumTo(Function):
    def __init__(self, shape: tuple):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return _sum_to_array(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.x_shape)


def reshape(x: Tensor, *shape) -> Tensor:
    """``x`` with a new shape (same elements, C order). Accepts ``reshape(x, 2, 3)`` or a tuple;
    one dimension may be -1."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if shape == x.shape:
        return x
    return Reshape(shape)(x)


def transpose(x: Tensor, *axes) -> Tensor:
    """Permute the axes (NumPy's meaning); no axes reverses them."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    return Transpose(axes or None)(x)


def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes."""
    axes = list(range(x.ndim))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return Transpose(tuple(axes))(x)


def broadcast_to(x: Any, shape: tuple) -> Any:
    """Repeat ``x`` along size-1 (or missing leading) axes to ``shape``. Backward: ``sum_to``.
    Raw arrays in, raw arrays out (``backend.broadcast_array``)."""
    if x.shape == shape:
        return x
    shape = tuple(shape)
    if not isinstance(x, Tensor):
        return backend.broadcast_array(x, shape)
    return BroadcastTo(shape)(x)


def sum_to(x: Any, shape: tuple) -> Any:
    """Sum ``x`` down to ``shape`` — undoes broadcasting. Backward: ``broadcast_to``.
    Raw arrays in, raw arrays out."""
    if x.shape == shape:  # the common case: nothing was broadcast
        return x
    shape = tuple(shape)
    if not isinstance(x, Tensor):
        return _sum_to_array(x, shape)
    return SumTo(shape)(x)


# ----------------------------------------------------------------------------- indexing
def _is_advanced(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "shape") and p.ndim > 0 or isinstance(p, list) for p in parts)


class GetItem(Function):
    """``y = x[index]``. Backward scatters ``gy`` into zeros; repeated indices accumulate."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        return GetItemGrad(self.index, self.x_shape)(gy) if isinstance(gy, Tensor) \
            else _scatter(gy, self.index, self.x_shape, self.x_dtype)


class GetItemGrad(Function):
    """The backward of ``GetItem`` as an op of its own, so it can be differentiated again."""

    def __init__(self, index, shape: tuple):
        self.index, self.shape = index, shape

    def forward(self, gy):
        return _scatter(gy, self.index, self.shape, gy.dtype)

    def backward(self, ggx):
        return ggx[self.index]


def _scatter(gy, index, shape, dtype):
    xp = backend.get_array_module(gy)
    gx = xp.zeros(shape, dtype=dtype)
    if _is_advanced(index):
        backend.scatter_add(gx, index, gy)
    else:
        gx[index] = gy  # basic slicing never repeats an element
    return gx


def _device_index(index, xp):
    """Tensors and lists in an index become integer/bool arrays on the data's device."""
    if isinstance(index, tuple):
        return tuple(_device_index(part, xp) for part in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list) or (hasattr(index, "shape") and backend.get_array_module(index)
                                   is not xp):
        return xp.asarray(index)
    return index


def getitem(x: Tensor, index) -> Tensor:
    """``x[index]`` with NumPy's basic and integer-array indexing.

    Backward adds ``gy`` back into the selected places; an element picked twice gets both
    contributions (``x[[0, 0]]``).
    """
    xp = backend.get_array_module(x.data)
    return GetItem(_device_index(index, xp))(x)


# ----------------------------------------------------------------------------- joining
def _pieces(array: Any, sizes: Sequence[int], axis: int) -> tuple:
    """Consecutive slices of ``sizes`` along ``axis`` (views): Concat's backward, Split's
    forward."""
    axis %= array.ndim
    pieces, start = [], 0
    for size in sizes:
        pieces.append(array[(slice(None),) * axis + (slice(start, start + size),)])
        start += size
    return tuple(pieces)


class Concat(Function):
    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return backend.get_array_module(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        return _pieces(gy, self.sizes, self.axis)


class Stack(Function):
    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, *xs):
        return backend.get_array_module(xs[0]).stack(xs, axis=self.axis)

    def backward(self, gy):
        axis = self.axis % gy.ndim
        return tuple(gy[(slice(None),) * axis + (i,)] for i in range(gy.shape[axis]))


class Split(Function):
    """The inverse of ``Concat``: consecutive pieces of ``sizes`` along ``axis``, as views.
    Backward joins the pieces' gradients into one array in a single pass (slicing the pieces
    with ``getitem`` instead costs a zero-filled array per piece and a sum of all of them)."""

    def __init__(self, sizes: Sequence[int], axis: int):
        self.sizes, self.axis = list(sizes), axis

    def forward(self, x):
        return _pieces(x, self.sizes, self.axis)

    def backward(self, *gys):
        return backend.get_array_module(gys[0]).concatenate(gys, axis=self.axis)


def split(x: Tensor, split_size_or_sections: Any, axis: int = 0, *,
          dim: Optional[int] = None) -> tuple:
    """Cut ``x`` along ``axis`` into pieces (PyTorch's ``torch.split``): an int gives pieces of
    that size (the last may be smaller), a list gives the size of each piece.
    Shape: (..., n, ...) -> a tuple of (..., n_i, ...) with Σ n_i = n."""
    axis = axis if dim is None else dim
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"split: axis {axis} is out of range for a tensor of shape {x.shape}")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: the piece size must be positive, got "
                             f"{split_size_or_sections}")
        step = split_size_or_sections
        sizes = [min(step, n - start) for start in range(0, n, step)] or [0]
    else:
        sizes = [int(size) for size in split_size_or_sections]
        if sum(sizes) != n or any(size < 0 for size in sizes):
            raise ShapeError(f"split: sizes {sizes} must be non-negative and add up to "
                             f"{n}, the length of axis {axis} of shape {x.shape}")
    return Split(sizes, axis)(x) if len(sizes) > 1 else (x,)


def chunk(x: Tensor, chunks: int, axis: int = 0, *, dim: Optional[int] = None) -> tuple:
    """``chunks`` pieces of equal size ⌈n/chunks⌉ along ``axis`` (the last may be smaller, and
    there may be fewer), as PyTorch's ``torch.chunk``.
    Shape: (..., n, ...) -> a tuple of at most ``chunks`` tensors (..., ⌈n/chunks⌉, ...)."""
    axis = axis if dim is None else dim
    if chunks <= 0:
        raise ValueError(f"chunk: the number of chunks must be positive, got {chunks}")
    if not -x.ndim <= axis < x.ndim:
        raise ShapeError(f"chunk: axis {axis} is out of range for a tensor of shape {x.shape}")
    return split(x, max(1, -(-x.shape[axis] // chunks)), axis)


def _check_same_shapes(name: str, tensors: Sequence[Tensor], skip_axis=None) -> None:
    first = tensors[0].shape
    if all(t.shape == first for t in tensors):    # the common case, checked in one pass
        return
    for i, t in enumerate(tensors[1:], 1):
        a = [n for k, n in enumerate(first) if skip_axis is None or k != skip_axis % len(first)]
        b = [n for k, n in enumerate(t.shape) if skip_axis is None or k != skip_axis % len(first)]
        if len(first) != len(t.shape) or a != b:
            what = "all axes" if skip_axis is None else f"every axis but {skip_axis}"
            raise ShapeError(f"{name}: tensor 0 has shape {first} and tensor {i} has shape "
                             f"{t.shape}; they must agree on {what}")


def concat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis. Shape: (..., n_i, ...) -> (..., sum n_i, ...)."""
    tensors = [as_tensor(t, tensors[0]) for t in tensors]
    _check_same_shapes("concat", tensors, skip_axis=axis)
    return Concat(axis)(*tensors)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis. Shape: k × (...) -> (..., k, ...)."""
    tensors = [as_tensor(t, tensors[0]) for t in tensors]
    _check_same_shapes("stack", tensors)
    return Stack(axis)(*tensors)
