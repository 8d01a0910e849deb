"""The list of exercises: what each one is, where its reference lives, and the hint the grader
gives when it fails.

The solution of each exercise is a region of the reference source between the comment lines
``# BEGIN EXERCISE <id>`` and ``# END EXERCISE``. The region's top-level class or function (its
*unit*, e.g. the class ``MatMul``) is copied into a file of the student kit, ``ex_<name>.py``. A
kit file may hold several units of one module, in the module's order, and so several exercises:
``ex_sigmoid.py`` holds the function ``sigmoid_array`` (exercise ``sigmoid_forward``) and the
class ``Sigmoid`` whose forward calls it (``sigmoid_backward``), as in the reference.
Adding an exercise = marking a region + adding an entry here + writing its check in ``checks.py``
(a test fails until all three agree).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class Exercise:
    """One exercise.

    Attributes:
        id: the name in the markers, the grader's output and the CSV column.
        title: one line for the kit's README and the grader's report.
        module: the module holding the reference solution (and the markers).
        unit: the top-level class or function around the region; the kit file defines it.
        file: the kit file (it holds one or more units of ``module``).
        task: what to write, in one line; it becomes the comment above the stub.
        hint: the formula or the usual mistake, shown with a failure.
    """

    id: str
    title: str
    module: str
    unit: str
    file: str
    task: str
    hint: str


EXERCISES: Tuple[Exercise, ...] = (
    Exercise(
        id="sigmoid_forward",
        title="the logistic sigmoid σ(x) on an array, stable for any x",
        module="minidl.functions.elementwise", unit="sigmoid_array", file="ex_sigmoid.py",
        task="return y = σ(x) = 1/(1 + e⁻ˣ) with x's shape and dtype, written into `out` when "
             "it is given; no overflow for any x, and x itself stays unchanged",
        hint="e⁻ˣ overflows for x < −88 in float32, so use the equal form σ(x) = "
             "0.5·tanh(x/2) + 0.5 (or first raise x to at least −88, where σ is below 1e-38). "
             "Start with y = xp.multiply(x, 0.5, out=out): a new array when out is None, out "
             "otherwise (x is left alone); then keep working in y with out=y, y *= ..., y += "
             ".... Use xp = backend.get_array_module(x) rather than numpy, so it also runs on "
             "a GPU."),
    Exercise(
        id="sigmoid_backward",
        title="the sigmoid's backward: dσ/dx = σ(1 − σ)",
        module="minidl.functions.elementwise", unit="Sigmoid", file="ex_sigmoid.py",
        task="return the gradient of x: gy times dσ/dx = y(1 − y), with y saved by forward",
        hint="dx = gy ⊙ y ⊙ (1 − y) where y = σ(x) is what forward saved "
             "(y, = self.saved_tensors)."),
    Exercise(
        id="sum_to",
        title="sum_to: undo broadcasting (the backward of every broadcasting op)",
        module="minidl.functions.shape", unit="_sum_to_array", file="ex_sum_to.py",
        task="sum g over the axes that broadcasting added (leading) or stretched (size 1 in "
             "shape) and return an array of exactly `shape`; e.g. g (4, 2, 3) and shape (2, 1): "
             "sum over axes 0 and 2, giving (2, 1)",
        hint="Broadcasting aligns shapes on the right: sum the lead = g.ndim − len(shape) "
             "leading axes, and every axis i where shape[i] == 1 but g's matching axis is "
             "longer; then reshape to `shape` (keepdims, or .reshape(shape))."),
    Exercise(
        id="matmul_backward",
        title="matmul's backward, with broadcast leading axes",
        module="minidl.functions.matmul", unit="MatMul", file="ex_matmul.py",
        task="return (dA, dB) for Y = A @ B: dA = dY @ Bᵀ, dB = Aᵀ @ dY, summed back to the "
             "shapes of A and B",
        hint="dA = dY @ Bᵀ and dB = Aᵀ @ dY, transposing the last two axes "
             "(.swapaxes(-1, -2)); when A or B was broadcast over leading axes, "
             "sum_to(grad, a.shape) sums them back."),
    Exercise(
        id="linear_forward",
        title="nn.Linear.forward: y = x @ W + b",
        module="minidl.nn.layers", unit="Linear", file="ex_linear.py",
        task="return y = x @ W + b with the layer's parameters self.W and self.b "
             "(self.b is None when bias=False)",
        hint="y = x @ self.W + self.b, with Tensor operations so that gradients flow "
             "(F.linear(x, self.W, self.b) does it in one op); with bias=False, self.b is None."),
    Exercise(
        id="softmax_cross_entropy_backward",
        title="the fused softmax cross-entropy's backward: softmax − onehot",
        module="minidl.functions.loss", unit="SoftmaxCrossEntropy",
        file="ex_softmax_cross_entropy.py",
        task="return dℓ/dx (N, C) = (softmax(x) − onehot(target)) · gy[:, None] · keep[:, None]",
        hint="softmax(x) = exp(self.log_p); subtract 1 at [row, self.target[row]] for each "
             "row; multiply row n by gy[n] (the upstream gradient) and by self.keep[n], which "
             "is 0 for ignored targets."),
    Exercise(
        id="lstm_cell_forward",
        title="one LSTM step (nn.LSTMCell.forward), gates in the order i, f, g, o",
        module="minidl.nn.recurrent", unit="LSTMCell", file="ex_lstm_cell.py",
        task="return (h', c') for one step: z = x W_x + h W_h + b, gates i, f, g, o, "
             "c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c')",
        hint="z = x @ W_x + h @ W_h + b has four blocks of H columns in the order i, f, g, o; "
             "i, f and o use σ, only g uses tanh; c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')."),
    Exercise(
        id="lstm_cell_backward",
        title="one LSTM step's backward, written by hand",
        module="minidl.exercises.lstm_cell_function", unit="LSTMCellFunction",
        file="ex_lstm_cell_function.py",
        task="return (dx, dh, dc, dW_x, dW_h, db) from the gradients of h' and c'",
        hint="dc' gets two shares: grad_c + grad_h ⊙ o ⊙ (1 − tanh²c'); do = grad_h ⊙ tanh c'; "
             "di = dc'⊙g, df = dc'⊙c, dg = dc'⊙i; dz = [di·i(1−i), df·f(1−f), dg·(1−g²), "
             "do·o(1−o)] in the order i, f, g, o; then dx = dz W_xᵀ, dh = dz W_hᵀ, "
             "dc = dc' ⊙ f, dW_x = xᵀ dz, dW_h = hᵀ dz, db = Σ dz over the batch."),
    Exercise(
        id="adam_step",
        title="the Adam update with bias correction (PyTorch's rule)",
        module="minidl.optim.adam", unit="Adam", file="ex_adam.py",
        task="update the moments m and v in place and the parameter p.data, as the class "
             "docstring says (both ε placements: group['epsilon_hat'])",
        hint="m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; m̂ = m/(1−β₁ᵗ); v̂ = v/(1−β₂ᵗ); "
             "θ ← θ − lr·m̂/(√v̂ + ε); with epsilon_hat: θ ← θ − lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε). "
             "Update m and v in place (m *= β₁ ...) so the state persists between steps."),
    Exercise(
        id="pad_sequences",
        title="pad_sequences: pad or cut token lists to one length (Keras' semantics)",
        module="minidl.data.text", unit="pad_sequences", file="ex_pad_sequences.py",
        task="build the (len(sequences), maxlen) + sample_shape array filled with `value`, "
             "then copy each (truncated) sequence in, before or after the padding",
        hint="truncating='pre' keeps the last maxlen items (s[-maxlen:]), 'post' the first "
             "(s[:maxlen]); padding='pre' writes them at the end of the row "
             "(x[row, maxlen − len(kept):]), 'post' at the start; empty sequences stay all "
             "`value`; cast to `dtype`."),
)


def by_id() -> Dict[str, Exercise]:
    """The exercises keyed by id."""
    return {e.id: e for e in EXERCISES}


def kit_files() -> Dict[str, List[Exercise]]:
    """Kit file name -> the exercises in it, in the kit's order."""
    files: Dict[str, List[Exercise]] = {}
    for e in EXERCISES:
        files.setdefault(e.file, []).append(e)
    return files
