"""One check per exercise: value checks against the reference and numerical gradient checks.

A check runs in the grading worker process, next to the student's code (see ``grade.py``). It
gets a ``Context`` that hands out the student's class or function from the kit file, plugs it
into minidl, and either returns (pass) or raises ``CheckFailure`` — written with the assertions
of ``assertions.py`` — naming the input, the element, the expected value and the student's; and,
where a typical mistake can be recognised (a transposed gradient, a missing ``sum_to``, a gate
with the wrong activation, Adam without bias correction), what the mistake is.

Gradient checks use ``md.gradcheck`` in its element-wise mode (small shapes), with a random
upstream gradient, so the report names the worst element. A check registers itself with
``@check(exercise_id)``; a test fails unless every exercise of the registry has one.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict

import numpy as np

import minidl as md
from minidl.autograd import Tensor
from minidl.exercises.assertions import (CheckFailure, Context, assert_close, check_backward,
                                         run_gradcheck, to_numeric_array)
from minidl.functions.elementwise import sigmoid_array

CHECKS: Dict[str, Callable[[Context], None]] = {}


def check(exercise_id: str) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register the decorated function as the check of exercise ``exercise_id``."""
    def register(fn: Callable[[Context], None]) -> Callable[[Context], None]:
        CHECKS[exercise_id] = fn
        return fn
    return register


# ============================================================================= helpers
def _sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) in float64 by the reference's ``sigmoid_array``: the expected values of the checks."""
    return sigmoid_array(np.asarray(x, dtype=np.float64))


def _shape_text(**arrays: np.ndarray) -> str:
    return ", ".join(f"{name} {tuple(a.shape)}" for name, a in arrays.items())


# ============================================================================= sigmoid
@check("sigmoid_forward")
def check_sigmoid_forward(ctx: Context) -> None:
    student_sigmoid = ctx.get("sigmoid_array")
    rng = np.random.default_rng(1)
    for dtype in (np.float64, np.float32):
        x = (rng.standard_normal((3, 4)) * 4).astype(dtype)
        ctx.case = f"for x of shape (3, 4) and dtype {np.dtype(dtype).name}"
        y = to_numeric_array(student_sigmoid(x.copy()), "σ(x)")
        assert_close("σ(x)", y, _sigmoid(x), rtol=1e-5 if dtype == np.float32 else 1e-9,
                     atol=1e-7, context=ctx.case)
        if y.dtype != dtype:
            raise CheckFailure(f"σ(x) of a {np.dtype(dtype).name} x has dtype {y.dtype}; keep "
                               f"the input's dtype (a float64 result doubles memory and time)")
    extreme = np.array([-1000, -100, -89, -30, 0, 30, 89, 100, 1000], dtype=np.float32)
    ctx.case = f"for x = {extreme.tolist()} (float32)"
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            y = student_sigmoid(extreme.copy())
    except FloatingPointError as error:
        raise CheckFailure(f"σ(x) is not stable: for x = {extreme.tolist()} (float32) it "
                           f"raises FloatingPointError ({error})",
                           hint="e⁻ˣ overflows float32 for x < −88: use σ(x) = 0.5·tanh(x/2) "
                                "+ 0.5, or raise x to at least −88 first (σ(−88) is below "
                                "1e-38)") from None
    assert_close("σ(x)", y, _sigmoid(extreme), atol=1e-7, rtol=1e-5, context=ctx.case)

    x = np.array([[-1000.0, -100, -3, -0.5, 0], [0.5, 2, 30, 100, 1000]])
    ctx.case = f"for sigmoid_array(x) with x = {x.tolist()}"
    original = x.copy()
    with np.errstate(over="ignore"):  # an overflow was the check above; here: is x kept?
        student_sigmoid(x)
    if not np.array_equal(x, original):
        raise CheckFailure("sigmoid_array(x) changed x itself: Sigmoid passes it the input "
                           "tensor's data, which must stay as it was; write into a new array "
                           "(or into `out` when it is given)")
    # The fused LSTM computes its gates in place: sigmoid_array(z, out=z).
    for in_place in (False, True):
        x = (rng.standard_normal((2, 5)) * 4).astype(np.float32)
        out = x.copy() if in_place else np.full_like(x, np.nan)
        call = "sigmoid_array(z, out=z)" if in_place else "sigmoid_array(x, out=buffer)"
        ctx.case = f"for {call} with a (2, 5) float32 array"
        if in_place:
            y = student_sigmoid(out, out=out)
        else:
            y = student_sigmoid(x.copy(), out=out)
        hint = ("with `out` given, write σ(x) into it and return it: y = xp.multiply(x, 0.5, "
                "out=out) makes y a new array when out is None and out otherwise; then keep "
                "working in y (out=y, y *= ..., y += ...)")
        if not in_place and np.isnan(out).all():
            raise CheckFailure(f"{call} left the buffer as it was: write σ(x) into `out` when "
                               f"it is given", hint=hint)
        try:
            assert_close("out", out, _sigmoid(x), rtol=1e-5, atol=1e-7, context=ctx.case)
            assert_close("the returned array", y, _sigmoid(x), rtol=1e-5, atol=1e-7,
                         context=ctx.case)
        except CheckFailure as failure:
            raise CheckFailure(failure.message, hint=hint) from None


@check("sigmoid_backward")
def check_sigmoid_backward(ctx: Context) -> None:
    from minidl.functions.elementwise import Sigmoid as Reference
    Sigmoid = ctx.get("Sigmoid")
    probe = np.linspace(-3, 3, 7)
    try:
        forward_works = np.allclose(to_numeric_array(Sigmoid()(Tensor(probe.copy())), "σ(x)"),
                                    _sigmoid(probe))
    except Exception:  # noqa: BLE001 - any failure of the forward is its own exercise's
        forward_works = False
    if not forward_works:
        Sigmoid = type("Sigmoid", (Sigmoid,), {"forward": Reference.forward})
        ctx.note("your sigmoid_array is not right yet (see sigmoid_forward), so your backward "
                 "was checked with the reference forward, which saves y = σ(x)")
    rng = np.random.default_rng(2)
    for shape in [(2, 3), (5,), (1, 1)]:
        x = rng.standard_normal(shape) * 3
        check_backward(ctx, f"for x of shape {shape}", Sigmoid, Reference, [x], ["x"])


# ============================================================================= sum_to
@check("sum_to")
def check_sum_to(ctx: Context) -> None:
    from minidl.functions import shape as shape_module
    reference = shape_module._sum_to_array
    sum_to = ctx.get("_sum_to_array")
    rng = np.random.default_rng(3)
    cases = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), (1, 3)), ((2, 3), (2, 1)),
             ((4, 2, 3), (2, 3)), ((4, 2, 3), (1, 3)), ((4, 2, 3), (4, 1, 3)),
             ((4, 2, 3), (2, 1)), ((2, 3), ()), ((3, 1, 4), (1, 1, 1)), ((5, 1, 3), (1, 3))]
    for g_shape, shape in cases:
        g = rng.standard_normal(g_shape)
        what = f"sum_to(g of shape {g_shape}, {shape})"
        expected = reference(g.copy(), shape)
        ctx.case = f"for {what}"
        got = to_numeric_array(sum_to(g.copy(), shape), what)
        if got.shape != shape:
            extra = (" (the right numbers? then reshape to `shape`, or sum with keepdims=True)"
                     if got.size == expected.size else "")
            raise CheckFailure(f"{what} returned shape {got.shape}; it must return exactly "
                               f"{shape}{extra}")
        assert_close(what, got, expected)
    # Plugged into minidl: every broadcasting op's backward now calls the student's sum_to.
    shape_module._sum_to_array = sum_to
    try:
        for a_shape, b_shape in [((2, 3), (3,)), ((2, 3), (2, 1)), ((2, 1, 3), (4, 3))]:
            a = Tensor(rng.standard_normal(a_shape), requires_grad=True, name="a")
            b = Tensor(rng.standard_normal(b_shape), requires_grad=True, name="b")
            ctx.case = f"for a * b + b with a {a_shape} and b {b_shape}, inside minidl"
            run_gradcheck(f"for a * b + b with a {a_shape} and b {b_shape} (broadcast), with "
                          f"your sum_to inside minidl", lambda a, b: a * b + b, a, b)
    finally:
        shape_module._sum_to_array = reference


# ============================================================================= matmul
@check("matmul_backward")
def check_matmul_backward(ctx: Context) -> None:
    from minidl.functions.matmul import MatMul as Reference
    MatMul = ctx.get("MatMul")
    rng = np.random.default_rng(4)
    cases = [((3, 4), (4, 5)), ((3, 3), (3, 3)), ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 2)),
             ((1, 4), (4, 1))]
    for a_shape, b_shape in cases:
        A, B = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        check_backward(ctx, f"for Y = A @ B with A {a_shape} and B {b_shape}", MatMul,
                       Reference, [A, B], ["A", "B"])


# ============================================================================= nn.Linear
@check("linear_forward")
def check_linear_forward(ctx: Context) -> None:
    Linear = ctx.get("Linear")
    rng = np.random.default_rng(5)
    for bias in (True, False):
        layer = Linear(4, 3, bias=bias, dtype="float64")
        W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
        layer.W.data = W.copy()
        if bias:
            layer.b.data = b.copy()
        label = "with bias" if bias else "bias=False"
        for shape in [(2, 4), (2, 5, 4), (4,)]:
            x = rng.standard_normal(shape)
            ctx.case = f"for Linear(4, 3, {label}) and x of shape {shape}"
            y = layer(Tensor(x.copy()))
            if not isinstance(y, Tensor):
                raise CheckFailure(f"Linear(4, 3, {label}) returned {type(y).__name__}; return "
                                   f"a Tensor computed from x, self.W and self.b")
            assert_close("y", y, x @ W + (b if bias else 0), context=ctx.case)
        x = Tensor(rng.standard_normal((2, 4)), requires_grad=True, name="x")
        if layer(x).creator is None:
            raise CheckFailure(f"the output of Linear(4, 3, {label}) is not connected to the "
                               f"graph, so no gradient reaches x, W or b: compute it with Tensor "
                               f"operations (@, +) on x, self.W and self.b, not on .data")
        run_gradcheck(f"through Linear(4, 3, {label}) for x of shape (2, 4)", layer, x,
                      wrt=dict(layer.named_parameters()))


# ============================================================================= softmax CE
@check("softmax_cross_entropy_backward")
def check_softmax_cross_entropy_backward(ctx: Context) -> None:
    from minidl.functions.loss import SoftmaxCrossEntropy as Reference
    Student = ctx.get("SoftmaxCrossEntropy")
    rng = np.random.default_rng(6)
    cases = [(rng.standard_normal((4, 5)) * 2, [1, 0, 4, 2], [1, 1, 0, 1]),
             (rng.standard_normal((3, 4)) * 30, [3, 0, 1], [1, 1, 1]),
             (rng.standard_normal((2, 3)), [2, 2], [1, 1])]
    for logits, target, keep in cases:
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

        ignored = f", row(s) {np.flatnonzero(keep == 0).tolist()} ignored" if \
            (keep == 0).any() else ""
        check_backward(ctx,
                       f"for logits of shape {logits.shape}, targets {target.tolist()}{ignored}",
                       lambda: Student(target, keep), lambda: Reference(target, keep),
                       [logits], ["logits"], describe=describe)


# ============================================================================= LSTM cell
_GATES = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o"}


def _lstm_step(x, h, c, W_x, W_h, b, acts=("σ", "σ", "tanh", "σ"), order="ifgo",
               cell_tanh=True):
    """The LSTM step in NumPy, with switches that reproduce the typical mistakes."""
    H = h.shape[1]
    z = x @ W_x + h @ W_h + b
    blocks = {name: z[:, k * H:(k + 1) * H] for k, name in enumerate(order)}
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
    ("h' = o ⊙ c' is missing the tanh: h' = o ⊙ tanh(c')", dict(cell_tanh=False)),
]


@check("lstm_cell_forward")
def check_lstm_cell_forward(ctx: Context) -> None:
    LSTMCell = ctx.get("LSTMCell")
    rng = np.random.default_rng(7)
    D, H, B = 3, 4, 2
    cell = LSTMCell(D, H, dtype="float64")
    params = {"W_x": rng.standard_normal((D, 4 * H)) * 0.7,
              "W_h": rng.standard_normal((H, 4 * H)) * 0.7,
              "b": rng.standard_normal(4 * H) * 0.5}
    for name, value in params.items():
        getattr(cell, name).data = value.copy()
    x = rng.standard_normal((B, D))
    h, c = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    ctx.case = f"for LSTMCell({D}, {H}) and {_shape_text(x=x, h=h, c=c)}"
    out = cell(Tensor(x.copy()), (Tensor(h.copy()), Tensor(c.copy())))
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailure(f"LSTMCell.forward must return the pair (h', c'); yours returned "
                           f"{type(out).__name__}")
    expected = _lstm_step(x, h, c, **params)
    shapes = _shape_text(x=x, h=h, c=c)
    try:
        for name, got, e in zip(("h'", "c'"), out, expected):
            assert_close(name, got, e, context=f"for {shapes} (H = {H})")
    except CheckFailure as failure:
        mine = [to_numeric_array(y, "output") for y in out]
        for mistake, switches in _LSTM_MISTAKES:
            wrong = _lstm_step(x, h, c, **params, **switches)
            if all(m.shape == w.shape and np.allclose(m, w, rtol=1e-6, atol=1e-8)
                   for m, w in zip(mine, wrong)):
                raise CheckFailure(f"{failure.message}. Your (h', c') are those of an LSTM in "
                                   f"which {mistake}") from None
        raise
    xs = [Tensor(a, requires_grad=True, name=n) for a, n in ((x, "x"), (h, "h"), (c, "c"))]
    run_gradcheck(f"through your LSTMCell for {shapes}",
                  lambda x, h, c: tuple(cell(x, (h, c))), *xs, wrt=dict(cell.named_parameters()))
    # Plugged into minidl: nn.LSTM(fast=False) steps your cell through a padded sequence; the
    # fused LSTMFunction with the same weights gives the expected result.
    sequence = rng.standard_normal((B, 5, D))
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    ctx.case = f"for nn.LSTM(fast=False) with your cell over x {sequence.shape} with a mask"
    reference = md.nn.LSTM(D, H, dtype="float64")
    for name, value in params.items():
        getattr(reference.cell, name).data = value.copy()
    layer = md.nn.LSTM(D, H, fast=False, dtype="float64")
    layer.cell = cell
    expected_outputs, (expected_h, _) = reference(Tensor(sequence.copy()), mask=mask)
    outputs, (h_T, _) = layer(Tensor(sequence.copy()), mask=mask)
    assert_close("the outputs", outputs, expected_outputs.data, context=ctx.case)
    assert_close("h_T", h_T, expected_h.data, context=ctx.case)


@check("lstm_cell_backward")
def check_lstm_cell_backward(ctx: Context) -> None:
    from minidl.exercises.lstm_cell_function import LSTMCellFunction as Reference
    Student = ctx.get("LSTMCellFunction")
    rng = np.random.default_rng(8)
    for B, D, H in [(2, 3, 3), (1, 2, 1)]:
        arrays = [rng.standard_normal((B, D)), rng.standard_normal((B, H)),
                  rng.standard_normal((B, H)), rng.standard_normal((D, 4 * H)) * 0.7,
                  rng.standard_normal((H, 4 * H)) * 0.7, rng.standard_normal(4 * H) * 0.5]
        names = ["x", "h", "c", "W_x", "W_h", "b"]

        def describe(name, H=H):
            if name not in ("W_x", "W_h", "b"):
                return None
            return lambda index: (f" (column {index[-1]}: the "
                                  f"{_GATES['ifgo'[index[-1] // H]]} block)")

        def diagnose(yours, expected, H=H):
            db, right = yours[5], expected[5]
            if db.shape != right.shape:
                return None
            blocks = [np.allclose(db[k * H:(k + 1) * H], right[k * H:(k + 1) * H], rtol=1e-6,
                                  atol=1e-8) for k in range(4)]
            if all(blocks):
                return None
            wrong = [_GATES[g] for g, ok in zip("ifgo", blocks) if not ok]
            fine = [_GATES[g] for g, ok in zip("ifgo", blocks) if ok]
            return (f"Judging by db = Σ dz, your dz is wrong in the block(s) of the "
                    f"{', '.join(wrong)}" + (f" (right: {', '.join(fine)})" if fine else ""))

        check_backward(ctx, f"for B = {B}, D = {D}, H = {H}", Student, Reference, arrays, names,
                       describe=describe, diagnose=diagnose)


# ============================================================================= Adam
def _adam_numpy(params, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                epsilon_hat=False, bias_correction=True):
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
            if epsilon_hat:
                params[k] = params[k] - lr * np.sqrt(b2) / b1 * m[k] / (np.sqrt(v[k]) + eps)
            else:
                params[k] = params[k] - lr * (m[k] / b1) / (np.sqrt(v[k] / b2) + eps)
        history.append([p.copy() for p in params])
    return history


@check("adam_step")
def check_adam_step(ctx: Context) -> None:
    Adam = ctx.get("Adam")
    configs = [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3),
               dict(lr=0.01, weight_decay=0.1), dict(lr=0.02, eps=1e-3, epsilon_hat=True)]
    rng = np.random.default_rng(9)
    shapes = [(3, 4), (5,)]
    for config in configs:
        start = [rng.standard_normal(s) for s in shapes]
        grads = [[rng.standard_normal(s) for s in shapes] for _ in range(3)]
        reference = [md.nn.Parameter(p.copy()) for p in start]
        mine = [md.nn.Parameter(p.copy()) for p in start]
        ref_opt, my_opt = md.optim.Adam(reference, **config), Adam(mine, **config)
        call = "Adam(params, " + ", ".join(f"{k}={v}" for k, v in config.items()) + ")"
        ctx.case = f"for {call}"
        for step, step_grads in enumerate(grads, 1):
            for params in (reference, mine):
                for p, g in zip(params, step_grads):
                    p.grad = Tensor(g.copy())
            ref_opt.step()
            my_opt.step()
            for k, (p, r) in enumerate(zip(mine, reference)):
                try:
                    assert_close(f"parameter {k} (shape {r.shape})", p.data, r.data, rtol=1e-7,
                                 atol=1e-10, context=f"after step {step} of {call}")
                except CheckFailure as failure:
                    unbiased = _adam_numpy(start, grads[:step], bias_correction=False,
                                           **config)[-1]
                    if all(np.allclose(q.data, u, rtol=1e-6, atol=1e-9)
                           for q, u in zip(mine, unbiased)):
                        raise CheckFailure(
                            f"{failure.message}. Your parameters are those of Adam without "
                            f"bias correction",
                            hint="divide by the bias corrections: m̂ = m/(1−β₁ᵗ), "
                                 "v̂ = v/(1−β₂ᵗ), with t = state['step']") from None
                    if step > 1:
                        raise CheckFailure(
                            f"{failure.message}. The steps before were right: are m and v "
                            f"kept in `state` between steps (update them in place)?") from None
                    raise


# ============================================================================= pad_sequences
@check("pad_sequences")
def check_pad_sequences(ctx: Context) -> None:
    from minidl.data.text import pad_sequences as reference
    pad_sequences = ctx.get("pad_sequences")
    words = [[1, 2, 3], [4], [5, 6]]
    cases = [
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
    ]
    for sequences, kwargs in cases:
        call = "pad_sequences(" + ", ".join(
            [repr([s.tolist() if isinstance(s, np.ndarray) else s for s in sequences])] +
            [f"{k}={v!r}" for k, v in kwargs.items()]) + ")"
        expected = reference(copy.deepcopy(sequences), **kwargs)
        ctx.case = f"for {call}"
        got = pad_sequences(copy.deepcopy(sequences), **kwargs)
        if not isinstance(got, np.ndarray):
            raise CheckFailure(f"{call} returned {type(got).__name__}; return a NumPy array")
        if got.shape != expected.shape:
            raise CheckFailure(f"{call} returned shape {got.shape}, expected {expected.shape}")
        if got.dtype != expected.dtype:
            raise CheckFailure(f"{call} returned dtype {got.dtype}, expected {expected.dtype} "
                               f"(cast with the dtype argument)")
        if not np.array_equal(got, expected):
            raise CheckFailure(f"{call} returned {got.tolist()}, expected {expected.tolist()}")
