"""One check per exercise, in two halves: a probe (worker) and a judge (grader).

A **probe** ``probe_<id>(kit, rec)`` runs in the grading worker, next to the student's code, in
a view of minidl where every exercise is the student's version (``view.py``): it takes the
student's class or function with ``kit.get(name)``, calls it on fixed inputs (made by the
``_cases`` helpers below, which both halves call, so both see the same numbers) and records what
comes back, and the inputs afterwards, in ``rec``.

A **judge** ``judge_<id>(out, ctx)`` runs in the grader process, which never runs student code:
it computes the expected values with minidl's reference (imported here, before any worker
starts) and raises ``CheckFailure`` — the message says which output and element is wrong
(expected vs yours), the diagnosis names a recognised mistake (a transposed gradient, a missing
sum over broadcast axes, a gate with the wrong activation, Adam without bias correction, an
input changed in place) without giving the formula.

``PROBES`` and ``JUDGES`` map exercise ids to them; a test fails unless every exercise of the
registry has both.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from minidl.exercises.assertions import (CheckFailure, Judgement, Outputs, Recorder,
                                         assert_close, judge_function, numeric, probe_function,
                                         same)

PROBES: Dict[str, Callable[[Any, Recorder], None]] = {}
JUDGES: Dict[str, Callable[[Outputs, Judgement], None]] = {}


def probe(exercise_id: str):
    def register(fn):
        PROBES[exercise_id] = fn
        return fn
    return register


def judge(exercise_id: str):
    def register(fn):
        JUDGES[exercise_id] = fn
        return fn
    return register


def _reference(module: str, name: str) -> Any:
    """minidl's reference ``module.name`` (grader side only: in the worker's view of minidl it
    is the student's version or a stub)."""
    import importlib
    return getattr(importlib.import_module(module), name)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) in float64 by the reference's ``sigmoid_array``: the expected values."""
    return _reference("minidl.functions.elementwise", "sigmoid_array")(
        np.asarray(x, dtype=np.float64))


def _shape_text(**arrays: np.ndarray) -> str:
    return ", ".join(f"{name} {tuple(a.shape)}" for name, a in arrays.items())


def _reaches(output: Any, leaves: List[Any]) -> List[bool]:
    """For each leaf, whether the graph of ``output`` (a Tensor) reaches it (worker side)."""
    found, seen = set(), set()
    stack = [getattr(output, "creator", None)]
    while stack and len(seen) < 10000:
        f = stack.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        for x in getattr(f, "inputs", ()):
            found.add(id(x))
            stack.append(getattr(x, "creator", None))
    return [id(leaf) in found for leaf in leaves]


# ============================================================================= sigmoid
def _sigmoid_cases():
    rng = np.random.default_rng(1)
    return [(dtype, (rng.standard_normal((3, 4)) * 4).astype(dtype))
            for dtype in (np.float64, np.float32)]


_EXTREME = np.array([-1000, -100, -89, -30, 0, 30, 89, 100, 1000], dtype=np.float32)
_KEEP_X = np.array([[-1000.0, -100, -3, -0.5, 0], [0.5, 2, 30, 100, 1000]])


def _sigmoid_out_cases():
    rng = np.random.default_rng(11)
    return [(in_place, (rng.standard_normal((2, 5)) * 4).astype(np.float32))
            for in_place in (False, True)]


@probe("sigmoid_forward")
def probe_sigmoid_forward(kit, rec: Recorder) -> None:
    sigmoid_array = kit.get("sigmoid_array")
    for k, (_, x) in enumerate(_sigmoid_cases()):
        argument = x.copy()
        rec.call(f"plain/{k}", sigmoid_array, argument)
        rec.put(f"plain/{k}/x-after", argument)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        rec.call("extreme", sigmoid_array, _EXTREME.copy(), catch=(FloatingPointError,))
    argument = _KEEP_X.copy()
    with np.errstate(over="ignore"):  # an overflow is the case above; here: is x kept?
        rec.call("keep", sigmoid_array, argument)
    rec.put("keep/x-after", argument)
    for k, (in_place, x) in enumerate(_sigmoid_out_cases()):
        buffer = x.copy() if in_place else np.full_like(x, np.nan)
        rec.call(f"out/{k}", sigmoid_array, buffer if in_place else x.copy(), out=buffer)
        rec.put(f"out/{k}/buffer", buffer)


@judge("sigmoid_forward")
def judge_sigmoid_forward(out: Outputs, ctx: Judgement) -> None:
    for k, (dtype, x) in enumerate(_sigmoid_cases()):
        ctx.case = f"for x of shape (3, 4) and dtype {np.dtype(dtype).name}"
        y = out.array(f"plain/{k}", "σ(x)")
        if not same(out.array(f"plain/{k}/x-after", "x"), x, 0, 0):
            raise CheckFailure(f"sigmoid_array(x) changed x itself {ctx.case}: Sigmoid passes "
                               f"it the input tensor's data, which must stay as it was; write "
                               f"into a new array (or into `out` when it is given)",
                               "x was overwritten in place")
        assert_close("σ(x)", y, _sigmoid(x), rtol=1e-5 if dtype == np.float32 else 1e-9,
                     atol=1e-7, context=ctx.case)
        if y.dtype != dtype:
            raise CheckFailure(f"σ(x) of a {np.dtype(dtype).name} x has dtype {y.dtype}; keep "
                               f"the input's dtype (a float64 result doubles memory and time)")
    ctx.case = f"for x = {_EXTREME.tolist()} (float32)"
    extreme = out.get("extreme")
    if extreme.type == "raised":
        raise CheckFailure(f"σ(x) is not stable: for x = {_EXTREME.tolist()} (float32) it "
                           f"raises {extreme.exc} ({extreme.msg})",
                           "an exponential overflows float32 for large |x|: use a form of σ "
                           "that never exponentiates a large positive number")
    assert_close("σ(x)", extreme, _sigmoid(_EXTREME), atol=1e-7, rtol=1e-5, context=ctx.case)
    ctx.case = f"for sigmoid_array(x) with x = {_KEEP_X.tolist()}"
    out.get("keep")
    if not same(out.array("keep/x-after", "x"), _KEEP_X, 0, 0):
        raise CheckFailure("sigmoid_array(x) changed x itself: Sigmoid passes it the input "
                           "tensor's data, which must stay as it was; write into a new array "
                           "(or into `out` when it is given)", "x was overwritten in place")
    # The fused LSTM computes its gates in place: sigmoid_array(z, out=z).
    for k, (in_place, x) in enumerate(_sigmoid_out_cases()):
        call = "sigmoid_array(z, out=z)" if in_place else "sigmoid_array(x, out=buffer)"
        ctx.case = f"for {call} with a (2, 5) float32 array"
        y = out.get(f"out/{k}")
        buffer = out.array(f"out/{k}/buffer", "out")
        diagnosis = "with `out` given, σ(x) must be written into it and it must be returned"
        if not in_place and np.isnan(buffer).all():
            raise CheckFailure(f"{call} left the buffer as it was: write σ(x) into `out` when "
                               f"it is given", diagnosis)
        try:
            assert_close("out", buffer, _sigmoid(x), rtol=1e-5, atol=1e-7, context=ctx.case)
            assert_close("the returned array", y, _sigmoid(x), rtol=1e-5, atol=1e-7,
                         context=ctx.case)
        except CheckFailure as failure:
            raise CheckFailure(failure.message, diagnosis) from None


def _sigmoid_backward_cases():
    rng = np.random.default_rng(2)
    return [(shape, rng.standard_normal(shape) * 3) for shape in [(2, 3), (5,), (1, 1)]]


@probe("sigmoid_backward")
def probe_sigmoid_backward(kit, rec: Recorder) -> None:
    Sigmoid = kit.get("Sigmoid")
    for k, (_, x) in enumerate(_sigmoid_backward_cases()):
        probe_function(rec, f"case/{k}", Sigmoid, [x], seed=k)


@judge("sigmoid_backward")
def judge_sigmoid_backward(out: Outputs, ctx: Judgement) -> None:
    Reference = _reference("minidl.functions.elementwise", "Sigmoid")
    noted = []

    for k, (shape, x) in enumerate(_sigmoid_backward_cases()):
        def from_saved(outputs, upstream, x=x):
            y = outputs[0]
            if y.shape != x.shape or same(y, _sigmoid(x)):
                return None
            if not noted:
                noted.append(1)
                ctx.note("your sigmoid_array is not right yet (see sigmoid_forward), so your "
                         "backward was judged with the y your forward saved")
            reference = Reference()
            reference.save_for_backward(y.astype(np.float64))
            return (reference.backward(upstream[0].copy()),)

        def diagnose(mine, expected, x=x, k=k):
            y = _sigmoid(x)
            gy = _upstream(x.shape, k)
            if same(mine[0], gy * y):
                return ("your backward multiplies gy by σ itself, not by σ's derivative "
                        "(written with the saved y)")
            if same(mine[0], y * (1 - y)):
                return "your backward leaves out the upstream gradient gy"
            return None

        judge_function(out, ctx, f"case/{k}", f"for x of shape {shape}", Reference, [x],
                       ["x"], seed=k, expected_from=from_saved, diagnose=diagnose,
                       inputs_kept=False)  # only the forward (sigmoid_forward) could change x


def _upstream(shape, seed):
    from minidl.exercises.assertions import upstream_for
    return upstream_for([shape], seed)[0]


# ============================================================================= softmax
def _softmax_cases():
    rng = np.random.default_rng(12)
    return [("x (3, 4) along axis -1", rng.standard_normal((3, 4)) * 3, -1),
            ("x (2, 3, 4) float32 along axis 1",
             (rng.standard_normal((2, 3, 4)) * 3).astype(np.float32), 1),
            ("x (4, 3) along axis 0", rng.standard_normal((4, 3)), 0),
            ("x = [[1000, 1000, 1000], [-1000, 0, 1000], [10000, -10000, 0]] (float32) along "
             "axis -1", np.array([[1000.0, 1000, 1000], [-1000, 0, 1000], [1e4, -1e4, 0]],
                                 dtype=np.float32), -1),
            ("x = [[-1000, 0], [0, -1000]] along axis -1",
             np.array([[-1000.0, 0.0], [0.0, -1000.0]]), -1)]


def _probe_softmax(kit, rec: Recorder, name: str) -> None:
    Student = kit.get(name)
    for k, (_, x, axis) in enumerate(_softmax_cases()):
        argument = x.copy()
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            rec.call(f"case/{k}", Student(axis).forward, argument, catch=(FloatingPointError,))
        rec.put(f"case/{k}/x-after", argument)


def _judge_softmax(out: Outputs, ctx: Judgement, name: str, log: bool) -> None:
    Reference = _reference("minidl.functions.softmax", name)
    what = "log_softmax(x)" if log else "softmax(x)"
    for k, (case, x, axis) in enumerate(_softmax_cases()):
        ctx.case = f"for {case}"
        y = out.get(f"case/{k}")
        if y.type == "raised":
            overflow = "overflow" in y.msg
            raise CheckFailure(
                f"{what} is not stable: {ctx.case} it raises {y.exc} ({y.msg})",
                "an exponential of a large number overflows" if overflow or not log else
                "the log of a probability that underflowed to 0: never take the log of a "
                "softmax")
        if not same(out.array(f"case/{k}/x-after", "x"), x, 0, 0):
            raise CheckFailure(f"your forward changed x in place {ctx.case}; x is the input "
                               f"tensor's data and must stay as it was",
                               "the input was overwritten in place")
        expected = Reference(axis).forward(x.astype(np.float64))
        got = numeric(y, what)
        try:
            assert_close(what, got, expected, rtol=1e-5 if x.dtype == np.float32 else 1e-9,
                         atol=1e-6 if x.dtype == np.float32 else 1e-12, context=ctx.case)
        except CheckFailure as failure:
            diagnosis = failure.diagnosis
            if got.shape == expected.shape and np.isfinite(got).all():
                for other in range(x.ndim):
                    if other == axis % x.ndim:
                        continue
                    alternative = Reference(other).forward(x.astype(np.float64))
                    if same(got, alternative, 1e-5, 1e-6):
                        diagnosis = (f"yours normalises along axis {other}, not along the axis "
                                     f"asked for ({axis})")
                        break
                else:
                    if same(got, Reference(None).forward(x.astype(np.float64)), 1e-5, 1e-6):
                        diagnosis = "yours normalises over all elements, not along the axis"
            raise CheckFailure(failure.message, diagnosis) from None
        if got.dtype != x.dtype:
            raise CheckFailure(f"{what} of a {x.dtype} x has dtype {got.dtype} {ctx.case}; keep "
                               f"the input's dtype")


@probe("softmax_forward")
def probe_softmax_forward(kit, rec: Recorder) -> None:
    _probe_softmax(kit, rec, "Softmax")


@judge("softmax_forward")
def judge_softmax_forward(out: Outputs, ctx: Judgement) -> None:
    _judge_softmax(out, ctx, "Softmax", log=False)


@probe("log_softmax_forward")
def probe_log_softmax_forward(kit, rec: Recorder) -> None:
    _probe_softmax(kit, rec, "LogSoftmax")


@judge("log_softmax_forward")
def judge_log_softmax_forward(out: Outputs, ctx: Judgement) -> None:
    _judge_softmax(out, ctx, "LogSoftmax", log=True)


# ============================================================================= sum_to
_SUM_TO_CASES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)),
                 ((4, 2, 3), (2, 3)), ((4, 2, 3), (1, 3)), ((4, 2, 3), (4, 1, 3)),
                 ((4, 2, 3), (2, 1)), ((2, 3), ()), ((3, 1, 4), (1, 1, 1)), ((5, 1, 3), (1, 3))]
_BROADCAST_PAIRS = [((2, 3), (3,)), ((2, 3), (2, 1)), ((2, 1, 3), (4, 3))]


def _sum_to_inputs():
    rng = np.random.default_rng(3)
    return [rng.standard_normal(g_shape) for g_shape, _ in _SUM_TO_CASES], \
        [(rng.standard_normal(a), rng.standard_normal(b)) for a, b in _BROADCAST_PAIRS]


@probe("sum_to")
def probe_sum_to(kit, rec: Recorder) -> None:
    sum_to = kit.get("_sum_to_array")
    gs, pairs = _sum_to_inputs()
    for k, ((_, shape), g) in enumerate(zip(_SUM_TO_CASES, gs)):
        argument = g.copy()
        rec.call(f"case/{k}", sum_to, argument, shape)
        rec.put(f"case/{k}/g-after", argument)
    # Plugged into minidl: a broadcasting op's backward now calls the student's sum_to.
    from minidl.functions.arithmetic import Add, Mul
    for k, (a, b) in enumerate(pairs):
        probe_function(rec, f"mul/{k}", Mul, [a, b], seed=k)
        probe_function(rec, f"add/{k}", Add, [a, b], seed=k)


@judge("sum_to")
def judge_sum_to(out: Outputs, ctx: Judgement) -> None:
    reference = _reference("minidl.functions.shape", "_sum_to_array")
    gs, pairs = _sum_to_inputs()
    for k, ((g_shape, shape), g) in enumerate(zip(_SUM_TO_CASES, gs)):
        what = f"sum_to(g of shape {g_shape}, {shape})"
        ctx.case = f"for {what}"
        expected = reference(g.copy(), shape)
        got = out.array(f"case/{k}", what)
        if got.shape != shape:
            diagnosis = ("the right numbers in the wrong shape: the summed axes must be kept "
                         "(or the result reshaped)" if got.size == expected.size else None)
            raise CheckFailure(f"{what} returned shape {got.shape}; it must return exactly "
                               f"{shape}", diagnosis)
        assert_close(what, got, expected)
        if not same(out.array(f"case/{k}/g-after", "g"), g, 0, 0):
            raise CheckFailure(f"{what} changed g in place; g is the upstream gradient, which "
                               f"other ops may share", "an input was overwritten in place")
    from minidl.functions.arithmetic import Add, Mul
    for k, ((a_shape, b_shape), (a, b)) in enumerate(zip(_BROADCAST_PAIRS, pairs)):
        for name, op, symbol in (("mul", Mul, "*"), ("add", Add, "+")):
            judge_function(out, ctx, f"{name}/{k}",
                           f"for a {symbol} b with a {a_shape} and b {b_shape} (broadcast), with "
                           f"your sum_to inside minidl", op, [a, b], ["a", "b"], seed=k,
                           forward_given=False)


# ============================================================================= matmul
_MATMUL_CASES = [((3, 4), (4, 5)), ((3, 3), (3, 3)), ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 2)),
                 ((1, 4), (4, 1))]


def _matmul_inputs():
    rng = np.random.default_rng(4)
    return [(rng.standard_normal(a), rng.standard_normal(b)) for a, b in _MATMUL_CASES]


@probe("matmul_backward")
def probe_matmul_backward(kit, rec: Recorder) -> None:
    MatMul = kit.get("MatMul")
    for k, (A, B) in enumerate(_matmul_inputs()):
        probe_function(rec, f"case/{k}", MatMul, [A, B], seed=k)


@judge("matmul_backward")
def judge_matmul_backward(out: Outputs, ctx: Judgement) -> None:
    Reference = _reference("minidl.functions.matmul", "MatMul")
    for k, ((a_shape, b_shape), (A, B)) in enumerate(zip(_MATMUL_CASES, _matmul_inputs())):
        def diagnose(mine, expected, A=A, B=B, k=k):
            gy = _upstream((A @ B).shape, k)
            if not same(mine[0], expected[0]) and _same_as(mine[0], lambda: gy @ B):
                return "the gradient of A uses B where B's transpose belongs"
            if not same(mine[1], expected[1]) and _same_as(mine[1], lambda: A @ gy):
                return "the gradient of B uses A where A's transpose belongs"
            return None

        judge_function(out, ctx, f"case/{k}", f"for Y = A @ B with A {a_shape} and B {b_shape}",
                       Reference, [A, B], ["A", "B"], seed=k, diagnose=diagnose)


def _same_as(got: np.ndarray, make: Callable[[], np.ndarray]) -> bool:
    try:
        return same(got, make())
    except ValueError:  # shapes that do not fit: not this mistake
        return False


# ============================================================================= the engine
def _split2():
    """A Function with two outputs, (2x, 3x) — the same class on both sides."""
    from minidl.autograd import Function

    class Split2(Function):
        def forward(self, x):
            return x * 2.0, x * 3.0

        def backward(self, g0, g1):
            return g0 * 2.0 + g1 * 3.0

    return Split2


_DEPTH = 1500  # steps of the deep chain: 3000 Functions, deeper than Python's recursion limit


def _engine_graphs():
    """(description, number of leaves, build(md, leaves) -> [(root, grad), ...]); backward is
    called for each pair in turn, so a later pair tests accumulation across calls."""
    def diamond(md, a, b, c):
        y = a * b
        z = y * c + y
        return [((z * z).sum(), 1.0)]

    def shared(md, a, b, c):
        return [((a * a * a + a * b).sum(), 1.0)]

    def split(md, a, b, c):
        u, v = _split2()()(a)
        w, _ = _split2()()(b)  # the second output is never used: its gradient is zero
        return [((u * v + w * c).sum(), 1.0)]

    def deep(md, a, b, c):
        x = a
        for _ in range(_DEPTH):
            x = x * 0.999 + b
        return [(x.sum(), 1.0)]

    def frozen(md, a, b, c):
        d = md.autograd.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=False)
        return [((md.functions.tanh(a * d) * c).sum(), 1.0)]

    def non_scalar(md, a, b, c):
        return [(md.functions.exp(a * 0.3) * b + c, np.array([1.0, -2.0, 0.5]))]

    def twice(md, a, b, c):
        return [((a * b).sum(), 1.0), ((a * a * c).sum(), 1.0)]

    return [("z = a·b·c + a·b; L = Σ z² (a·b is used twice)", diamond),
            ("L = Σ (a³ + a·b) (a is used four times)", shared),
            ("a Function with two outputs, one of them unused", split),
            (f"a chain {2 * _DEPTH} Functions deep", deep),
            ("a leaf that does not require grad", frozen),
            ("a non-scalar root with a given gradient", non_scalar),
            ("two backward calls in a row (gradients accumulate)", twice)]


def _engine_leaves(md):
    rng = np.random.default_rng(13)
    leaves = [md.autograd.Tensor(rng.standard_normal(3) * 0.5, requires_grad=True)
              for _ in range(3)]
    return leaves


@probe("engine_backward")
def probe_engine_backward(kit, rec: Recorder) -> None:
    import minidl as md
    backward_pass = kit.get("backward_pass")
    for k, (_, build) in enumerate(_engine_graphs()):
        leaves = _engine_leaves(md)
        for n, (root, grad) in enumerate(build(md, *leaves)):
            grad = np.array(grad, dtype=np.float64) * np.ones(root.shape)
            rec.call(f"case/{k}/call/{n}", backward_pass, root, grad,
                     catch=(RecursionError,))
        rec.put(f"case/{k}/grads", tuple(getattr(x.grad, "data", x.grad) for x in leaves))


def _variant_backward(root, grad, mode: str) -> None:
    """Grader side: an engine with a typical mistake, for recognising it. ``overwrite``: a
    tensor's gradient is replaced, not summed; ``eager``: a Function runs as soon as one
    gradient reaches it, once; ``replace_leaf``: leaf.grad is set, not added to."""
    from minidl.autograd import Tensor
    pending = {root.creator: [None] * root.creator.n_outputs}
    pending[root.creator][root.index] = grad
    depths = _depths(root)
    done, ready = set(), [root.creator]
    while ready:
        f = ready.pop(0)
        if f in done:
            continue
        done.add(f)
        grads = [np.zeros(meta[0]) if g is None else g for g, meta in
                 zip(pending.pop(f), getattr(f, "_output_meta", [(None, None)] * f.n_outputs))]
        result = f.backward(*grads)
        result = result if isinstance(result, tuple) else (result,)
        for x, g in zip(f.inputs, result):
            if not x.requires_grad or g is None:
                continue
            if x.creator is None:
                x.grad = Tensor(g) if x.grad is None or mode == "replace_leaf" else \
                    Tensor(x.grad.data + g)
                continue
            slots = pending.setdefault(x.creator, [None] * x.creator.n_outputs)
            if slots[x.index] is None or mode == "overwrite":
                slots[x.index] = g
            else:
                slots[x.index] = slots[x.index] + g
            if mode == "eager" or mode in ("overwrite", "replace_leaf"):
                ready.append(x.creator)
        if mode in ("overwrite", "replace_leaf"):
            ready.sort(key=lambda fn: depths[fn])


def _depths(root) -> Dict[Any, int]:
    """Each Function's longest distance from the root: sorting by it gives a topological
    order, for the variants that otherwise keep the right order."""
    consumers, stack = {root.creator: 0}, [root.creator]
    while stack:
        for x in stack.pop().inputs:
            p = x.creator
            if p is not None:
                if p not in consumers:
                    stack.append(p)
                consumers[p] = consumers.get(p, 0) + 1
    depths, ready = {root.creator: 0}, [root.creator]
    while ready:
        f = ready.pop()
        for x in f.inputs:
            p = x.creator
            if p is not None:
                depths[p] = max(depths.get(p, 0), depths[f] + 1)
                consumers[p] -= 1
                if consumers[p] == 0:
                    ready.append(p)
    return depths


_ENGINE_MISTAKES = [
    ("overwrite", "a tensor used more than once keeps only one of its gradients: the gradients "
                  "from each use must be added up"),
    ("eager", "a Function ran before all the gradients of its outputs had arrived (the order is "
              "not topological), so later contributions were lost"),
    ("replace_leaf", "a leaf's .grad was replaced instead of added to"),
]


@judge("engine_backward")
def judge_engine_backward(out: Outputs, ctx: Judgement) -> None:
    import minidl as md
    for k, (description, build) in enumerate(_engine_graphs()):
        ctx.case = f"for {description}"
        calls = []
        leaves = _engine_leaves(md)
        for n, (root, grad) in enumerate(build(md, *leaves)):
            calls.append((root, grad))
            result = out.get(f"case/{k}/call/{n}")
            if result.type == "raised":
                raise CheckFailure(f"your backward pass raised {result.exc} {ctx.case}",
                                   "the walk recursed once per Function; a graph this deep "
                                   "needs an explicit stack" if result.exc == "RecursionError"
                                   else None)
            root.backward(np.array(grad, dtype=np.float64) * np.ones(root.shape))
        mine = out.get(f"case/{k}/grads")
        if mine.type != "tuple" or len(mine.items) != 3:
            raise CheckFailure(f"the leaves' gradients could not be read {ctx.case}")
        for name, leaf, got in zip("abc", leaves, mine.items):
            expected = None if leaf.grad is None else leaf.grad.data
            if expected is None:
                if not got.is_none:
                    raise CheckFailure(f"leaf {name} got a gradient {ctx.case}, but nothing "
                                       f"that depends on it reaches the root")
                continue
            if got.is_none:
                raise CheckFailure(f"leaf {name} got no gradient (its .grad is None) "
                                   f"{ctx.case}", "gradients must reach every leaf that "
                                                  "requires grad and be added to its .grad")
            try:
                assert_close(f"the gradient of leaf {name}", got, expected, context=ctx.case)
            except CheckFailure as failure:
                diagnosis = failure.diagnosis
                for mode, mistake in _ENGINE_MISTAKES:
                    variant = _engine_leaves(md)
                    for root, grad in build(md, *variant):
                        _variant_backward(root, np.array(grad, dtype=np.float64) *
                                          np.ones(root.shape), mode)
                    values = [numeric(v, "grad") if not v.is_none else None
                              for v in mine.items]
                    if all(v is not None and x.grad is not None and same(v, x.grad.data)
                           for v, x in zip(values, variant) if x.grad is not None) and \
                            not all(x.grad is None or same(x.grad.data, y.grad.data)
                                    for x, y in zip(variant, leaves) if y.grad is not None):
                        diagnosis = mistake
                        break
                raise CheckFailure(failure.message, diagnosis) from None


# ============================================================================= nn.Linear
def _linear_inputs():
    rng = np.random.default_rng(5)
    cases = []
    for bias in (True, False):
        W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
        xs = [rng.standard_normal(shape) for shape in [(2, 4), (2, 5, 4), (4,)]]
        cases.append((bias, W, b, xs, rng.standard_normal((2, 4))))
    return cases


@probe("linear_forward")
def probe_linear_forward(kit, rec: Recorder) -> None:
    from minidl.autograd import Tensor
    Linear = kit.get("Linear")
    for bias, W, b, xs, x_graph in _linear_inputs():
        layer = Linear(4, 3, bias=bias, dtype="float64")
        layer.W.data = W.copy()
        if bias:
            layer.b.data = b.copy()
        for k, x in enumerate(xs):
            rec.call(f"{bias}/{k}", layer, Tensor(x.copy()))
        x = Tensor(x_graph.copy(), requires_grad=True)
        leaves = [x, layer.W] + ([layer.b] if bias else [])
        y = layer(x)
        rec.put_json(f"{bias}/graph", _reaches(y, leaves))


@judge("linear_forward")
def judge_linear_forward(out: Outputs, ctx: Judgement) -> None:
    for bias, W, b, xs, _ in _linear_inputs():
        label = "with bias" if bias else "bias=False"
        for k, x in enumerate(xs):
            ctx.case = f"for Linear(4, 3, {label}) and x of shape {x.shape}"
            y = out.get(f"{bias}/{k}")
            if y.type != "Tensor":
                raise CheckFailure(f"Linear(4, 3, {label}) returned {y.type}; return a Tensor "
                                   f"computed from x, self.W and self.b")
            assert_close("y", y, x @ W + (b if bias else 0), context=ctx.case)
        ctx.case = f"for Linear(4, 3, {label}) and x of shape (2, 4) that requires grad"
        reached = out.json(f"{bias}/graph")
        names = ["x", "W", "b"][:3 if bias else 2]
        if not isinstance(reached, list) or len(reached) != len(names) or \
                not all(isinstance(r, bool) for r in reached):
            raise CheckFailure("the graph check sent back something unexpected")
        missing = [n for n, r in zip(names, reached) if not r]
        if missing:
            raise CheckFailure(f"the output of Linear(4, 3, {label}) is not connected to "
                               f"{', '.join(missing)} in the graph, so no gradient reaches "
                               f"{'them' if len(missing) > 1 else 'it'}",
                               "the output was computed from raw arrays (.data), not with "
                               "Tensor operations on x, self.W and self.b")


# ============================================================================= softmax CE
def _softmax_ce_cases():
    rng = np.random.default_rng(6)
    return [(rng.standard_normal((4, 5)) * 2, [1, 0, 4, 2], [1, 1, 0, 1]),
            (rng.standard_normal((3, 4)) * 30, [3, 0, 1], [1, 1, 1]),
            (rng.standard_normal((2, 3)), [2, 2], [1, 1])]


@probe("softmax_cross_entropy_backward")
def probe_softmax_cross_entropy_backward(kit, rec: Recorder) -> None:
    Student = kit.get("SoftmaxCrossEntropy")
    for k, (logits, target, keep) in enumerate(_softmax_ce_cases()):
        target, keep = np.array(target), np.array(keep, dtype=np.float64)
        probe_function(rec, f"case/{k}", lambda: Student(target, keep), [logits], seed=k)


@judge("softmax_cross_entropy_backward")
def judge_softmax_cross_entropy_backward(out: Outputs, ctx: Judgement) -> None:
    Reference = _reference("minidl.functions.loss", "SoftmaxCrossEntropy")
    for k, (logits, target, keep) in enumerate(_softmax_ce_cases()):
        target = np.array(target)
        keep = np.array(keep, dtype=np.float64)

        def describe(name, target=target, keep=keep):
            def explain(index):
                row, column = index
                if keep[row] == 0:
                    return (f" (row {row} has an ignored target, keep = 0: its gradient must be "
                            f"0)")
                return f" (the target class of row {row})" if column == target[row] else ""
            return explain

        def diagnose(mine, expected, logits=logits, target=target, keep=keep, k=k):
            gy = _upstream((logits.shape[0],), k)
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            onehot = np.eye(logits.shape[1])[target]
            if same(mine[0], (p - onehot) * gy[:, None]):
                return "rows with an ignored target (keep = 0) must get a zero gradient"
            if same(mine[0], (p - onehot) * keep[:, None]):
                return "the upstream gradient gy is left out"
            if same(mine[0], p * (gy * keep)[:, None]):
                return "the one-hot of the target is not subtracted"
            return None

        ignored = f", row(s) {np.flatnonzero(keep == 0).tolist()} ignored" if \
            (keep == 0).any() else ""
        judge_function(out, ctx, f"case/{k}",
                       f"for logits of shape {logits.shape}, targets {target.tolist()}{ignored}",
                       lambda: Reference(target, keep), [logits], ["logits"], seed=k,
                       describe=describe, diagnose=diagnose)


# ============================================================================= LSTM cell
_GATES = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o"}


def _lstm_inputs():
    rng = np.random.default_rng(7)
    D, H, B = 3, 4, 2
    params = {"W_x": rng.standard_normal((D, 4 * H)) * 0.7,
              "W_h": rng.standard_normal((H, 4 * H)) * 0.7,
              "b": rng.standard_normal(4 * H) * 0.5}
    x = rng.standard_normal((B, D))
    h, c = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    sequence = rng.standard_normal((B, 5, D))
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    return D, H, params, x, h, c, sequence, mask


def _lstm_step(x, h, c, W_x, W_h, b, acts=("σ", "σ", "tanh", "σ"), order="ifgo",
               cell_tanh=True, offsets=None):
    """The LSTM step in NumPy, with switches that reproduce the typical mistakes (None when a
    shifted slice would leave z)."""
    H = h.shape[1]
    z = x @ W_x + h @ W_h + b
    offsets = offsets or {}
    blocks = {}
    for k, name in enumerate(order):
        start = k * H + offsets.get(name, 0)
        if start < 0 or start + H > 4 * H:
            return None
        blocks[name] = z[:, start:start + H]
    act = {"σ": _sigmoid, "tanh": np.tanh}
    i, f, g, o = (act[a](blocks[name]) for a, name in zip(acts, "ifgo"))
    c_new = f * c + i * g
    return o * (np.tanh(c_new) if cell_tanh else c_new), c_new


_LSTM_MISTAKES = [
    ("the forget gate f uses tanh instead of σ", dict(acts=("σ", "tanh", "tanh", "σ"))),
    ("the input gate i uses tanh instead of σ", dict(acts=("tanh", "σ", "tanh", "σ"))),
    ("the output gate o uses tanh instead of σ", dict(acts=("σ", "σ", "tanh", "tanh"))),
    ("the candidate g uses σ instead of tanh", dict(acts=("σ", "σ", "σ", "σ"))),
    ("the gate blocks are read in the order i, f, o, g; minidl's order is i, f, g, o",
     dict(order="ifog")),
    ("the i and f blocks are swapped (minidl's order is i, f, g, o)", dict(order="figo")),
    ("h' is computed from the cell state without squashing it", dict(cell_tanh=False)),
] + [(f"the slice of the {_GATES[gate]} is off by one column ({'one late' if shift > 0 else 'one early'})",
      dict(offsets={gate: shift})) for gate in "ifgo" for shift in (1, -1)]


@probe("lstm_cell_forward")
def probe_lstm_cell_forward(kit, rec: Recorder) -> None:
    import minidl as md
    from minidl.autograd import Tensor
    LSTMCell = kit.get("LSTMCell")
    D, H, params, x, h, c, sequence, mask = _lstm_inputs()
    cell = LSTMCell(D, H, dtype="float64")
    for name, value in params.items():
        getattr(cell, name).data = value.copy()
    rec.call("step", cell, Tensor(x.copy()), (Tensor(h.copy()), Tensor(c.copy())))
    leaves = [Tensor(a.copy(), requires_grad=True) for a in (x, h, c)]
    h_new, c_new = cell(leaves[0], (leaves[1], leaves[2]))[:2]
    rec.put_json("graph", _reaches(h_new, leaves + [cell.W_x, cell.W_h, cell.b]))
    # Plugged into minidl: nn.LSTM(fast=False) steps the student's cell through a padded
    # sequence.
    layer = md.nn.LSTM(D, H, fast=False, dtype="float64")
    layer.cell = cell
    outputs, (h_T, _) = layer(Tensor(sequence.copy()), mask=mask)
    rec.put("sequence/outputs", outputs)
    rec.put("sequence/h_T", h_T)


@judge("lstm_cell_forward")
def judge_lstm_cell_forward(out: Outputs, ctx: Judgement) -> None:
    import minidl as md
    from minidl.autograd import Tensor
    D, H, params, x, h, c, sequence, mask = _lstm_inputs()
    shapes = _shape_text(x=x, h=h, c=c)
    ctx.case = f"for LSTMCell({D}, {H}) and {shapes}"
    step = out.get("step")
    if step.type != "tuple" or step.count != 2:
        raise CheckFailure(f"LSTMCell.forward must return the pair (h', c'); yours returned "
                           f"{step.type}")
    expected = _lstm_step(x, h, c, **params)
    try:
        for name, got, e in zip(("h'", "c'"), step.items, expected):
            assert_close(name, got, e, context=f"for {shapes} (H = {H})")
    except CheckFailure as failure:
        mine = [numeric(y, "output") for y in step.items]
        for mistake, switches in _LSTM_MISTAKES:
            wrong = _lstm_step(x, h, c, **params, **switches)
            if wrong is not None and all(same(m, w) for m, w in zip(mine, wrong)):
                raise CheckFailure(failure.message, f"your (h', c') are those of an LSTM in "
                                                    f"which {mistake}") from None
        raise
    reached = out.json("graph")
    names = ["x", "h", "c", "W_x", "W_h", "b"]
    if not isinstance(reached, list) or len(reached) != 6:
        raise CheckFailure("the graph check sent back something unexpected")
    missing = [n for n, r in zip(names, reached) if r is not True]
    if missing:
        raise CheckFailure(f"h' is not connected to {', '.join(missing)} in the graph, so no "
                           f"gradient reaches {'them' if len(missing) > 1 else 'it'}",
                           "part of the step was computed from raw arrays (.data), not with "
                           "Tensor operations")
    ctx.case = f"for nn.LSTM(fast=False) with your cell over x {sequence.shape} with a mask"
    reference = md.nn.LSTM(D, H, dtype="float64")
    for name, value in params.items():
        getattr(reference.cell, name).data = value.copy()
    expected_outputs, (expected_h, _) = reference(Tensor(sequence.copy()), mask=mask)
    assert_close("the outputs", out.get("sequence/outputs"), expected_outputs.data,
                 context=ctx.case)
    assert_close("h_T", out.get("sequence/h_T"), expected_h.data, context=ctx.case)


def _lstm_backward_cases():
    rng = np.random.default_rng(8)
    cases = []
    for B, D, H in [(2, 3, 3), (1, 2, 1)]:
        cases.append((B, D, H, [rng.standard_normal((B, D)), rng.standard_normal((B, H)),
                                rng.standard_normal((B, H)),
                                rng.standard_normal((D, 4 * H)) * 0.7,
                                rng.standard_normal((H, 4 * H)) * 0.7,
                                rng.standard_normal(4 * H) * 0.5]))
    return cases


@probe("lstm_cell_backward")
def probe_lstm_cell_backward(kit, rec: Recorder) -> None:
    Student = kit.get("LSTMCellFunction")
    for k, (_, _, _, arrays) in enumerate(_lstm_backward_cases()):
        probe_function(rec, f"case/{k}", Student, arrays, seed=k)


def _lstm_backward_numpy(x, h, c, W_x, W_h, b, grad_h, grad_c, through_h=True,
                         value_for_derivative=(), db_mean=False, dc_times_f=True):
    """The LSTM step's backward in NumPy, with switches that reproduce the typical mistakes."""
    H = h.shape[1]
    z = x @ W_x + h @ W_h + b
    i, f, o = (_sigmoid(z[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
    g = np.tanh(z[:, 2 * H:3 * H])
    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    dc_new = grad_c + (grad_h * o * (1 - tanh_c ** 2) if through_h else 0)
    d = {"i": dc_new * g, "f": dc_new * c, "g": dc_new * i, "o": grad_h * tanh_c}
    value = {"i": i, "f": f, "g": g, "o": o}
    derivative = {"i": i * (1 - i), "f": f * (1 - f), "g": 1 - g * g, "o": o * (1 - o)}
    dz = np.concatenate([d[n] * (value[n] if n in value_for_derivative else derivative[n])
                         for n in "ifgo"], axis=1)
    db = dz.mean(0) if db_mean else dz.sum(0)
    return (dz @ W_x.T, dz @ W_h.T, dc_new * f if dc_times_f else dc_new, x.T @ dz, h.T @ dz, db)


_LSTM_BACKWARD_MISTAKES = [
    ("your dz is right, but db is the mean over the batch, not the sum", dict(db_mean=True)),
    ("c' reaches the loss twice — directly and through h' — and your dc' misses the path "
     "through h'", dict(through_h=False)),
    ("the gradient passed back to c misses the forget gate's factor", dict(dc_times_f=False)),
] + [(f"in the block of the {_GATES[n]} you multiplied by the gate's value where its "
      f"derivative belongs", dict(value_for_derivative=(n,))) for n in "ifgo"] + \
    [("in every gate block you multiplied by the gate's value where its derivative belongs",
      dict(value_for_derivative=tuple("ifgo")))]


@judge("lstm_cell_backward")
def judge_lstm_cell_backward(out: Outputs, ctx: Judgement) -> None:
    Reference = _reference("minidl.exercises.lstm_cell_function", "LSTMCellFunction")
    names = ["x", "h", "c", "W_x", "W_h", "b"]
    for k, (B, D, H, arrays) in enumerate(_lstm_backward_cases()):
        def describe(name, H=H):
            if name not in ("W_x", "W_h", "b"):
                return None
            return lambda index: (f" (column {index[-1]}: the "
                                  f"{_GATES['ifgo'[index[-1] // H]]} block)")

        def diagnose(mine, expected, arrays=arrays, H=H, k=k, B=B):
            grad_h, grad_c = _lstm_upstreams(B, H, k)
            for mistake, switches in _LSTM_BACKWARD_MISTAKES:
                wrong = _lstm_backward_numpy(*arrays, grad_h, grad_c, **switches)
                if all(same(m, w) for m, w in zip(mine, wrong)):
                    return mistake
            db, right = mine[5], expected[5]
            blocks = [same(db[j * H:(j + 1) * H], right[j * H:(j + 1) * H]) for j in range(4)]
            if all(blocks):
                wrong_names = [n for n, m, e in zip(names, mine, expected) if not same(m, e)]
                return (f"your dz is right (db is), so the mistake is in "
                        f"{', '.join(wrong_names)}")
            wrong = [_GATES[g] for g, ok in zip("ifgo", blocks) if not ok]
            fine = [_GATES[g] for g, ok in zip("ifgo", blocks) if ok]
            return (f"judging by db, your dz is wrong in the block(s) of the {', '.join(wrong)}"
                    + (f" (right: {', '.join(fine)})" if fine else ""))

        judge_function(out, ctx, f"case/{k}", f"for B = {B}, D = {D}, H = {H}", Reference,
                       arrays, names, seed=k, describe=describe, diagnose=diagnose)


def _lstm_upstreams(B, H, seed):
    from minidl.exercises.assertions import upstream_for
    return upstream_for([(B, H), (B, H)], seed)


# ============================================================================= RNN through time
def _rnn_cases():
    rng = np.random.default_rng(14)
    cases = []
    for B, T, D, H in [(2, 4, 3, 3), (1, 1, 2, 2), (2, 6, 2, 4)]:
        cases.append(((B, T, D, H), [rng.standard_normal((B, T, D)),
                                     rng.standard_normal((B, H)) * 0.5,
                                     rng.standard_normal((D, H)) * 0.6,
                                     rng.standard_normal((H, H)) * 0.6,
                                     rng.standard_normal(H) * 0.3]))
    return cases


def _rnn_backward_numpy(x, h0, W_x, W_h, b, grad_hs, carry=True, overwrite=(), tanh=True,
                        h_prev_is_h_t=False):
    """BPTT in NumPy, with switches that reproduce the typical mistakes."""
    B, T, _ = x.shape
    hs, h = [], h0
    for t in range(T):
        h = np.tanh(x[:, t] @ W_x + h @ W_h + b)
        hs.append(h)
    dx = np.zeros_like(x)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0
        dh = grad_hs[:, t] + (dh_next if carry else 0)
        dz = dh * (1 - hs[t] ** 2) if tanh else dh
        dx[:, t] = dz @ W_x.T
        grads = (x[:, t].T @ dz, (hs[t] if h_prev_is_h_t else h_prev).T @ dz, dz.sum(0))
        dW_x, dW_h, db = (g if name in overwrite else total + g
                          for name, total, g in zip(("W_x", "W_h", "b"), (dW_x, dW_h, db), grads))
        dh_next = dz @ W_h.T
    return dx, dh_next, dW_x, dW_h, db


_RNN_MISTAKES = [
    ("the gradient does not flow back through time: at step t, h_t also reaches the loss "
     "through step t + 1, and that gradient must be added", dict(carry=False)),
    ("the weights are shared by all T steps, so dW_x, dW_h and db must add up the contributions "
     "of every step; yours keep only one step's", dict(overwrite=("W_x", "W_h", "b"))),
    ("W_h is shared by all T steps, so dW_h must add up the contributions of every step; yours "
     "keeps only one step's", dict(overwrite=("W_h",))),
    ("the backward pass skips the tanh: the gradient must go back through its derivative "
     "(written with h_t)", dict(tanh=False)),
    ("dW_h pairs step t's gradient with h_t; it belongs with the state that went into step t, "
     "h_{t−1} (h0 at the first step)", dict(h_prev_is_h_t=True)),
]


@probe("rnn_bptt")
def probe_rnn_bptt(kit, rec: Recorder) -> None:
    Student = kit.get("RNNFunction")
    for k, (_, arrays) in enumerate(_rnn_cases()):
        probe_function(rec, f"case/{k}", Student, arrays, seed=k)


@judge("rnn_bptt")
def judge_rnn_bptt(out: Outputs, ctx: Judgement) -> None:
    Reference = _reference("minidl.exercises.rnn", "RNNFunction")
    names = ["x", "h0", "W_x", "W_h", "b"]
    for k, ((B, T, D, H), arrays) in enumerate(_rnn_cases()):
        def describe(name, T=T):
            if name != "x":
                return None
            return lambda index: f" (step t = {index[1]} of {T})"

        def diagnose(mine, expected, arrays=arrays, k=k, B=B, T=T, H=H):
            grad_hs = _upstream((B, T, H), k)
            for mistake, switches in _RNN_MISTAKES:
                wrong = _rnn_backward_numpy(*arrays, grad_hs, **switches)
                if all(same(m, w) for m, w in zip(mine, wrong)):
                    return mistake
            return None

        judge_function(out, ctx, f"case/{k}", f"for B = {B}, T = {T}, D = {D}, H = {H}",
                       Reference, arrays, names, seed=k, describe=describe, diagnose=diagnose)


# ============================================================================= Adam
_ADAM_CONFIGS = [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3),
                 dict(lr=0.01, weight_decay=0.1)]
_ADAM_SHAPES = [(3, 4), (5,)]


def _adam_inputs():
    rng = np.random.default_rng(9)
    return [(config, [rng.standard_normal(s) for s in _ADAM_SHAPES],
             [[rng.standard_normal(s) for s in _ADAM_SHAPES] for _ in range(3)])
            for config in _ADAM_CONFIGS]


@probe("adam_step")
def probe_adam_step(kit, rec: Recorder) -> None:
    import minidl as md
    from minidl.autograd import Tensor
    Adam = kit.get("Adam")
    for c, (config, start, grads) in enumerate(_adam_inputs()):
        params = [md.nn.Parameter(p.copy()) for p in start]
        optimizer = Adam(params, **config)
        for step, step_grads in enumerate(grads, 1):
            for p, g in zip(params, step_grads):
                p.grad = Tensor(g.copy())
            optimizer.step()
            rec.put(f"{c}/{step}/params", tuple(p.data for p in params))
            rec.put(f"{c}/{step}/grads", tuple(getattr(p.grad, "data", p.grad)
                                               for p in params))


def _adam_numpy(params, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                bias_correction=True):
    """Adam in plain NumPy (for recognising mistakes): the parameters after each step."""
    beta1, beta2 = betas
    params = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    history = []
    for t, step_grads in enumerate(grads, 1):
        b1, b2 = (1 - beta1 ** t, 1 - beta2 ** t) if bias_correction else (1.0, 1.0)
        for k, g in enumerate(step_grads):
            g = g + weight_decay * params[k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            params[k] = params[k] - lr * (m[k] / b1) / (np.sqrt(v[k] / b2) + eps)
        history.append([p.copy() for p in params])
    return history


@judge("adam_step")
def judge_adam_step(out: Outputs, ctx: Judgement) -> None:
    import minidl as md
    from minidl.autograd import Tensor
    for c, (config, start, grads) in enumerate(_adam_inputs()):
        reference = [md.nn.Parameter(p.copy()) for p in start]
        optimizer = md.optim.Adam(reference, **config)
        call = "Adam(params, " + ", ".join(f"{k}={v}" for k, v in config.items()) + ")"
        ctx.case = f"for {call}"
        for step, step_grads in enumerate(grads, 1):
            for p, g in zip(reference, step_grads):
                p.grad = Tensor(g.copy())
            optimizer.step()
            after = out.get(f"{c}/{step}/grads")
            for k, (g, original) in enumerate(zip(after.items if after.type == "tuple" else [],
                                                  step_grads)):
                if not same(numeric(g, "p.grad"), original, 0, 0):
                    raise CheckFailure(f"your step changed p.grad of parameter {k} in place, "
                                       f"after step {step} of {call}; the gradient belongs to "
                                       f"the caller (it may be logged, clipped or reused)",
                                       "the gradient array was overwritten in place")
            mine = out.get(f"{c}/{step}/params")
            if mine.type != "tuple" or len(mine.items) != len(reference):
                raise CheckFailure("the parameters after a step could not be read")
            for k, (p, r) in enumerate(zip(mine.items, reference)):
                try:
                    assert_close(f"parameter {k} (shape {r.shape})", p, r.data, rtol=1e-7,
                                 atol=1e-10, context=f"after step {step} of {call}")
                except CheckFailure as failure:
                    values = [numeric(q, "parameter") for q in mine.items]
                    unbiased = _adam_numpy(start, grads[:step], bias_correction=False,
                                           **config)[-1]
                    if all(same(q, u, 1e-6, 1e-9) for q, u in zip(values, unbiased)):
                        raise CheckFailure(failure.message, "your parameters are those of Adam "
                                                            "without bias correction") from None
                    if step > 1:
                        raise CheckFailure(failure.message, "the steps before were right: are "
                                           "m and v kept in `state` between steps (updated in "
                                           "place)?") from None
                    raise


# ============================================================================= pad_sequences
def _pad_cases():
    words = [[1, 2, 3], [4], [5, 6]]
    return [
        (words, {}),
        (words, {"padding": "post"}),
        (words, {"maxlen": 2}),
        (words, {"maxlen": 2, "truncating": "post"}),
        (words, {"maxlen": 4, "padding": "post", "value": -1}),
        ([[1, 2], [], [3]], {}),
        ([[0.5, 1.5], [2.5]], {"dtype": "float32", "value": 9.0}),
        ([[1.7, 2.2], [3.9]], {}),
        ([[[1, 2], [3, 4]], [[5, 6]]], {}),
        ([np.array([1, 2, 3]), np.array([4])], {"maxlen": 2, "padding": "post",
                                                "truncating": "post"}),
        ([[3, 1, 2], [5, 4]], {"maxlen": 2, "padding": "post"}),
    ]


def _plain(sequences) -> Any:
    return [s.tolist() if isinstance(s, np.ndarray) else copy.deepcopy(list(s))
            for s in sequences]


@probe("pad_sequences")
def probe_pad_sequences(kit, rec: Recorder) -> None:
    pad_sequences = kit.get("pad_sequences")
    for k, (sequences, kwargs) in enumerate(_pad_cases()):
        argument = copy.deepcopy(sequences)
        rec.call(f"case/{k}", pad_sequences, argument, **kwargs)
        rec.put_json(f"case/{k}/after", _plain(argument))


@judge("pad_sequences")
def judge_pad_sequences(out: Outputs, ctx: Judgement) -> None:
    reference = _reference("minidl.data.text", "pad_sequences")
    for k, (sequences, kwargs) in enumerate(_pad_cases()):
        call = "pad_sequences(" + ", ".join(
            [repr(_plain(sequences))] + [f"{key}={v!r}" for key, v in kwargs.items()]) + ")"
        expected = reference(copy.deepcopy(sequences), **kwargs)
        ctx.case = f"for {call}"
        returned = out.get(f"case/{k}")
        if returned.type != "ndarray":
            raise CheckFailure(f"{call} returned {returned.type}; return a NumPy array")
        got = numeric(returned, call)
        if got.shape != expected.shape:
            raise CheckFailure(f"{call} returned shape {got.shape}, expected {expected.shape}")
        if got.dtype != expected.dtype:
            raise CheckFailure(f"{call} returned dtype {got.dtype}, expected {expected.dtype}",
                               "the result is not cast to the `dtype` argument")
        if not np.array_equal(got, expected):
            diagnosis = None
            if np.array_equal(got, reference(copy.deepcopy(sequences), **dict(
                    kwargs, padding="post" if kwargs.get("padding", "pre") == "pre"
                    else "pre"))):
                diagnosis = "the padding is on the wrong side"
            elif "maxlen" in kwargs and np.array_equal(got, reference(copy.deepcopy(sequences), **dict(
                    kwargs, truncating="post" if kwargs.get("truncating", "pre") == "pre"
                    else "pre"))):
                diagnosis = "the sequences are cut at the wrong end"
            raise CheckFailure(f"{call} returned {got.tolist()}, expected {expected.tolist()}",
                               diagnosis)
        if out.json(f"case/{k}/after") != _plain(sequences):
            raise CheckFailure(f"{call} changed the caller's sequences (they are now "
                               f"{out.json(f'case/{k}/after')}); work on copies",
                               "an input was changed in place")


# ============================================================================= recognising
def _recognise(mine: List[np.ndarray], expected: List[np.ndarray], mistakes: List[tuple],
               variant: Callable[..., Optional[tuple]]) -> Optional[str]:
    """The mistakes that explain ``mine``: each ``(text, switches)`` whose ``variant(**switches)``
    matches every output that it changes — several may, each in its own outputs — or else a
    pair of them made together. None when nothing fits."""
    def explains(switches) -> bool:
        try:
            wrong = variant(**switches)
        except Exception:  # noqa: BLE001 - shapes that do not fit: not this mistake
            return False
        if wrong is None:
            return False
        changed = [i for i, (w, e) in enumerate(zip(wrong, expected)) if not same(w, e)]
        return bool(changed) and all(i < len(mine) and same(mine[i], wrong[i])
                                     for i in changed)

    found = [text for text, switches in mistakes if explains(switches)]
    if not found:
        for n, (first, one) in enumerate(mistakes):
            for second, other in mistakes[n + 1:]:
                if not set(one) & set(other) and explains({**one, **other}):
                    return f"{first}; and {second}"
    return "; ".join(found) or None


# ============================================================================= attention
def _attention_cases():
    """(description, q, k, v, scale, bias, keep). The first has Tq = Tk, so that a dV computed
    with P untransposed still has v's shape and is recognised by its values."""
    rng = np.random.default_rng(15)
    T = 4
    causal = np.where(np.arange(T)[None, :] <= np.arange(T)[:, None], 0.0, -np.inf)
    cases = [("q and k (2, 3, 4), v (2, 3, 5), scale 0.5", rng.standard_normal((2, 3, 4)),
              rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5)), 0.5, None, None)]
    q, k, v = (rng.standard_normal((1, 2, T, 3)) for _ in range(3))
    cases.append(("a causal mask, q, k, v (1, 2, 4, 3), scale 1/√3", q, k, v,
                  1.0 / np.sqrt(3.0), causal, None))
    q, k, v = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 5, 3)), \
        rng.standard_normal((2, 5, 4))
    keep = (rng.uniform(size=(2, 2, 5)) >= 0.3) / 0.7
    cases.append(("dropout (p = 0.3), q (2, 2, 3), k (2, 5, 3), v (2, 5, 4), scale 0.8", q, k, v,
                  0.8, None, keep))
    q, k, v = rng.standard_normal((3, 2, 4)), rng.standard_normal((1, 3, 4)), \
        rng.standard_normal((1, 3, 2))
    cases.append(("k (1, 3, 4) and v (1, 3, 2) broadcast against q (3, 2, 4), scale 0.5", q, k,
                  v, 0.5, None, None))
    return cases


def _attention_backward_numpy(q, k, v, scale, bias, keep, g_out, rowsum=True,
                              transpose_p=True, scaled=True, transpose_ds=True, mask_dv=True,
                              mask_dp=True):
    """The attention backward in NumPy, with switches that reproduce the typical mistakes."""
    sum_to = _reference("minidl.functions.shape", "_sum_to_array")
    scores = (q @ k.swapaxes(-1, -2)) * scale + (0.0 if bias is None else bias)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    p_used = p * keep if keep is not None and mask_dv else p
    dv = (p_used.swapaxes(-1, -2) if transpose_p else p_used) @ g_out
    dp = g_out @ v.swapaxes(-1, -2)
    if keep is not None and mask_dp:
        dp = dp * keep
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) if rowsum else p * dp
    if scaled:
        ds = ds * scale
    dq = ds @ k
    dk = (ds.swapaxes(-1, -2) if transpose_ds else ds) @ q
    return tuple(sum_to(grad, x.shape) for grad, x in ((dq, q), (dk, k), (dv, v)))


_ATTENTION_MISTAKES = [
    ("your backward through the softmax treats it as elementwise: each weight depends on every "
     "score of its row (a row sums to 1), and the term that comes from the row's sum is missing",
     dict(rowsum=False)),
    ("dV uses P where P's transpose belongs", dict(transpose_p=False)),
    ("the scale s is missing from dQ and dK: forward multiplied the scores by it",
     dict(scaled=False)),
    ("dK uses dS where dS's transpose belongs", dict(transpose_ds=False)),
    ("with dropout, dV must use the weights that forward multiplied V by (with the dropout mask)",
     dict(mask_dv=False)),
    ("with dropout, the gradient of P must go back through the dropout mask as well",
     dict(mask_dp=False)),
]


@probe("attention_backward")
def probe_attention_backward(kit, rec: Recorder) -> None:
    Student = kit.get("ScaledDotProductAttention")
    for n, (_, q, k, v, scale, bias, keep) in enumerate(_attention_cases()):
        probe_function(rec, f"case/{n}", lambda: Student(
            scale, None if bias is None else bias.copy(), None if keep is None else keep.copy()),
            [q, k, v], seed=n)


@judge("attention_backward")
def judge_attention_backward(out: Outputs, ctx: Judgement) -> None:
    Reference = _reference("minidl.functions.attention", "ScaledDotProductAttention")
    for n, (case, q, k, v, scale, bias, keep) in enumerate(_attention_cases()):
        def diagnose(mine, expected, q=q, k=k, v=v, scale=scale, bias=bias, keep=keep, n=n):
            g_out = _upstream(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]) +
                              (q.shape[-2], v.shape[-1]), n)
            return _recognise(mine, list(expected), _ATTENTION_MISTAKES,
                              lambda **switches: _attention_backward_numpy(
                                  q, k, v, scale, bias, keep, g_out, **switches))

        judge_function(out, ctx, f"case/{n}", f"for {case}",
                       lambda: Reference(scale, bias, keep), [q, k, v], ["q", "k", "v"], seed=n,
                       diagnose=diagnose)


# ============================================================================= layer norm
_LAYER_NORM_EPS = 1e-5


def _layer_norm_cases():
    """(description, n_axes, arrays): x alone, or x, weight, bias."""
    rng = np.random.default_rng(16)
    cases = []
    for case, shape, n_axes, affine, spread, shift in [
            ("x (4, 6) normalised over its last axis, with weight and bias", (4, 6), 1, True,
             2.0, 1.0),
            ("x (2, 3, 5) (two sample axes) normalised over its last axis, with weight and bias",
             (2, 3, 5), 1, True, 3.0, -2.0),
            ("x (3, 2, 4) normalised over its last two axes, with weight and bias (2, 4)",
             (3, 2, 4), 2, True, 1.0, 0.5),
            ("x (3, 5) normalised over its last axis, without weight and bias", (3, 5), 1, False,
             0.5, 0.0)]:
        arrays = [rng.standard_normal(shape) * spread + shift]
        if affine:
            features = shape[len(shape) - n_axes:]
            arrays += [rng.standard_normal(features), rng.standard_normal(features)]
        cases.append((case, n_axes, arrays))
    return cases


def _layer_norm_backward_numpy(x, *affine, n_axes, gy, eps=_LAYER_NORM_EPS, mean_g=True,
                               mean_gx=True, rstd=True, weight=True, dw_x_hat=True,
                               reduce="sum"):
    """LayerNorm's backward in NumPy, with switches that reproduce the typical mistakes."""
    axes = tuple(range(-n_axes, 0))
    centred = x - x.mean(axis=axes, keepdims=True)
    r = 1.0 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + eps)
    x_hat = centred * r
    g = gy * affine[0] if affine and weight else gy
    dx = g
    if mean_g:
        dx = dx - g.mean(axis=axes, keepdims=True)
    if mean_gx:
        dx = dx - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)
    if rstd:
        dx = dx * r
    if not affine:
        return (dx,)
    samples = tuple(range(gy.ndim - n_axes))
    total = np.sum if reduce == "sum" else np.mean
    return dx, total(gy * x_hat if dw_x_hat else gy, axis=samples), total(gy, axis=samples)


_LAYER_NORM_MISTAKES = [
    ("dx misses the share of the mean μ, which depends on x too (shifting all of a sample's "
     "features by one amount does not change x̂)", dict(mean_g=False)),
    ("dx misses the share of the variance σ², which depends on x too (scaling all of a sample's "
     "features does not change x̂)", dict(mean_gx=False)),
    ("dx misses the factor 1/√(σ² + ε) that forward saved in self.rstd", dict(rstd=False)),
    ("the weight is left out of the gradient that flows back to x", dict(weight=False)),
    ("dweight misses x̂ (yours equals dbias)", dict(dw_x_hat=False)),
    ("dweight and dbias are means over the samples, but every sample adds its own contribution "
     "to them", dict(reduce="mean")),
]


@probe("layer_norm_backward")
def probe_layer_norm_backward(kit, rec: Recorder) -> None:
    Student = kit.get("LayerNorm")
    for n, (_, n_axes, arrays) in enumerate(_layer_norm_cases()):
        probe_function(rec, f"case/{n}", lambda: Student(n_axes, _LAYER_NORM_EPS), arrays,
                       seed=n)


@judge("layer_norm_backward")
def judge_layer_norm_backward(out: Outputs, ctx: Judgement) -> None:
    Reference = _reference("minidl.functions.normalization", "LayerNorm")
    for n, (case, n_axes, arrays) in enumerate(_layer_norm_cases()):
        def diagnose(mine, expected, arrays=arrays, n_axes=n_axes, n=n):
            gy = _upstream(arrays[0].shape, n)
            return _recognise(mine, list(expected), _LAYER_NORM_MISTAKES,
                              lambda **switches: _layer_norm_backward_numpy(
                                  *arrays, n_axes=n_axes, gy=gy, **switches))

        try:
            judge_function(out, ctx, f"case/{n}", f"for {case}",
                           lambda: Reference(n_axes, _LAYER_NORM_EPS), arrays,
                           ["x", "weight", "bias"][:len(arrays)], seed=n, diagnose=diagnose)
        except CheckFailure as failure:
            if "gradient of shape" in failure.message and \
                    ("for weight," in failure.message or "for bias," in failure.message):
                raise CheckFailure(failure.message,
                                   "weight and bias are shared by every sample (each position "
                                   "of every leading axis), so their gradients must add up the "
                                   "contributions over all the sample axes, not just the first"
                                   ) from None
            raise


# ============================================================================= LoRA
_LORA_SHAPES = [(3, 3, 3, 6.0, (2, 3)),      # in = out = r: A and B swapped still fit
                (5, 4, 2, 5.0, (2, 3, 5))]   # (in, out, r, alpha, x's shape)
_LORA_DROPOUT = 0.5
_LORA_SEEDS = {"train": 21, "eval": 22}      # minidl's seed right before those calls


def _lora_cases():
    """(in, out, r, alpha, x, W, b, A, B): a frozen layer and a trained adapter (B ≠ 0)."""
    rng = np.random.default_rng(17)
    cases = []
    for n_in, n_out, r, alpha, shape in _LORA_SHAPES:
        cases.append((n_in, n_out, r, alpha, rng.standard_normal(shape),
                      rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out),
                      rng.standard_normal((n_in, r)) * 0.5, rng.standard_normal((r, n_out)) * 0.5))
    return cases


def _lora_layer(LoRALinear, case, trained: bool = True, dropout: float = 0.0):
    """Worker side: the student's LoRALinear around a frozen Linear whose forward is given
    here (so this check does not run the student's linear_forward)."""
    from minidl import functions as F
    from minidl.nn.layers import Linear

    class FrozenLinear(Linear):
        def forward(self, x):
            return F.linear(x, self.W, self.b)

    n_in, n_out, r, alpha, _, W, b, A, B = case
    base = FrozenLinear(n_in, n_out, dtype="float64")
    base.W.data, base.b.data = W.copy(), b.copy()
    layer = LoRALinear(base, r=r, alpha=alpha, dropout=dropout)
    if trained:
        layer.A.data, layer.B.data = A.copy(), B.copy()
    return layer


def _lora_mask(shape, seed: int) -> np.ndarray:
    """The dropout mask minidl draws on the CPU right after ``manual_seed(seed)``."""
    keep = np.random.default_rng(seed).uniform(0.0, 1.0, size=shape) >= _LORA_DROPOUT
    return keep.astype(np.float64) * (1.0 / (1.0 - _LORA_DROPOUT))


def _lora_numpy(x, W, b, A, B, scaling, mask=None, base=True, update=True, order="AB",
                base_mask=False, merged_again=False):
    """LoRA's forward in NumPy, with switches that reproduce the typical mistakes."""
    h = x if mask is None else x * mask
    y = ((h if base_mask else x) @ W + b) if base else 0.0
    copies = int(update) + int(merged_again)  # merged_again: the update, on top of W + sAB
    if copies:
        y = y + copies * scaling * ((h @ A) @ B if order == "AB" else (h @ B) @ A)
    return y


@probe("lora_forward")
def probe_lora_forward(kit, rec: Recorder) -> None:
    import minidl as md
    from minidl.autograd import Tensor
    LoRALinear = kit.get("LoRALinear")
    for c, case in enumerate(_lora_cases()):
        x = case[4]
        rec.call(f"{c}/fresh", _lora_layer(LoRALinear, case, trained=False), Tensor(x.copy()))
        layer = _lora_layer(LoRALinear, case)
        rec.call(f"{c}/y", layer, Tensor(x.copy()))
        leaf = Tensor(x.copy(), requires_grad=True)
        rec.put_json(f"{c}/graph", _reaches(layer(leaf), [leaf, layer.A, layer.B]))
        layer.merge()
        rec.call(f"{c}/merged", layer, Tensor(x.copy()))
        layer = _lora_layer(LoRALinear, case, dropout=_LORA_DROPOUT)
        for mode in ("train", "eval"):
            layer.train(mode == "train")
            md.manual_seed(_LORA_SEEDS[mode])
            rec.call(f"{c}/{mode}", layer, Tensor(x.copy()))


@judge("lora_forward")
def judge_lora_forward(out: Outputs, ctx: Judgement) -> None:
    for c, (n_in, n_out, r, alpha, x, W, b, A, B) in enumerate(_lora_cases()):
        scaling = alpha / r
        layer = f"LoRALinear(Linear({n_in}, {n_out}), r={r}, alpha={alpha:g})"
        fresh = {"A": A, "B": np.zeros_like(B)}
        checks = [
            ("fresh", f"for a new {layer} (B = 0) and x of shape {x.shape}", fresh, {}, []),
            ("y", f"for {layer} with a trained adapter (B ≠ 0) and x of shape {x.shape}", {}, {},
             [("the update is not scaled by self.scaling (α / r)", dict(scaling=1.0)),
              ("the update is scaled by α; the scale is α / r (self.scaling)",
               dict(scaling=alpha)),
              ("the update is scaled by r / α; the scale is α / r (self.scaling)",
               dict(scaling=r / alpha)),
              ("A and B are applied in the wrong order: the input goes through A (in_features "
               "-> r) first, then B (r -> out_features)", dict(order="BA")),
              ("yours is the frozen layer's output alone: the low-rank update is missing",
               dict(update=False)),
              ("yours is the low-rank update alone: the frozen layer's output is missing",
               dict(base=False))]),
            ("merged", f"after merge() of {layer} with a trained adapter, for x of shape "
                       f"{x.shape}", {}, {},
             [("after merge() the update is already inside base.W (self.merged is True), and "
               "yours adds it a second time", dict(merged_again=True))]),
            ("train", f"in training for {layer} with dropout={_LORA_DROPOUT}, for x of shape "
                      f"{x.shape} right after md.manual_seed({_LORA_SEEDS['train']})", {},
             {"mask": _lora_mask(x.shape, _LORA_SEEDS["train"])},
             [("in training the update's input must go through dropout (self.dropout); yours "
               "uses x itself", dict(mask=None)),
              ("dropout is applied to the frozen layer's input too; only the update's input is "
               "dropped", dict(base_mask=True))]),
            ("eval", f"in evaluation mode (eval()) for {layer} with dropout={_LORA_DROPOUT}, for "
                     f"x of shape {x.shape}", {}, {},
             [("dropout is applied in evaluation mode too; it belongs to training only "
               "(self.training)", dict(mask=_lora_mask(x.shape, _LORA_SEEDS["eval"])))]),
        ]
        for key, case, weights, settings, mistakes in checks:
            ctx.case = case
            arrays = {**dict(W=W, b=b, A=A, B=B, scaling=scaling), **weights, **settings}
            y = out.get(f"{c}/{key}")
            if y.type != "Tensor":
                raise CheckFailure(f"LoRALinear.forward returned {y.type} {case}; return a Tensor "
                                   f"computed with Tensor operations")
            expected = _lora_numpy(x, **arrays)
            try:
                assert_close("y", y, expected, context=case)
            except CheckFailure as failure:
                mine = numeric(y, "y")
                diagnosis = _recognise([mine], [expected], mistakes, lambda **switches: (
                    _lora_numpy(x, **dict(arrays, **switches)),))
                if diagnosis is None and key == "fresh":
                    diagnosis = ("a new adapter has B = 0, so the layer must compute exactly "
                                 "what the frozen layer computes")
                raise CheckFailure(failure.message, diagnosis or failure.diagnosis) from None
            if key == "y":
                ctx.case = f"for {layer} and x of shape {x.shape} that requires grad"
                reached = out.json(f"{c}/graph")
                if not isinstance(reached, list) or len(reached) != 3 or \
                        not all(isinstance(flag, bool) for flag in reached):
                    raise CheckFailure("the graph check sent back something unexpected")
                missing = [name for name, flag in zip(("x", "A", "B"), reached) if not flag]
                if missing:
                    raise CheckFailure(f"the output of {layer} is not connected to "
                                       f"{', '.join(missing)} in the graph, so no gradient "
                                       f"reaches {'them' if len(missing) > 1 else 'it'}",
                                       "the output was computed from raw arrays (.data), not "
                                       "with Tensor operations on x, self.A and self.B")
