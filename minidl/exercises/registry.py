"""The list of exercises: what each one is, where its reference lives, what it is worth, and
what the grader may say about it.

The solution of each exercise is a region of the reference source between the comment lines
``# BEGIN EXERCISE <id>`` and ``# END EXERCISE``. The region's top-level class or function (its
*unit*, e.g. the class ``MatMul``) is copied into a file of the student kit, ``ex_<name>.py``. A
kit file may hold several units of one module, in the module's order, and so several exercises:
``ex_sigmoid.py`` holds the function ``sigmoid_array`` (exercise ``sigmoid_forward``) and the
class ``Sigmoid`` whose forward calls it (``sigmoid_backward``), as in the reference.
Adding an exercise = marking a region + adding an entry here + writing its probe and judge in
``checks.py`` (a test fails until all three agree). A teacher can add exercises without editing
minidl: ``load_extra`` reads them from a folder (see ``docs/teacher.md``).

What the grader says is graded too (``--hints``): ``task`` and ``spec`` are in the kit and
``diagnose`` mode's messages name a mistake; neither gives a formula or code. Only ``hint`` does,
and it is shown with ``--hints full`` alone.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes:
        id: the name in the markers, the grader's output and the CSV column.
        title: one line for the kit's README and the grader's report.
        module: the module holding the reference solution (and the markers).
        unit: the top-level class or function around the region; the kit file defines it.
        file: the kit file (it holds one or more units of ``module``).
        task: what to write, in one line, without the formula; the comment above the stub.
        hint: the formula or the usual mistake — shown only with ``--hints full``.
        weight: points for passing it (a teacher's ``--weights`` file may change them).
        needs: exercises whose code this one's check runs too (the student's versions): when
            one of them fails, a failure here says so.
        spec: the kit's docstring of ``unit`` (the specification: shapes, what to compute, the
            formula's name — not the formula), replacing the reference's, which may give the
            answer away. None keeps the reference's docstring.
        lesson: the lesson that teaches it.
        extra: the teacher's folder of an exercise added with ``load_extra`` (None: built in).
    """

    id: str
    title: str
    module: Optional[str]
    unit: str
    file: str
    task: str
    hint: str
    weight: float = 1.0
    needs: Tuple[str, ...] = ()
    spec: Optional[str] = None
    lesson: Optional[int] = None
    extra: Optional[str] = field(default=None, compare=False)


EXERCISES: Tuple[Exercise, ...] = (
    Exercise(
        id="sigmoid_forward",
        title="the logistic sigmoid σ(x) on an array, stable for any x",
        module="minidl.functions.elementwise", unit="sigmoid_array", file="ex_sigmoid.py",
        task="return the logistic sigmoid of x with x's shape and dtype, written into `out` "
             "when it is given; it must not overflow for any x, and x itself stays unchanged",
        hint="e⁻ˣ overflows for x < −88 in float32, so use the equal form σ(x) = "
             "0.5·tanh(x/2) + 0.5 (or first raise x to at least −88, where σ is below 1e-38). "
             "Start with y = xp.multiply(x, 0.5, out=out): a new array when out is None, out "
             "otherwise (x is left alone); then keep working in y with out=y, y *= ..., y += "
             ".... Use xp = backend.get_array_module(x) rather than numpy, so it also runs on "
             "a GPU.",
        weight=1.0, lesson=5,
        spec="The logistic sigmoid σ(x) = 1 / (1 + e⁻ˣ) on a raw array (NumPy, CuPy or strict), "
             "into ``out`` if given.\n\n"
             "The one sigmoid of minidl: ``Sigmoid``, the fused LSTM (``out=z`` computes the "
             "gates in place) and ``binary_cross_entropy_with_logits`` all call it.\n\n"
             "Shape: any; the result has x's shape and dtype. With ``out`` given, the result is "
             "written into it and returned (``out`` may be ``x`` itself); otherwise x is left "
             "unchanged.\n\n"
             "Stability: must not overflow for any x, e.g. x = −1000 in float32, where e⁻ˣ is "
             "too large for float32 (lesson 5 shows an equal form of σ that never overflows); "
             "it should saturate to 0 and 1."),
    Exercise(
        id="sigmoid_backward",
        title="the sigmoid's backward, from the saved output",
        module="minidl.functions.elementwise", unit="Sigmoid", file="ex_sigmoid.py",
        task="return the gradient of x from the upstream gradient gy, using the output y that "
             "forward saved",
        hint="dx = gy ⊙ y ⊙ (1 − y) where y = σ(x) is what forward saved "
             "(y, = self.saved_tensors).",
        weight=1.0, needs=("sigmoid_forward",), lesson=2,
        spec="y = σ(x), the logistic sigmoid.\n\n"
             "Forward is ``sigmoid_array`` (stable for any x) and saves the output y. Backward "
             "returns the gradient of x for the upstream gradient gy (same shape): σ's "
             "derivative written with the saved output y, times gy, elementwise."),
    Exercise(
        id="softmax_forward",
        title="softmax along an axis, stable for any x",
        module="minidl.functions.softmax", unit="Softmax", file="ex_softmax.py",
        task="compute y, the softmax of x along self.axis, with x's shape and dtype, without "
             "overflow for any x (the lines below save y and return it)",
        hint="softmax is unchanged by subtracting a constant from each row: y = exp(x − max x) / "
             "Σ exp(x − max x), with max and sum along self.axis (keepdims=True); x − max ≤ 0, "
             "so exp never overflows.",
        weight=1.0, lesson=5,
        spec="Probabilities along ``self.axis``: the softmax yᵢ = exp(xᵢ) / Σⱼ exp(xⱼ), positive "
             "and summing to 1.\n\n"
             "Shape: any; y has x's shape and dtype. Backward (given) uses the saved y.\n"
             "Stability: must not overflow for any x — in float32 exp(89) is already inf, and "
             "logits of 1000 happen. Lesson 5 shows which change of x leaves the softmax as it "
             "is and makes every exponential safe."),
    Exercise(
        id="log_softmax_forward",
        title="log-softmax along an axis, without ever computing log(0)",
        module="minidl.functions.softmax", unit="LogSoftmax", file="ex_softmax.py",
        task="compute y, the log of the softmax of x along self.axis, with x's shape and dtype, "
             "finite for any x (the lines below save y and return it)",
        hint="log softmax(x) = x − m − log Σ exp(x − m) with m = max x along self.axis "
             "(log-sum-exp); never take the log of a softmax, which underflows to 0.",
        weight=1.0, lesson=5,
        spec="log(softmax(x)) along ``self.axis``.\n\n"
             "Shape: any; y has x's shape and dtype. Backward (given) uses the saved y.\n"
             "Stability: finite for any x: no overflow (x = 1000) and no log of 0 (a "
             "probability that underflows, x = −1000 beside x = 0). Lesson 5 derives the "
             "log-sum-exp form that guarantees both."),
    Exercise(
        id="sum_to",
        title="sum_to: undo broadcasting (the backward of every broadcasting op)",
        module="minidl.functions.shape", unit="_sum_to_array", file="ex_sum_to.py",
        task="sum g over the axes that broadcasting added or stretched, so that the result has "
             "exactly `shape`",
        hint="Broadcasting aligns shapes on the right: sum the lead = g.ndim − len(shape) "
             "leading axes, and every axis i where shape[i] == 1 but g's matching axis is "
             "longer; then reshape to `shape` (keepdims, or .reshape(shape)).",
        weight=1.0, lesson=2,
        spec="Sum the array ``g`` over the axes that broadcasting added or stretched, giving an "
             "array of exactly ``shape``.\n\n"
             "Shape: g has the broadcast shape of an array of ``shape`` (NumPy's rules: shapes "
             "are aligned on the right); the result has ``shape``. Example: g (4, 2, 3) and "
             "shape (2, 1) give (2, 1)."),
    Exercise(
        id="matmul_backward",
        title="matmul's backward, with broadcast leading axes",
        module="minidl.functions.matmul", unit="MatMul", file="ex_matmul.py",
        task="return the gradients (dA, dB) of Y = A @ B for the upstream gradient gy, each with "
             "the shape of its input",
        hint="dA = dY @ Bᵀ and dB = Aᵀ @ dY, transposing the last two axes "
             "(.swapaxes(-1, -2)); when A or B was broadcast over leading axes, "
             "sum_to(grad, a.shape) sums them back.",
        weight=1.5, needs=("sum_to",), lesson=3,
        spec="Y = A @ B over the last two axes, leading axes broadcast.\n\n"
             "Shape: A (..., n, k), B (..., k, m) -> Y (..., n, m).\n"
             "Backward: the gradients of A and B for the upstream gradient gy (the shape of Y) — "
             "lesson 3 derives them from the chain rule — each with exactly the shape of its "
             "input, so an input that was broadcast over leading axes gets its gradient summed "
             "back (``sum_to``)."),
    Exercise(
        id="engine_backward",
        title="the engine: backward in topological order, gradients accumulated",
        module="minidl.exercises.engine", unit="backward_pass", file="ex_engine.py",
        task="walk the graph from root in a topological order, calling each Function's "
             "backward once all its outputs' gradients have arrived, summing the gradients of "
             "tensors used more than once and accumulating into the leaves",
        hint="Count each Function's consumers with a stack (no recursion); keep a list of "
             "pending output gradients per Function; pop a Function whose consumers have all "
             "sent their gradient, call f.backward(*grads), add each input's gradient to its "
             "producer's slot (slots[x.index] += g) or accumulate(x, g) for a leaf, and push "
             "the producer when its count reaches 0.",
        weight=2.0, lesson=2),
    Exercise(
        id="linear_forward",
        title="nn.Linear.forward: y = x @ W + b",
        module="minidl.nn.layers", unit="Linear", file="ex_linear.py",
        task="return y = x @ W + b with the layer's parameters self.W and self.b (self.b is None "
             "when bias=False), as Tensor operations so that gradients flow",
        hint="y = x @ self.W + self.b, with Tensor operations so that gradients flow "
             "(F.linear(x, self.W, self.b) does it in one op); with bias=False, self.b is None.",
        weight=0.5, lesson=4),
    Exercise(
        id="softmax_cross_entropy_backward",
        title="the fused softmax cross-entropy's backward",
        module="minidl.functions.loss", unit="SoftmaxCrossEntropy",
        file="ex_softmax_cross_entropy.py",
        task="return the gradient of the logits (N, C) for the upstream gradient gy (N,); rows "
             "with keep = 0 get a zero gradient",
        hint="softmax(x) = exp(self.log_p); subtract 1 at [row, self.target[row]] for each "
             "row; multiply row n by gy[n] (the upstream gradient) and by self.keep[n], which "
             "is 0 for ignored targets.",
        weight=1.0, lesson=4,
        spec="ℓₙ = −log softmax(xₙ)[tₙ] for rows xₙ of logits (N, C) and integer targets tₙ, "
             "fused.\n\n"
             "Forward keeps log softmax(x) in ``self.log_p``. Backward returns dℓ/dx (N, C) for "
             "the upstream gradient gy (N,), one pass over the logits (lesson 4 derives the "
             "gradient of cross-entropy after softmax). Rows with ``keep = 0`` (ignored "
             "targets) get zero loss and zero gradient."),
    Exercise(
        id="lstm_cell_forward",
        title="one LSTM step (nn.LSTMCell.forward), gates in the order i, f, g, o",
        module="minidl.nn.recurrent", unit="LSTMCell", file="ex_lstm_cell.py",
        task="return (h', c') for one LSTM step with the gate blocks in the order i, f, g, o, "
             "as Tensor operations",
        hint="z = x @ W_x + h @ W_h + b has four blocks of H columns in the order i, f, g, o; "
             "i, f and o use σ, only g uses tanh; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c').",
        weight=1.5, needs=("sigmoid_forward",), lesson=8,
        spec="One LSTM step (lesson 8), written with primitive ops so that it reads like the "
             "math.\n\n"
             "The pre-activations z = x W_x + h W_h + b have four blocks of H columns, in the "
             "order i, f, g, o (Keras' and PyTorch's): the input, forget and output gates "
             "(squashed to (0, 1)) and the candidate g (squashed to (−1, 1)). The new cell "
             "state c' keeps part of c (forget gate) and adds part of g (input gate); the new "
             "h' is the output gate applied to the squashed cell state.\n\n"
             "Shape: x (B, input_size), h and c (B, hidden_size) -> (h', c').\n"
             "Parameters: W_x (input_size, 4H) glorot-uniform; W_h (H, 4H) orthogonal; b (4H,) "
             "zeros except the forget gate's block, which starts at 1 (Keras' "
             "unit_forget_bias), so the cell remembers by default."),
    Exercise(
        id="lstm_cell_backward",
        title="one LSTM step's backward, written by hand",
        module="minidl.exercises.lstm_cell_function", unit="LSTMCellFunction",
        file="ex_lstm_cell_function.py",
        task="return (dx, dh, dc, dW_x, dW_h, db) from the gradients of h' and c', following "
             "lesson 8's derivation",
        hint="dc' gets two shares: grad_c + grad_h ⊙ o ⊙ (1 − tanh²c'); do = grad_h ⊙ tanh c'; "
             "di = dc'⊙g, df = dc'⊙c, dg = dc'⊙i; dz = [di·i(1−i), df·f(1−f), dg·(1−g²), "
             "do·o(1−o)] in the order i, f, g, o; then dx = dz W_xᵀ, dh = dz W_hᵀ, "
             "dc = dc' ⊙ f, dW_x = xᵀ dz, dW_h = hᵀ dz, db = Σ dz over the batch.",
        weight=3.0, needs=("sigmoid_forward",), lesson=8,
        spec="One LSTM step, forward and backward by hand (lesson 8 derives the backward).\n\n"
             "Forward: z = x W_x + h W_h + b (B, 4H) in the gate order i, f, g, o, then the "
             "step of ``nn.LSTMCell``; it keeps the gates in ``self.gates`` (i, f, g, o, each "
             "(B, H)) and tanh(c') in ``self.tanh_c``.\n\n"
             "Shape: x (B, D), h and c (B, H), W_x (D, 4H), W_h (H, 4H), b (4H,) -> h' (B, H), "
             "c' (B, H).\n"
             "Backward: from grad_h = ∂L/∂h' and grad_c = ∂L/∂c' (both (B, H)) return "
             "(dx, dh, dc, dW_x, dW_h, db), one gradient per input, each of that input's "
             "shape."),
    Exercise(
        id="rnn_bptt",
        title="backpropagation through time for a tanh RNN over T steps",
        module="minidl.exercises.rnn", unit="RNNFunction", file="ex_rnn.py",
        task="return (dx, dh0, dW_x, dW_h, db) from grad_hs, going back through the T steps as "
             "lesson 8 derives",
        hint="Loop t = T−1 … 0 with dh_next = 0: dh = grad_hs[:, t] + dh_next; dz = dh ⊙ (1 − "
             "h_t²); dx[:, t] = dz W_xᵀ; dW_x += x_tᵀ dz; dW_h += h_{t−1}ᵀ dz (h_{−1} = h0); "
             "db += Σ_batch dz; dh_next = dz W_hᵀ; at the end dh0 = dh_next.",
        weight=3.0, lesson=8,
        spec="A tanh RNN over T steps, h_t = tanh(x_t W_x + h_{t−1} W_h + b) from h_0, forward "
             "and backward through time by hand (lesson 8 derives the backward).\n\n"
             "Shape: x (B, T, D), h0 (B, H), W_x (D, H), W_h (H, H), b (H,) -> hs (B, T, H), "
             "the h_t of every step. Forward keeps every h_t in ``self.hs``.\n"
             "Backward: from grad_hs = ∂L/∂hs (B, T, H) return (dx, dh0, dW_x, dW_h, db), one "
             "gradient per input, each of that input's shape."),
    Exercise(
        id="adam_step",
        title="the Adam update with bias correction (PyTorch's rule)",
        module="minidl.optim.adam", unit="Adam", file="ex_adam.py",
        task="update the moments m and v in place and then the parameter p.data with PyTorch's "
             "rule, as the class docstring and lesson 5 say (only PyTorch's ε placement is "
             "graded; group['epsilon_hat'] selects Keras' form, optional)",
        hint="m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; m̂ = m/(1−β₁ᵗ); v̂ = v/(1−β₂ᵗ); "
             "θ ← θ − lr·m̂/(√v̂ + ε). Update m and v in place (m *= β₁ ...) so the state "
             "persists between steps, and never change `grad` (it is p.grad's array).",
        weight=1.5, lesson=5),
    Exercise(
        id="pad_sequences",
        title="pad_sequences: pad or cut token lists to one length (Keras' semantics)",
        module="minidl.data.text", unit="pad_sequences", file="ex_pad_sequences.py",
        task="build the (len(sequences), maxlen) + sample_shape array filled with `value`, then "
             "copy each (truncated) sequence in, before or after the padding; the caller's "
             "sequences stay unchanged",
        hint="truncating='pre' keeps the last maxlen items (s[-maxlen:]), 'post' the first "
             "(s[:maxlen]); padding='pre' writes them at the end of the row "
             "(x[row, maxlen − len(kept):]), 'post' at the start; empty sequences stay all "
             "`value`; cast to `dtype`.",
        weight=1.0, lesson=6),
    Exercise(
        id="attention_backward",
        title="scaled dot-product attention's backward: dq, dk, dv from the saved weights",
        module="minidl.functions.attention", unit="ScaledDotProductAttention",
        file="ex_attention.py",
        task="return (dq, dk, dv), the gradients of q, k and v for the upstream gradient "
             "g_out, from the weights p that forward saved (and the dropout mask keep when it "
             "is not None), each with its input's shape",
        hint="With P' = P ⊙ keep (P without dropout): dV = P'ᵀ dO; dP = (dO Vᵀ) ⊙ keep; "
             "dS = P ⊙ (dP − rowsum(dP ⊙ P)), the row sum along the last axis with "
             "keepdims=True; dQ = s·dS K and dK = s·dSᵀ Q with s = self.scale. Transpose the "
             "last two axes with .swapaxes(-1, -2); sum_to(grad, x.shape) sums an input's "
             "gradient back over broadcast leading axes.",
        weight=2.0, needs=("sum_to",), lesson=13,
        spec="Scaled dot-product attention, fused: scores S = Q Kᵀ · s (plus the additive "
             "mask ``bias``), weights P = softmax(S) along the keys, output O = P V.\n\n"
             "Shape: q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv); leading "
             "axes broadcast.\n"
             "``scale``: s (1/√d in ``F.scaled_dot_product_attention``). ``bias``: 0 where "
             "attention is allowed and −∞ where not, or None. ``keep``: the dropout mask, "
             "already scaled by 1/(1 − p), or None; with it the output is (P ⊙ keep) V.\n\n"
             "Forward (given) keeps the weights P in ``self.p`` and the inputs in ``self.q``, "
             "``self.k``, ``self.v``; ``needs`` (``self.needs_input_grad``) says which inputs "
             "need a gradient (None is allowed for the others; the grader asks for all three)."
             "\n\n"
             "Backward: from g_out = ∂L/∂O return (dq, dk, dv), each "
             "with exactly its input's shape (an input broadcast over leading axes gets its "
             "gradient summed back with ``sum_to``). Lesson 13 derives it with the chain rule "
             "through the three lines of forward, bottom up; the step through the softmax is "
             "the softmax's own backward, one row at a time."),
    Exercise(
        id="layer_norm_backward",
        title="LayerNorm's backward: dx, dweight and dbias",
        module="minidl.functions.normalization", unit="LayerNorm", file="ex_layer_norm.py",
        task="return the gradient of x for the upstream gradient gy — and those of weight and "
             "bias when forward had them — from x̂ and 1/√(σ² + ε) that forward saved",
        hint="g = gy ⊙ weight (g = gy without weight); dx = rstd · (g − mean(g) − x̂ ⊙ "
             "mean(g ⊙ x̂)), both means over the normalised axes (axis=axes, keepdims=True); "
             "dweight = Σ gy ⊙ x̂ and dbias = Σ gy, summed over every sample axis: all the "
             "leading axes, tuple(range(gy.ndim − len(axes))).",
        weight=2.0, lesson=13,
        spec="Layer normalisation over the last ``n_axes`` axes, fused: each sample's features "
             "are shifted to mean μ = 0 and scaled to variance σ² = 1, giving x̂, then "
             "multiplied by ``weight`` and shifted by ``bias`` when they are given.\n\n"
             "Shape: x (..., *normalized_shape); weight and bias (normalized_shape) or absent; "
             "y has x's shape.\n"
             "Forward (given) keeps x̂ in ``self.x_hat``, 1/√(σ² + ε) in ``self.rstd`` (one "
             "value per sample, keepdims), the normalised axes in ``self.axes`` (negative) and "
             "the weight in ``self.weight``; ``len(self.inputs)`` is 3 when forward had weight "
             "and bias, 1 when it had x only.\n\n"
             "Backward: from gy = ∂L/∂y return dx alone when forward had x only, otherwise "
             "(dx, dweight, dbias), each with exactly its input's shape. Lesson 13 derives it: "
             "μ and σ depend on x as well, and each of them adds its share to dx; weight and "
             "bias are shared by every sample."),
    Exercise(
        id="lora_forward",
        title="LoRA's forward: the frozen layer plus the scaled low-rank update",
        module="minidl.nn.lora", unit="LoRALinear", file="ex_lora.py",
        task="return the frozen layer's output plus the low-rank update through self.A and "
             "self.B, scaled by self.scaling, with dropout on the update's input in training; "
             "after merge(), the frozen layer's output alone",
        hint="y = self.base(x); if self.merged: return y; h = F.dropout(x, self.dropout, "
             "self.training); return y + ((h @ self.A) * self.scaling) @ self.B — scaling = "
             "α / r, applied to the small (…, r) product because that is cheaper. Dropout "
             "applies to the update's input only, never to base(x).",
        weight=1.0, lesson=15,
        spec="LoRA (Hu et al., 2021): a frozen ``Linear`` (``self.base``) plus a trainable "
             "low-rank update, lesson 15.\n\n"
             "The update sends the input through A (in_features -> r) and then B (r -> "
             "out_features), scaled by ``self.scaling`` = α / r. During training "
             "(``self.training``) the update's input goes through dropout with probability "
             "``self.dropout`` (``F.dropout``); the frozen layer's input never does. B starts "
             "at zeros, so a new adapter leaves the layer's function unchanged. ``merge()`` "
             "(given) folds the update into ``base.W`` and sets ``self.merged``: from then on "
             "the frozen layer computes the whole function by itself.\n\n"
             "Shape: x (..., in_features) -> (..., out_features).\n"
             "Parameters: ``base.W`` (in_features, out_features) and ``base.b`` "
             "(out_features) frozen; ``A`` (in_features, r) small random, ``B`` (r, "
             "out_features) zeros. Use Tensor operations, so that gradients reach A and B."),
)


_EXTRA: Dict[str, Exercise] = {}
_EXTRA_PROBES: Dict[str, Callable] = {}
_EXTRA_JUDGES: Dict[str, Callable] = {}
EXTRA_FILES = ("exercise.json", "probe.py")  # what of a teacher's exercise reaches the worker


class ExtraExerciseError(ValueError):
    """A teacher's exercise folder that cannot be used; the message says why."""


def all_exercises() -> Tuple[Exercise, ...]:
    """minidl's exercises, then any a teacher added with ``load_extra``."""
    return EXERCISES + tuple(_EXTRA.values())


def by_id() -> Dict[str, Exercise]:
    """The exercises keyed by id (the teacher's too)."""
    return {e.id: e for e in all_exercises()}


def needed_ids(ids: List[str]) -> List[str]:
    """The exercises that the checks of ``ids`` also run (their ``needs``, transitively), not
    themselves among ``ids``: a worker imports and plugs their files as well."""
    table, found, stack = by_id(), [], list(ids)
    while stack:
        exercise = table.get(stack.pop())
        for need in exercise.needs if exercise is not None else ():
            if need in table and need not in ids and need not in found:
                found.append(need)
                stack.append(need)
    return found


def kit_files() -> Dict[str, List[Exercise]]:
    """Kit file name -> minidl's exercises in it, in the kit's order."""
    files: Dict[str, List[Exercise]] = {}
    for e in EXERCISES:
        files.setdefault(e.file, []).append(e)
    return files


def _import_file(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_extra(folder: Path, with_judges: bool = True) -> List[Exercise]:
    """Add a teacher's exercises: every sub-folder of ``folder`` holding an ``exercise.json``.

    An exercise folder holds
      - ``exercise.json``: ``{"id", "title", "file", "unit", "task", "hint", "weight"}`` (the
        kit file the students fill in, the class or function the probe takes from it);
      - ``probe.py``: ``probe(kit, rec)`` — runs in the worker, next to the student's code: it
        calls ``kit.get(unit)`` on fixed inputs and records what it returns (``rec.call``,
        ``rec.put``); it is the only code of the folder that reaches the worker;
      - ``check.py``: ``judge(out, ctx)`` — runs in the grader: computes the expected values
        (from a reference the teacher keeps in the folder, e.g. ``reference.py``, which never
        reaches the worker) and raises ``CheckFailure`` when ``out`` disagrees;
      - optionally the kit file itself (``file``, with the stub), which ``minidl exercises
        export --extra`` copies into the kits it writes.
    Returns the exercises added.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExtraExerciseError(f"{folder}: no such folder of exercises")
    added = []
    for spec_path in sorted(folder.glob("*/exercise.json")):
        where = spec_path.parent
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ExtraExerciseError(f"{spec_path}: not JSON ({error})") from None
        required = {"id", "title", "file", "unit"}
        if not isinstance(spec, dict) or required - set(spec):
            raise ExtraExerciseError(f"{spec_path}: needs the fields {sorted(required)}")
        if not re.match(r"^[a-z][a-z0-9_]{0,63}$", str(spec["id"])) or \
                not re.match(r"^[A-Za-z0-9_\-]{1,80}\.py$", str(spec["file"])):
            raise ExtraExerciseError(f"{spec_path}: the id must be lower_case_with_underscores "
                                     f"and the file a plain name ending in .py")
        if spec["id"] in {e.id for e in EXERCISES}:
            raise ExtraExerciseError(f"{spec_path}: {spec['id']} is one of minidl's exercises")
        if spec["file"] in kit_files():
            raise ExtraExerciseError(f"{spec_path}: {spec['file']} is a file of minidl's kit")
        exercise = Exercise(id=spec["id"], title=str(spec["title"]), module=None,
                            unit=str(spec["unit"]), file=spec["file"],
                            task=str(spec.get("task", "")), hint=str(spec.get("hint", "")),
                            weight=float(spec.get("weight", 1.0)), extra=str(where))
        probe = _import_file(f"minidl_extra_probe_{exercise.id}", where / "probe.py")
        if not callable(getattr(probe, "probe", None)):
            raise ExtraExerciseError(f"{where / 'probe.py'} must define probe(kit, rec)")
        _EXTRA_PROBES[exercise.id] = probe.probe
        if with_judges:  # check.py may import its reference from beside it
            sys.path.insert(0, str(where))
            try:
                check = _import_file(f"minidl_extra_check_{exercise.id}", where / "check.py")
            finally:
                sys.path.remove(str(where))
            if not callable(getattr(check, "judge", None)):
                raise ExtraExerciseError(f"{where / 'check.py'} must define judge(out, ctx)")
            _EXTRA_JUDGES[exercise.id] = check.judge
        _EXTRA[exercise.id] = exercise
        added.append(exercise)
    if not added:
        raise ExtraExerciseError(f"{folder} holds no exercise (a sub-folder with exercise.json)")
    return added


def clear_extra() -> None:
    """Forget the exercises added with ``load_extra``."""
    _EXTRA.clear()
    _EXTRA_PROBES.clear()
    _EXTRA_JUDGES.clear()


def extra_probes() -> Dict[str, Callable]:
    return dict(_EXTRA_PROBES)


def extra_judges() -> Dict[str, Callable]:
    return dict(_EXTRA_JUDGES)


# ----------------------------------------------------------------------------- plugging in
def _replace_everywhere(old: Any, new: Any) -> None:
    """Make every minidl module that refers to ``old`` refer to ``new`` (``from x import y``
    copies the reference, so patching the defining module alone is not enough)."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "minidl" or name.startswith("minidl.")):
            continue
        for attribute, value in list(vars(module).items()):
            if value is old:
                setattr(module, attribute, new)


def plug_unit(exercise: Exercise, student: Any) -> None:
    """In the grading worker: put the student's unit into minidl in place of the stub."""
    if exercise.module is None:
        return
    module = sys.modules.get(exercise.module) or importlib.import_module(exercise.module)
    old = getattr(module, exercise.unit, None)
    setattr(module, exercise.unit, student)
    if old is not None:
        _replace_everywhere(old, student)
    if exercise.id in _PLUGS:
        _PLUGS[exercise.id](student)


def _plug_engine(student: Any) -> None:
    """``Tensor.backward()`` in the worker runs the student's backward pass."""
    from minidl import autograd

    def _run_backward(root: Any, grad: Any, create_graph: bool) -> None:
        if create_graph:
            raise autograd.GradientError("create_graph=True is not part of the engine_backward "
                                         "exercise")
        student(root, grad)

    autograd._run_backward = _run_backward


_PLUGS: Dict[str, Callable[[Any], None]] = {"engine_backward": _plug_engine}
