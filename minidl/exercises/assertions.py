"""The grader's assertion library: what the checks in ``checks.py`` are written with.

Each check has two halves that never share a process:

- a **probe** runs in the grading worker, next to the student's code: it calls the student's
  class or function on fixed inputs and records what comes back in a ``Recorder`` (values,
  gradients, the inputs after the call — in-place changes show there);
- a **judge** runs in the grader: it reads the recorded ``Outputs``, computes the expected
  values itself with minidl's reference, and raises ``CheckFailure`` with a message a student
  can act on: which output, which element, the expected value and theirs, and — in
  ``diagnosis`` — the recognised mistake, without the formula.

Helpers for both halves: ``probe_function``/``judge_function`` check a ``Function``'s
forward and backward (count, shapes and values of the gradients for a random upstream
gradient, and that nothing was changed in place); ``assert_close`` compares values and names the
worst element. Everything is compared in float64, so a wrong formula cannot hide behind
rounding.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from minidl.exercises.protocol import Malformed, Returned, encode, plain, raised


class CheckFailure(AssertionError):
    """The student's code gives a wrong result. ``message`` says what and where (expected vs
    yours); ``diagnosis`` names the mistake when it is recognised (no formula, no code);
    ``hint`` (optional) replaces the exercise's hint, shown only with ``--hints full``."""

    def __init__(self, message: str, diagnosis: Optional[str] = None,
                 hint: Optional[str] = None):
        super().__init__(message)
        self.message, self.diagnosis, self.hint = message, diagnosis, hint


class KitProblem(Exception):
    """Raised in the worker when the kit file lacks what the probe needs."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StudentError(Exception):
    """The student's code raised where the judge expected an output; ``record`` is the
    worker's description (kind, type, message, where, stub)."""

    def __init__(self, record: Dict[str, Any]):
        super().__init__(record.get("message", ""))
        self.record = record


# ============================================================================= worker side
class Recorder:
    """What a probe records: output name -> encoded value (see ``protocol.py``)."""

    def __init__(self) -> None:
        self.outputs: Dict[str, Any] = {}

    def put(self, key: str, value: Any) -> None:
        self.outputs[key] = encode(value)

    def put_json(self, key: str, value: Any) -> None:
        self.outputs[key] = plain(value)

    def call(self, key: str, fn: Callable, *args: Any, catch: tuple = (), **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, recording what it returns under ``key``; an exception in
        ``catch`` is recorded (and None returned), any other propagates to the worker."""
        try:
            value = fn(*args, **kwargs)
        except catch as error:
            self.outputs[key] = raised(error)
            return None
        self.put(key, value)
        return value


def to_float64(value: Any) -> np.ndarray:
    return np.array(getattr(value, "data", value), dtype=np.float64)


# ============================================================================= grader side
class Outputs:
    """The outputs the worker sent for one exercise, read by its judge."""

    def __init__(self, outputs: Dict[str, Returned], error: Optional[Dict[str, Any]] = None):
        self.outputs, self.error = outputs, error

    def __contains__(self, key: str) -> bool:
        return key in self.outputs

    def get(self, key: str) -> Returned:
        """The output ``key``; if the probe stopped before it because the student's code raised,
        ``StudentError``; if it is missing otherwise, ``Malformed``."""
        if key in self.outputs:
            return self.outputs[key]
        if self.error is not None:
            raise StudentError(self.error)
        raise Malformed(f"the output {key!r} is missing")

    def array(self, key: str, what: str) -> np.ndarray:
        """The output ``key`` as an array of numbers (its dtype kept), or a CheckFailure that
        says what came back instead."""
        return numeric(self.get(key), what)

    def json(self, key: str) -> Any:
        value = self.get(key)
        if value.type != "json":
            raise Malformed(f"the output {key!r} is not a JSON value")
        return value.value


def numeric(value: Returned, what: str) -> np.ndarray:
    """A returned value as a NumPy array of numbers, or a CheckFailure naming what it was."""
    if value.is_none:
        raise CheckFailure(f"{what}: your code returned None (a missing `return`?)")
    if value.type == "tuple":
        raise CheckFailure(f"{what}: your code returned a tuple of {value.count} values; "
                           f"expected one array")
    if value.type == "raised":
        raise Malformed(f"{what}: an exception where a value was expected")
    if value.array is None:
        raise CheckFailure(f"{what}: your code returned {value.type} ({value.bad}); expected "
                           f"an array of numbers")
    return value.array


class Judgement:
    """What a judge works with besides the outputs: the case being judged (an error of the
    student's code names it) and notes for the report."""

    def __init__(self, exercise: Any, earlier: Optional[Dict[str, Any]] = None):
        self.exercise = exercise
        self.earlier = earlier or {}  # id -> ExerciseResult of this kit, judged before
        self.notes: List[str] = []
        self.case = ""

    def note(self, text: str) -> None:
        self.notes.append(text)

    def failed(self, exercise_id: str) -> bool:
        result = self.earlier.get(exercise_id)
        return result is not None and not result.passed


def _fmt(value: Any) -> str:
    value = float(value)
    return "0" if value == 0 else f"{value:.6g}"


def _index(index: Sequence) -> tuple:
    return tuple(int(i) for i in index)


def assert_close(what: str, got: Any, expected: Any, atol: float = 1e-8, rtol: float = 1e-6,
                 describe: Optional[Callable[[tuple], str]] = None, context: str = "") -> None:
    """Fail unless ``got`` equals ``expected`` elementwise (|got − expected| ≤ atol +
    rtol·|expected|), naming the worst element, both values and how many elements are wrong;
    ``context`` (which case) ends the message."""
    context = f", {context}" if context else ""
    if isinstance(got, Returned):
        got = numeric(got, what)
    got = np.asarray(got)
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
    diagnosis = None
    if not np.isfinite(mine).all():
        diagnosis = "yours contains NaN or inf (an overflow, or log/sqrt of a negative number?)"
    elif got.ndim >= 2 and got.shape[-1] == got.shape[-2] > 1 and \
            np.allclose(mine, truth.swapaxes(-1, -2), rtol=rtol, atol=atol):
        diagnosis = "yours is the transpose of the right one"
    raise CheckFailure(message, diagnosis)


def same(got: np.ndarray, expected: np.ndarray, rtol: float = 1e-6, atol: float = 1e-8) -> bool:
    """Whether two arrays agree in shape and values (for recognising mistakes)."""
    got, expected = np.asarray(got), np.asarray(expected)
    return got.shape == expected.shape and bool(np.allclose(got.astype(np.float64),
                                                            expected.astype(np.float64),
                                                            rtol=rtol, atol=atol))


def unchanged(out: Outputs, key: str, original: np.ndarray, message: str) -> None:
    """Fail with ``message`` unless the recorded array ``key`` (an input after the call) still
    equals ``original``."""
    after = out.array(key, key)
    if after.shape != np.shape(original) or not np.array_equal(after, original,
                                                               equal_nan=True):
        raise CheckFailure(message, "an input was changed in place")


# ============================================================================= Functions
def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1]))


def _shape_problem(name: str, got: tuple, shape: tuple) -> CheckFailure:
    message = (f"your backward returned a gradient of shape {got} for {name}, which has shape "
               f"{shape}; a gradient has its input's shape")
    diagnosis = None
    if len(got) == len(shape) >= 2 and got[:-2] == shape[:-2] and got[-2:] == shape[-2:][::-1]:
        diagnosis = "yours looks transposed"
    elif _broadcasts_to(shape, got):
        diagnosis = (f"{name} was broadcast to {got} in the forward pass, and its gradient was "
                     f"not summed back to {name}'s shape")
    return CheckFailure(message, diagnosis)


def upstream_for(shapes: Sequence[tuple], seed: int) -> List[np.ndarray]:
    """The random upstream gradients of a probe, one per output (the judge makes the same)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def probe_function(rec: Recorder, key: str, make: Callable[[], Any], inputs: Sequence[Any],
                   seed: int = 0) -> None:
    """Worker side: run the student's Function on float64 leaves, then its backward with random
    upstream gradients; record the outputs, the gradients, and the inputs and upstream
    gradients as they are afterwards."""
    from minidl.autograd import Tensor
    leaves = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
    fn = make()
    outputs = rec.call(f"{key}/forward", lambda: fn(*leaves))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    upstream = upstream_for([np.shape(getattr(y, "data", y)) for y in outputs], seed)
    rec.call(f"{key}/backward", fn.backward, *upstream)
    rec.put(f"{key}/inputs-after", tuple(x.data for x in leaves))
    rec.put(f"{key}/upstream-after", tuple(upstream))


def _items(value: Returned) -> List[Returned]:
    return value.items if value.type == "tuple" else [value]


def judge_function(out: Outputs, ctx: Judgement, key: str, context: str,
                   make_reference: Callable[[], Any], inputs: Sequence[np.ndarray],
                   names: Sequence[str], seed: int = 0,
                   describe: Optional[Callable[[str], Any]] = None,
                   diagnose: Optional[Callable[[list, tuple], Optional[str]]] = None,
                   expected_from: Optional[Callable[[List[np.ndarray]], tuple]] = None,
                   forward_given: bool = True, inputs_kept: bool = True) -> None:
    """Grader side of ``probe_function``: the forward outputs, the count, shapes and values of
    the gradients against the reference, and that no input or upstream gradient was changed.

    ``describe(name)`` may explain an element index of that input's gradient;
    ``diagnose(yours, expected)`` may name the mistake behind wrong values;
    ``expected_from(student_outputs)`` may give the expected gradients from what the student's
    forward produced (a backward is judged against its own forward's saved values);
    ``inputs_kept=False`` skips the in-place check of the inputs (when only another exercise's
    code could change them).
    """
    from minidl.autograd import Tensor
    ctx.case = context
    reference = make_reference()
    leaves = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs]
    expected_outputs = reference(*leaves)
    expected_outputs = expected_outputs if isinstance(expected_outputs, tuple) else \
        (expected_outputs,)
    upstream = upstream_for([y.shape for y in expected_outputs], seed)
    expected = reference.backward(*[u.copy() for u in upstream])
    expected = expected if isinstance(expected, tuple) else (expected,)

    outputs = _items(out.get(f"{key}/forward"))
    if len(outputs) != len(expected_outputs):
        raise CheckFailure(f"forward returned {len(outputs)} value(s), expected "
                           f"{len(expected_outputs)} {context}")
    mine_outputs = []
    for k, (y, e) in enumerate(zip(outputs, expected_outputs)):
        label = "the output" if len(outputs) == 1 else f"output {k} of forward"
        y = numeric(y, label)
        mine_outputs.append(y)
        if expected_from is None:
            assert_close(label, y, e.data, context=context + (
                " (forward is given: keep it as in the kit)" if forward_given else ""))
    if expected_from is not None:
        expected = expected_from(mine_outputs, upstream) or expected
    grads = _items(out.get(f"{key}/backward"))
    if len(grads) != len(inputs):
        raise CheckFailure(f"your backward returned {len(grads)} value(s) for {len(inputs)} "
                           f"inputs ({', '.join(names)}) {context}: one gradient per input, in "
                           f"the order of forward's arguments")
    mine = []
    for g, name, x in zip(grads, names, inputs):
        if g.is_none:
            raise CheckFailure(f"your backward returned None for the gradient of {name} "
                               f"{context}; every input here needs its gradient")
        got = numeric(g, f"the gradient of {name}")
        if got.shape != np.shape(x):
            failure = _shape_problem(name, got.shape, np.shape(x))
            raise CheckFailure(f"{failure.message}, {context}", failure.diagnosis)
        mine.append(got)
    for i, (g, e, name, x) in enumerate(zip(mine, expected, names, inputs)):
        try:
            assert_close(f"the gradient of {name} (input {i}, shape {np.shape(x)})", g,
                         getattr(e, "data", e), describe=describe(name) if describe else None,
                         context=context)
        except CheckFailure as failure:
            extra = diagnose(mine, tuple(getattr(v, "data", v) for v in expected)) \
                if diagnose else None
            raise CheckFailure(failure.message, extra or failure.diagnosis) from None
    after = _items(out.get(f"{key}/inputs-after")) if inputs_kept else []
    for x, a, name in zip(inputs, after, names):
        if not same(numeric(a, name), x, rtol=0, atol=0):
            raise CheckFailure(f"your code changed the input {name} in place {context}; forward "
                               f"and backward must leave their inputs as they were",
                               "an input was overwritten in place")
    sent = _items(out.get(f"{key}/upstream-after"))
    for k, (u, s) in enumerate(zip(upstream, sent)):
        if not same(numeric(s, "the upstream gradient"), u, rtol=0, atol=0):
            label = "gy" if len(upstream) == 1 else f"upstream gradient {k}"
            raise CheckFailure(f"your backward changed {label} (the upstream gradient) in place "
                               f"{context}; another op may share that array, so compute into a "
                               f"new one", "the upstream gradient was overwritten in place")
