"""Numerical gradient checking: is a backward pass right?

The analytical gradient (from ``backward()``) is compared with central differences,
    ∂L/∂x ≈ (L(x + ε) − L(x − ε)) / 2ε,
of the scalar L = Σ g ⊙ fn(inputs) for a **random** upstream gradient g. A random g (rather than
L = sum(y)) catches transposed or mis-broadcast gradients that sum() hides. Everything is computed
in float64: with ε = 1e-6 the rounding error of float32 (~1e-7 relative) would swamp the signal.

Two modes:
    'directional' (default, as Chainer's check_backward): per input, one random direction d and
        two extra forward passes; compares the numerical directional derivative with ⟨∇x L, d⟩.
        On failure it runs the element-wise check on that input to name the worst element.
    'elementwise': two forward passes per element; names the worst element. For small inputs.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np

from minidl import backend
from minidl.autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """An analytical gradient disagrees with the numerical one.

    ``str(error)`` names the input, the element and both values; the same facts are fields, so
    a program (the exercise grader) reads them instead of parsing the text:

    Attributes:
        input_index: the input's position among ``fn``'s arguments; None for a tensor of ``wrt``.
        input_name: the tensor's name (for ``wrt``: its key, its name, or ``'wrt[i]'``), or None.
        shape: the input's shape.
        mode: what ``numerical`` and ``analytical`` measure: ``'elementwise'``, the derivative
            with respect to one element (``index``); ``'directional'``, the derivative along a
            random unit direction (``index`` is None).
        index: the worst element (a tuple; ``()`` for a scalar), or None in directional mode.
        numerical: the central-difference value.
        analytical: the value from ``backward()``.
        atol, rtol: the tolerances it failed: |numerical − analytical| > atol + rtol·|numerical|.
    """

    def __init__(self, input_index: Optional[int], input_name: Optional[str], shape: tuple,
                 mode: str, index: Optional[tuple], numerical: float, analytical: float,
                 atol: float, rtol: float):
        self.input_index, self.input_name, self.shape = input_index, input_name, tuple(shape)
        self.mode, self.index = mode, index
        self.numerical, self.analytical = float(numerical), float(analytical)
        self.atol, self.rtol = atol, rtol
        super().__init__(self._message())

    def __reduce__(self):  # rebuilt from the fields (the default would pass only the message)
        return type(self), (self.input_index, self.input_name, self.shape, self.mode,
                            self.index, self.numerical, self.analytical, self.atol, self.rtol)

    @property
    def input_label(self) -> str:
        """How the message names the input: "input 0 ('A')", "input 1", or a wrt name."""
        if self.input_index is None:
            return str(self.input_name)
        return f"input {self.input_index}" + (f" ({self.input_name!r})" if self.input_name
                                              else "")

    def _message(self) -> str:
        where = (f": worst element {self.index}" if self.mode == "elementwise"
                 else " along a random direction")
        return (f"gradcheck failed for {self.input_label} (shape {self.shape}){where}: "
                f"numerical {self.numerical:.6g} vs analytical {self.analytical:.6g}")


def gradcheck(fn: Callable[..., Any], *inputs: Any,
              wrt: Union[Mapping[str, Tensor], Iterable[Tensor]] = (),
              eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              mode: str = "directional", seed: int = 0) -> bool:
    """Check ``fn``'s gradients w.r.t. every input that requires grad, and w.r.t. ``wrt``.

    Args:
        fn: called as ``fn(*inputs)``; returns a Tensor or a tuple of Tensors.
        inputs: Tensors (those with ``requires_grad=True`` are checked; others, like token ids,
            are passed as they are) or any other arguments.
        wrt: extra tensors ``fn`` uses without taking them as arguments — a module's
            parameters, e.g. ``wrt=dict(layer.named_parameters())``. Cast to float64 during the
            check and restored afterwards.
        eps, atol, rtol: step and tolerance: pass if
            |numerical − analytical| ≤ atol + rtol·|numerical|.
        mode: 'directional' or 'elementwise' (see the module docstring).
        seed: for the random upstream gradient and directions.

    Returns:
        True. Raises ``GradcheckError`` on a mismatch: its message names the input, the worst
        element and both values, and its fields hold them (see the class).
    """
    if mode not in ("directional", "elementwise"):
        raise ValueError(f"gradcheck: mode must be 'directional' or 'elementwise', got {mode!r}")
    rng = np.random.default_rng(seed)
    args = [_float64_leaf(x) for x in inputs]
    # (position among fn's arguments or None for wrt, name, the float64 leaf)
    checked = [(i, x.name, args[i])
               for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    named = wrt.items() if isinstance(wrt, Mapping) else (
        (t.name or f"wrt[{i}]", t) for i, t in enumerate(wrt))
    extras = [(None, name, t) for name, t in named]
    if not checked and not extras:
        raise ValueError("gradcheck: nothing to check; give inputs with requires_grad=True "
                         "or tensors in wrt=")
    saved = [(t, t.data, t.grad) for _, _, t in extras]
    try:
        for _, _, t in extras:
            t.data, t.grad = t.data.astype(np.float64), None
        checked += extras
        outputs = _as_tuple(fn(*args))
        upstream = [backend.to_device(rng.standard_normal(y.shape), y.device) for y in outputs]

        def objective() -> float:  # L = Σ g ⊙ fn(inputs), without recording a graph
            with no_grad():
                ys = _as_tuple(fn(*args))
            return float(sum((y.data * g).sum() for y, g in zip(ys, upstream)))

        for y, g in zip(outputs, upstream):
            if y.requires_grad:
                y.backward(g)
        for position, name, x in checked:
            analytical = backend.to_numpy(x.grad.data) if x.grad is not None \
                else np.zeros(x.shape)
            if mode == "elementwise":
                _check_elements(position, name, x, analytical, objective, eps, atol, rtol)
                continue
            direction = rng.standard_normal(x.shape)
            direction /= max(np.linalg.norm(direction), 1e-12)
            numerical = _central_difference(x, direction, objective, eps)
            expected = float((analytical * direction).sum())
            if abs(numerical - expected) > atol + rtol * abs(numerical):
                _check_elements(position, name, x, analytical, objective, eps, atol, rtol)
                raise GradcheckError(position, name, x.shape, "directional", None, numerical,
                                     expected, atol, rtol)
    finally:
        for t, data, grad in saved:
            t.data, t.grad = data, grad
    return True


def _float64_leaf(x: Any) -> Any:
    if not isinstance(x, Tensor) or x.dtype.kind != "f":
        return x
    return Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad, name=x.name)


def _as_tuple(outputs: Any) -> tuple:
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    for y in outputs:
        if not isinstance(y, Tensor):
            raise TypeError(f"gradcheck: fn must return Tensors, got {type(y).__name__}")
    return tuple(outputs)


def _central_difference(x: Tensor, direction: np.ndarray, objective, eps: float) -> float:
    original = x.data
    step = backend.to_device(direction * eps, x.device)
    try:
        x.data = original + step
        plus = objective()
        x.data = original - step
        minus = objective()
    finally:
        x.data = original
    return (plus - minus) / (2 * eps)


def _check_elements(position, name, x, analytical, objective, eps, atol, rtol) -> None:
    """Finite differences one element at a time; raise naming the worst element."""
    worst: Optional[tuple] = None
    for index in np.ndindex(*x.shape):
        direction = np.zeros(x.shape)
        direction[index] = 1.0
        numerical = _central_difference(x, direction, objective, eps)
        excess = abs(numerical - analytical[index]) - (atol + rtol * abs(numerical))
        if excess > 0 and (worst is None or excess > worst[0]):
            worst = (excess, index, numerical, analytical[index])
    if worst is not None:
        _, index, numerical, value = worst
        raise GradcheckError(position, name, x.shape, "elementwise", tuple(int(k) for k in index),
                             numerical, value, atol, rtol)
