"""The grader's assertion library: what the checks in ``checks.py`` are written with.

A check gets a ``Context`` (the student's kit module, notes for the report) and either returns
(pass) or raises ``CheckFailure`` with a message a student can act on: which input, which
element, the expected value and theirs. The assertions here produce such messages:

- ``to_numeric_array``: what the student's code returned, as a NumPy array of numbers;
- ``assert_close``: values against the reference, naming the worst element (and a transpose);
- ``run_gradcheck``: ``md.gradcheck`` element-wise, its ``GradcheckError`` in the grader's words;
- ``check_backward``: a ``Function``'s backward — count, shapes and values of its gradients for
  a random upstream gradient, then ``md.gradcheck`` — with a diagnosis of a missing ``sum_to``
  or a transposed gradient.

Everything is compared in float64, so the tolerances are tight and a wrong formula cannot hide
behind rounding.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import numpy as np

import minidl as md
from minidl.autograd import Tensor
from minidl.exercises.registry import Exercise


class CheckFailure(AssertionError):
    """The student's code gives a wrong result. ``message`` says what and where; ``hint``
    (optional) replaces the exercise's general hint with a more specific one."""

    def __init__(self, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.message, self.hint = message, hint


class Context:
    """What a check works with: the student's kit module, and notes for the report."""

    def __init__(self, module: Any, exercise: Exercise):
        self.module, self.exercise = module, exercise
        self.notes: List[str] = []
        self.case = ""  # the case being checked; an error in the student's code names it

    def get(self, name: str) -> Any:
        """The student's class or function ``name`` from the kit file."""
        try:
            return getattr(self.module, name)
        except AttributeError:
            raise CheckFailure(f"{self.exercise.file} does not define `{name}` any more; keep "
                               f"the names of the kit (the grader imports `{name}` from this "
                               f"file)") from None

    def note(self, text: str) -> None:
        self.notes.append(text)


def _fmt(value: Any) -> str:
    value = float(value)
    return "0" if value == 0 else f"{value:.6g}"


def _index(index: Sequence) -> tuple:
    return tuple(int(i) for i in index)


def to_numeric_array(value: Any, what: str) -> np.ndarray:
    """What the student's code returned, as a NumPy array of numbers (a Tensor is unwrapped).

    ``what`` names the value in the failure: None (a missing ``return``?) and anything that is
    not numbers (strings, objects) are a CheckFailure. The dtype is kept as it is.
    """
    if value is None:
        raise CheckFailure(f"{what}: your code returned None (a missing `return`?)")
    if isinstance(value, Tensor):
        value = value.data
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise CheckFailure(f"{what}: your code returned {type(value).__name__} with dtype "
                           f"{array.dtype}; expected an array of numbers")
    return array


def assert_close(what: str, got: Any, expected: Any, atol: float = 1e-8, rtol: float = 1e-6,
                 describe: Optional[Callable[[tuple], str]] = None, context: str = "") -> None:
    """Fail unless ``got`` equals ``expected`` elementwise (|got − expected| ≤ atol +
    rtol·|expected|), naming the worst element, both values and how many elements are wrong;
    ``context`` (which case) ends the message."""
    context = f", {context}" if context else ""
    got = to_numeric_array(got, what)
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise CheckFailure(f"{what} has shape {got.shape}, expected {expected.shape}{context}")
    mine, truth = got.astype(np.float64), expected.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        excess = np.abs(mine - truth) - (atol + rtol * np.abs(truth))
    excess = np.where(np.isnan(excess), np.inf, excess)  # NaN in yours: the worst of all
    wrong = excess > 0
    if not wrong.any():
        return
    index = _index(np.unravel_index(int(np.argmax(excess)), excess.shape)) if got.ndim else ()
    where = f" at element {index}" if got.ndim else ""
    if describe is not None and got.ndim:
        where += describe(index)
    count = f" ({int(wrong.sum())} of {wrong.size} elements are wrong)" if wrong.size > 1 else ""
    message = (f"{what} is wrong{where}: expected {_fmt(truth[index])} vs yours "
               f"{_fmt(mine[index])}{count}{context}")
    if not np.isfinite(mine).all():
        message += "; yours contains NaN or inf (an overflow, or log/sqrt of a negative number?)"
    elif got.ndim >= 2 and got.shape[-1] == got.shape[-2] > 1 and \
            np.allclose(mine, truth.swapaxes(-1, -2), rtol=rtol, atol=atol):
        message += "; yours is the transpose of the right one"
    raise CheckFailure(message)


def reword_gradcheck(error: md.GradcheckError) -> str:
    """md.gradcheck's failure in the grader's words ('analytical' is the student's value):
    'the gradient of A (input 0, shape (3, 3)) is wrong at element (1, 2): numerical 0.5 vs
    yours -0.5'."""
    shape = f"shape {error.shape}"
    if error.input_index is None:  # a tensor of wrt=, e.g. a layer's parameter W_x
        name = f"{error.input_name} ({shape})"
    elif error.input_name:
        name = f"{error.input_name} (input {error.input_index}, {shape})"
    else:
        name = f"input {error.input_index} ({shape})"
    where = (f"at element {error.index}" if error.mode == "elementwise"
             else "along a random direction")
    return (f"the gradient of {name} is wrong {where}: numerical {error.numerical:.6g} vs "
            f"yours {error.analytical:.6g}")


def run_gradcheck(context: str, fn: Callable, *inputs: Any, wrt: Any = ()) -> None:
    """``md.gradcheck`` element-wise (it names the worst element), as a CheckFailure."""
    try:
        md.gradcheck(fn, *inputs, wrt=wrt, mode="elementwise")
    except md.GradcheckError as error:
        raise CheckFailure(f"{reword_gradcheck(error)}, {context}") from None
    except md.GradientError as error:
        raise CheckFailure(f"backward failed {context}: {error}") from None


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1]))


def _shape_problem(name: str, got: tuple, shape: tuple) -> str:
    message = (f"your backward returned a gradient of shape {got} for {name}, which has shape "
               f"{shape}; a gradient has its input's shape")
    if len(got) == len(shape) >= 2 and got[:-2] == shape[:-2] and got[-2:] == shape[-2:][::-1]:
        message += " (yours looks transposed)"
    elif _broadcasts_to(shape, got):
        message += (f" ({name} was broadcast to {got} in the forward pass: sum its gradient "
                    f"back with sum_to(grad, {name}'s shape))")
    return message


def _as_tuple(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def check_backward(ctx: Context, context: str, make_student: Callable[[], md.Function],
                   make_reference: Callable[[], md.Function], inputs: Sequence[np.ndarray],
                   names: Sequence[str], describe: Optional[Callable[[str], Any]] = None,
                   diagnose: Optional[Callable[[list, tuple], Optional[str]]] = None,
                   seed: int = 0) -> None:
    """Check a Function's backward: the count, shapes and values of the gradients it returns
    for a random upstream gradient (against the reference), then ``md.gradcheck``.

    ``context`` says which case, e.g. 'for Y = A @ B with A (3, 4) and B (4, 5)';
    ``describe(name)`` may give a function that explains an element index of that input's
    gradient; ``diagnose(yours, expected)`` may add a sentence to a wrong-value failure.
    """
    rng = np.random.default_rng(seed)
    ctx.case = context

    def leaves() -> List[Tensor]:
        return [Tensor(np.array(a, dtype=np.float64), requires_grad=True, name=n)
                for a, n in zip(inputs, names)]

    reference = make_reference()
    expected_outputs = _as_tuple(reference(*leaves()))
    upstream = [rng.standard_normal(y.shape) for y in expected_outputs]
    expected = _as_tuple(reference.backward(*[u.copy() for u in upstream]))

    student = make_student()
    outputs = _as_tuple(student(*leaves()))
    for k, (y, e) in enumerate(zip(outputs, expected_outputs)):
        label = "the output" if len(outputs) == 1 else f"output {k} of forward"
        assert_close(label, y, e.data,
                     context=f"{context} (forward is given: keep it as in the kit)")
    grads = _as_tuple(student.backward(*[u.copy() for u in upstream]))
    if len(grads) != len(inputs):
        raise CheckFailure(f"your backward returned {len(grads)} value(s) for {len(inputs)} "
                           f"inputs ({', '.join(names)}) {context}: return one gradient per "
                           f"input, in the order of forward's arguments")
    for i, (g, name, x) in enumerate(zip(grads, names, inputs)):
        if g is None:
            raise CheckFailure(f"your backward returned None for the gradient of {name} "
                               f"{context}; every input here needs its gradient")
        got = to_numeric_array(g, f"the gradient of {name}")
        if got.shape != np.shape(x):
            raise CheckFailure(_shape_problem(name, got.shape, np.shape(x)) + f", {context}")
    for i, (g, e, name, x) in enumerate(zip(grads, expected, names, inputs)):
        try:
            assert_close(f"the gradient of {name} (input {i}, shape {np.shape(x)})", g, e,
                         describe=describe(name) if describe else None, context=context)
        except CheckFailure as failure:
            extra = diagnose([to_numeric_array(g, name) for g in grads], expected) \
                if diagnose else None
            if extra:
                raise CheckFailure(f"{failure.message}. {extra}", failure.hint) from None
            raise
    run_gradcheck(context, lambda *xs: make_student()(*xs), *leaves())
