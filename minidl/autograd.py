"""Reverse-mode automatic differentiation: ``Tensor``, ``Function``, ``backward``, ``no_grad``.

A ``Tensor`` holds an array (``.data``) and, once ``backward()`` has run, a gradient (``.grad``).
Every operation on tensors is a ``Function``: ``forward`` computes on raw arrays, ``backward``
maps the gradient of the output to gradients of the inputs (the local chain rule). Calling a
Function records it as the ``creator`` of its outputs, so the tensors form a graph that
``backward()`` walks from the output back to the leaves.

Gradient rules, as PyTorch:
- Only leaves (tensors made by the user, ``requires_grad=True``) keep ``.grad``.
- Gradients **accumulate**: a value used twice gets the sum of both contributions, and calling
  ``backward()`` again adds the same gradients once more. The graph is kept, so the second call is
  well defined; clear with ``x.grad = None`` (or ``optimizer.zero_grad()``) between steps.
- The gradient of an input that was broadcast has the input's shape.
- ``backward(create_graph=True)`` records the backward pass itself, so gradients can be
  differentiated again (second derivatives, Newton's method).

Two modes of ``Function.backward``: normally it receives and returns raw arrays (fast); with
``create_graph=True`` it receives Tensors and the very same lines record a graph. Backward
formulas are therefore written with operators and methods that arrays and Tensors share
(``*``, ``@``, ``.sum(axis, keepdims)``, ``.reshape``), plus ``F.sum_to``/``F.broadcast_to``,
which accept both. Arrays that a backward needs are kept with ``save_for_backward`` and read
back from ``saved_tensors``, which hands out the matching Tensors under ``create_graph``.
"""
from __future__ import annotations

import weakref
from typing import Any, Optional, Sequence

import numpy as np

from minidl import backend
from minidl.backend import DeviceError


class ShapeError(ValueError):
    """Shapes that do not fit an operation; the message names the op and the shapes."""


class GradientError(RuntimeError):
    """``backward()`` was used in a way that has no well-defined gradient."""


# Module-level switches read by every Function call (globals are the fastest lookup).
_grad_enabled = True
_create_graph = False


class no_grad:
    """Context manager (and decorator) that stops recording graphs: for evaluation and updates.

    >>> with md.no_grad():
    ...     y = model(x)      # y.creator is None, nothing is kept for backward
    """

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False

    def __exit__(self, *exc) -> None:
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside ``no_grad``."""

    def __enter__(self) -> None:
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether operations are being recorded for ``backward()``."""
    return _grad_enabled


# ============================================================================= Tensor
class Tensor:
    """An n-dimensional array that remembers how it was computed.

    Attributes:
        data: the array (``numpy.ndarray`` on the CPU, a CuPy array on CUDA).
        grad: a ``Tensor`` of the same shape after ``backward()``, else ``None``.
        creator: the ``Function`` that produced this tensor (``None`` for leaves).
        requires_grad: whether gradients flow to (and through) this tensor.

    Arithmetic operators (``+ - * / ** @``, unary ``-``), comparisons, indexing and the
    methods ``sum/mean/max/reshape/transpose/T`` are installed by ``minidl.functions``.
    """

    __slots__ = ("data", "grad", "creator", "index", "requires_grad", "name", "__weakref__")
    __array_ufunc__ = None  # numpy_array + tensor -> Tensor.__radd__, never an object array

    def __init__(self, data: Any, requires_grad: bool = False, name: Optional[str] = None):
        if requires_grad and data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, "
                            f"got dtype {data.dtype}")
        self.data = data
        self.grad = None        # a Tensor once backward() has reached this leaf
        self.creator = None     # the Function that produced this tensor (None for leaves)
        self.index = 0          # which output of its creator this tensor is
        self.requires_grad = requires_grad
        self.name = name

    # -- what it is
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", precision=4,
                               prefix="tensor(")
        extras = [f"dtype={self.dtype}"] if self.dtype not in (np.float32, np.int64) else []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"creator={type(self.creator).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    # -- leaving the graph / the device
    def numpy(self) -> np.ndarray:
        """A host NumPy array with the values (a copy, so changing it leaves the tensor alone)."""
        return backend.to_numpy(self.data, copy=True)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number (waits for the GPU)."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return backend.to_numpy(self.data).tolist()

    # -- PyTorch conveniences (thin aliases; the NumPy names stay primary)
    def numel(self) -> int:
        """The number of elements (``size``)."""
        return self.data.size

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        """``np.asarray(t)`` for a CPU tensor (its data, no copy). Tensors on other devices
        refuse, as CuPy arrays do: copying to the host is explicit, ``t.numpy()``."""
        if self.device != "cpu":
            raise TypeError(f"Implicit conversion of a tensor on '{self.device}' to a NumPy array "
                            f"is not allowed (CuPy refuses it too); use t.numpy() or t.cpu() for "
                            f"an explicit host copy")
        return self.data if dtype is None else self.data.astype(dtype)

    def cpu(self) -> "Tensor":
        """This tensor on the CPU (``self`` when already there)."""
        return self.to("cpu")

    def argmax(self, axis: Optional[int] = None, keepdims: bool = False, *,
               dim: Optional[int] = None) -> "Tensor":
        """Index of the largest element over ``axis`` (``dim``), as an integer tensor without a
        gradient."""
        axis = axis if dim is None else dim
        return Tensor(self.data.argmax(axis=axis, keepdims=keepdims))

    def argmin(self, axis: Optional[int] = None, keepdims: bool = False, *,
               dim: Optional[int] = None) -> "Tensor":
        """Index of the smallest element over ``axis`` (``dim``), as an integer tensor."""
        axis = axis if dim is None else dim
        return Tensor(self.data.argmin(axis=axis, keepdims=keepdims))

    def view(self, *shape: Any) -> "Tensor":
        """PyTorch's name for ``reshape`` (minidl does not distinguish views from copies)."""
        return self.reshape(*shape)

    def unsqueeze(self, axis: int) -> "Tensor":
        """Insert an axis of size 1 at ``axis`` (negative counts from the end of the result)."""
        axis = axis % (self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def squeeze(self, axis: Any = None) -> "Tensor":
        """Remove axes of size 1: all of them, or ``axis`` (an int or a tuple; an axis that is
        not 1 is left alone, as PyTorch)."""
        if axis is None:
            axes = {i for i, n in enumerate(self.shape) if n == 1}
        else:
            axes = {a % self.ndim for a in (axis if isinstance(axis, tuple) else (axis,))
                    if self.shape[a] == 1}
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    def detach(self) -> "Tensor":
        """The same data as a new leaf that does not require grad (shares memory)."""
        return Tensor(self.data)

    def to(self, device: str) -> "Tensor":
        """This tensor on ``device`` ('cpu', 'cuda', 'strict'); ``self`` when already there.

        A moved leaf stays a leaf (with the same ``requires_grad``); moving is not recorded in
        the graph, so move inputs and parameters before computing.
        """
        data = backend.to_device(self.data, device)
        if data is self.data:
            return self
        return Tensor(data, requires_grad=self.requires_grad, name=self.name)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place (on leaves); returns ``self``."""
        if self.creator is not None and not requires_grad:
            raise GradientError("requires_grad_(False) works on leaves; use .detach() on "
                                "results of operations")
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, "
                            f"got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    # -- gradients
    def backward(self, grad: Any = None, create_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires grad, adding it to ``leaf.grad``.

        Args:
            grad: the upstream gradient, same shape as ``self``. May be omitted only when
                ``self`` has one element (a loss), where it is 1.
            create_graph: record the backward pass so the gradients can be differentiated again.
        """
        if not self.requires_grad:
            raise GradientError("backward() on a tensor that does not require grad: no input "
                                "of its computation had requires_grad=True (or it was computed "
                                "under md.no_grad())")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise GradientError(
                    f"backward() without a gradient needs a single-element output (a loss), "
                    f"but this tensor has shape {self.shape}. Reduce it first (y.sum() or "
                    f"y.mean()) or pass grad= an array of shape {self.shape}.")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ShapeError(f"backward(): grad has shape {grad.shape}, but the output has "
                                 f"shape {self.shape}")
        _run_backward(self, grad, create_graph)


_HOST_SCALAR = np.generic
_make = object.__new__


def _new_tensor(data: Any, requires_grad: bool) -> Tensor:
    """A Tensor for an op's result, skipping ``__init__``'s checks (the hot path of every op)."""
    y = _make(Tensor)
    y.data, y.grad, y.creator, y.index, y.requires_grad, y.name = \
        data, None, None, 0, requires_grad, None
    return y


# ============================================================================= Function
class Function:
    """One differentiable operation.

    Subclasses define:
        forward(*arrays) -> array or tuple of arrays     (on raw NumPy/CuPy arrays)
        backward(*grad_outputs) -> grad or tuple of grads, one per input (None for inputs
            that need no gradient). See the module docstring for the two modes.

    Calling an instance with Tensors runs ``forward`` and, when gradients are being recorded and
    some input requires grad, links the outputs to this Function.

    What backward may read — one rule:
        * Inputs, outputs and anything computed from their values go through
          ``self.save_for_backward(...)`` and come back from ``self.saved_tensors``. Under
          ``create_graph=True`` those are handed out as the Tensors they belong to, so the
          gradient flows through them to second order.
        * Plain attributes (``self.axis = axis``) are for what does not vary with the inputs'
          values: shapes, axes, hyperparameters, and comparison masks (``x > 0``), whose
          derivative is zero wherever it exists. They are constants under ``create_graph``,
          which is exactly right for them.
        * A Function whose backward needs more (fused kernels, values computed in forward that
          are not inputs or outputs) sets ``differentiable_backward = False``; then
          ``create_graph=True`` through it raises before its backward runs, instead of
          silently computing a wrong second derivative.
    """

    n_outputs = 1
    differentiable_backward = True  # False: backward works on arrays only (no create_graph)
    _saved: tuple = ()
    _output_refs: tuple = ()

    def __call__(self, *inputs: Tensor):
        # Written for speed: this runs once per operation, and tiny ops are dominated by it.
        try:
            if len(inputs) == 1:
                outputs = self.forward(inputs[0].data)
            elif len(inputs) == 2:
                outputs = self.forward(inputs[0].data, inputs[1].data)
            else:
                outputs = self.forward(*[x.data for x in inputs])
        except (TypeError, ValueError) as error:
            raise _explain_failure(self, inputs, error) from error
        record = False
        if _grad_enabled:
            for x in inputs:
                if x.requires_grad:
                    record = True
                    break
        if type(outputs) is not tuple:
            if isinstance(outputs, _HOST_SCALAR):  # NumPy gives scalars for 0-d results
                data = backend.ensure_array(outputs)
                if self._saved:
                    self._saved = tuple(data if s is outputs else s for s in self._saved)
                outputs = data
            y = _new_tensor(outputs, record)
            if record:
                self.inputs = inputs
                y.creator = self
                if self._saved:
                    self._output_refs = (weakref.ref(y),)
            return y
        datas = [backend.ensure_array(y) for y in outputs]
        self._saved = tuple(next((d for y, d in zip(outputs, datas) if s is y), s)
                            for s in self._saved)
        ys = tuple(_new_tensor(d, record) for d in datas)
        if record:
            self.inputs = inputs
            self.n_outputs = len(ys)
            self._output_meta = [(y.shape, y.dtype) for y in ys]
            for i, y in enumerate(ys):
                y.creator, y.index = self, i
            self._output_refs = tuple(weakref.ref(y) for y in ys)
        return ys

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    # -- what backward needs
    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays (inputs or outputs of forward) that backward will read."""
        self._saved = arrays

    @property
    def saved_tensors(self) -> tuple:
        """The saved arrays; under ``create_graph`` the Tensors that hold them, so that the
        backward pass is itself differentiable (other arrays become constants)."""
        if not _create_graph:
            return self._saved
        return tuple(self._as_tensor(a) for a in self._saved)

    def _as_tensor(self, array: Any) -> Tensor:
        for x in self.inputs:
            if x.data is array:
                return x
        for ref in self._output_refs:
            y = ref()
            if y is not None and y.data is array:
                return y
        return Tensor(array)

    @property
    def needs_input_grad(self) -> tuple:
        """One bool per input: does it need a gradient? Lets backward skip needless work."""
        return tuple(x.requires_grad for x in self.inputs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


def _explain_failure(function: Function, inputs: Sequence[Tensor], error: Exception):
    """Turn a NumPy/CuPy error inside forward into one that names the op, shapes and devices."""
    name = type(function).__name__
    devices = {x.device for x in inputs}
    if len(devices) > 1:
        return DeviceError(f"{name}: inputs are on different devices "
                           f"({', '.join(x.device for x in inputs)}); move them to one device "
                           f"with .to(device) first")
    if isinstance(error, ValueError):
        shapes = " and ".join(str(tuple(x.shape)) for x in inputs)
        return ShapeError(f"{name}: cannot apply to shapes {shapes}: {error}")
    return error


# ============================================================================= the backward pass
def _run_backward(root: Tensor, grad: Any, create_graph: bool) -> None:
    """Walk the graph from ``root`` to the leaves, in an order where each Function runs only
    after every Function that consumed its outputs (Kahn's algorithm; no recursion, so graphs
    with thousands of steps are fine)."""
    global _grad_enabled, _create_graph
    if create_graph:
        grad = Tensor(grad)
    if root.creator is None:
        _accumulate(root, grad)
        return

    # 1. Count, for each Function, how many inputs of other Functions its outputs feed.
    consumers = {root.creator: 0}
    stack = [root.creator]
    while stack:
        for x in stack.pop().inputs:
            f = x.creator
            if f is None:
                continue
            if f in consumers:
                consumers[f] += 1
            else:
                consumers[f] = 1
                stack.append(f)

    # 2. Run backward in that order, summing the gradients that reach each output.
    previous = _grad_enabled, _create_graph
    _grad_enabled, _create_graph = create_graph, create_graph
    try:
        pending = {root.creator: [None] * root.creator.n_outputs}
        pending[root.creator][root.index] = grad
        ready = [root.creator]
        while ready:
            f = ready.pop()
            grad_outputs = pending.pop(f)
            if create_graph and not f.differentiable_backward:
                raise GradientError(f"create_graph=True is not supported through "
                                    f"{type(f).__name__}: its backward is first-order only")
            if f.n_outputs == 1:
                grad_inputs = None if grad_outputs[0] is None else f.backward(grad_outputs[0])
            elif any(g is not None for g in grad_outputs):
                grad_inputs = _call_backward(f, grad_outputs, create_graph)
            else:
                grad_inputs = None
            inputs = f.inputs
            if grad_inputs is None:  # nothing reached f: still release its producers
                grad_inputs = (None,) * len(inputs)
            elif type(grad_inputs) is not tuple:
                grad_inputs = (grad_inputs,)
            if len(grad_inputs) != len(inputs):
                raise GradientError(f"{type(f).__name__}.backward returned {len(grad_inputs)} "
                                    f"gradients for {len(inputs)} inputs")
            for x, gx in zip(inputs, grad_inputs):
                if not x.requires_grad:
                    continue
                if gx is not None and gx.shape != x.data.shape:
                    raise GradientError(
                        f"{type(f).__name__}.backward returned a gradient of shape {gx.shape} "
                        f"for an input of shape {x.data.shape}")
                producer = x.creator
                if producer is None:  # a leaf: gradients accumulate in .grad
                    if gx is not None:
                        _accumulate(x, gx)
                    continue
                slots = pending.get(producer)
                if slots is None:
                    slots = pending[producer] = [None] * producer.n_outputs
                if gx is not None:
                    old = slots[x.index]
                    slots[x.index] = gx if old is None else old + gx
                consumers[producer] -= 1
                if consumers[producer] == 0:
                    ready.append(producer)
    finally:
        _grad_enabled, _create_graph = previous


def _call_backward(f: Function, grad_outputs: list, create_graph: bool) -> Any:
    """Backward of a Function with several outputs; outputs nobody used get zero gradients."""
    for i, g in enumerate(grad_outputs):
        if g is None:
            shape, dtype = f._output_meta[i]
            zeros = backend.get_array_module(f.inputs[0].data).zeros(shape, dtype)
            grad_outputs[i] = Tensor(zeros) if create_graph else zeros
    return f.backward(*grad_outputs)


def _accumulate(leaf: Tensor, grad: Any) -> None:
    """leaf.grad += grad, creating it on first use. Never in place: the same array may be the
    gradient of several tensors (``x + y`` passes one array to both)."""
    if isinstance(grad, Tensor):  # create_graph: keep the graph of the gradient
        leaf.grad = grad if leaf.grad is None else leaf.grad + grad
    elif leaf.grad is None:
        leaf.grad = Tensor(grad)
    else:
        leaf.grad = Tensor(leaf.grad.data + grad)


def grad(output: Tensor, inputs: Sequence[Tensor], grad_output: Any = None,
         create_graph: bool = False) -> tuple:
    """The gradients d(output)/d(input) for each of ``inputs``, returned rather than added to
    ``.grad`` (which is left as it was). With ``create_graph=True`` they are differentiable.

    >>> (dx,) = md.grad(y, [x], create_graph=True)   # then dx can be differentiated again
    """
    saved = [x.grad for x in inputs]
    try:
        for x in inputs:
            x.grad = None
        output.backward(grad_output, create_graph=create_graph)
        return tuple(x.grad if x.grad is not None else
                     Tensor(backend.get_array_module(x.data).zeros_like(x.data))
                     for x in inputs)
    finally:
        for x, g in zip(inputs, saved):
            x.grad = g


# ============================================================================= making tensors
def tensor(data: Any, requires_grad: bool = False, dtype: Any = None,
           device: Optional[str] = None) -> Tensor:
    """Make a leaf tensor (a copy) from a list, scalar or array.

    Floating-point Python data becomes float32, integer data int64; NumPy/CuPy arrays keep their
    dtype (as ``torch.tensor``). ``device`` defaults to the array's own device for device arrays
    and to ``MINIDL_DEVICE`` (``'cpu'``) for host data.
    """
    if isinstance(data, Tensor):
        data = data.data
    if backend.get_array_module(data) is np:  # Python data or a host array
        from_python = not isinstance(data, (np.ndarray, np.generic))
        array = backend.host_array(data, dtype)
        if from_python and dtype is None and array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"md.tensor(): cannot make a tensor from {type(data).__name__} "
                            f"(dtype {array.dtype}); expected numbers")
        device = backend.check_device(device)
    else:
        array = data.astype(dtype) if dtype is not None else data.copy()
        device = backend.device_of(data) if device is None else device
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


def as_tensor(value: Any, like: Tensor) -> Tensor:
    """``value`` as a constant Tensor on ``like``'s device; Python numbers take ``like``'s dtype
    (so ``x * 2`` stays float32)."""
    if isinstance(value, Tensor):
        return value
    xp = backend.get_array_module(like.data)
    if isinstance(value, (int, float, bool)):
        return Tensor(xp.asarray(value, dtype=like.data.dtype))
    return Tensor(xp.asarray(value) if not hasattr(value, "shape") else value)
