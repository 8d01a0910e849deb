# %% [markdown]
# # Lesson 3 — Checking gradients numerically
#
# **What you will learn**
# - the central-difference formula, and how to compare it with `backward()`;
# - why the check must run in **float64** (a plot of the error against the step size shows it);
# - why the check uses a **random upstream gradient** and not `y.sum()`: a planted transpose
#   bug that `sum()` cannot see;
# - how to check your own `Function` and a whole layer with `md.gradcheck`.
#
# **Key terms 关键术语**: numerical gradient 数值梯度 · finite difference 有限差分 ·
# central difference 中心差分 · gradient checking 梯度检验 · truncation error 截断误差 ·
# rounding error 舍入误差 · float64 double precision 双精度 · upstream gradient 上游梯度 ·
# directional derivative 方向导数

# %%
import os
import tempfile

import numpy as np
from matplotlib.figure import Figure

import minidl as md
import minidl.functions as F
from minidl import nn
from minidl.backend import get_array_module
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # nothing here is slow
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson03-")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The central difference
#
# For a scalar function L of one number x,
#
#   ∂L/∂x ≈ (L(x + ε) − L(x − ε)) / 2ε,
#
# with an error of order ε² (Taylor: the ε² terms cancel, the ε³ term remains) — the
# **truncation error**. But L is computed in floating point, and each value carries a
# **rounding error** of about ε_mach·|L|; dividing by 2ε magnifies it to ≈ ε_mach·|L|/ε.
# The total error ≈ c₁ε² + c₂ ε_mach/ε is smallest near ε ≈ ε_mach^(1/3):
# about 5·10⁻³ for float32 (ε_mach ≈ 1.2·10⁻⁷), 6·10⁻⁶ for float64 (ε_mach ≈ 2.2·10⁻¹⁶).
# Let us measure it for tanh, whose exact derivative is 1 − tanh²x, at 41 points x in [−2, 2]
# (tanh works elementwise, so one call differentiates all of them), and take the median error.

# %%
def central_difference(fn, x0: np.ndarray, eps: float, dtype: str) -> np.ndarray:
    plus = fn(md.tensor(x0 + eps, dtype=dtype)).numpy().astype(np.float64)
    minus = fn(md.tensor(x0 - eps, dtype=dtype)).numpy().astype(np.float64)
    return (plus - minus) / (2 * eps)


points = np.linspace(-2, 2, 41)
exact = 1 - np.tanh(points) ** 2
steps = np.logspace(-10, -1, 28)
errors = {dtype: np.array([np.median(np.abs(central_difference(F.tanh, points, eps, dtype) - exact))
                           for eps in steps]) for dtype in ("float32", "float64")}
at_1e6 = int(np.argmin(np.abs(steps - 1e-6)))
for dtype, errs in errors.items():
    best = int(np.argmin(errs))
    print(f"{dtype}: smallest median error {errs[best]:.1e} at eps = {steps[best]:.0e}; "
          f"at eps = 1e-6 it is {errs[at_1e6]:.1e}")

figure = Figure(figsize=(5.5, 3.8))  # matplotlib without pyplot: no window, works anywhere
axes = figure.add_subplot(1, 1, 1)
for dtype, errs in errors.items():
    axes.loglog(steps, errs, "o-", label=dtype)
axes.set_xlabel("step ε")
axes.set_ylabel("median |numerical − exact|")
axes.set_title("Central-difference error of tanh'")
axes.grid(alpha=0.3)
axes.legend()
figure.tight_layout()
print("plot:", show(figure, os.path.join(OUT, "lesson03_eps.png")))

# %% [markdown]
# The V shapes are the two errors meeting: on the right truncation (∝ ε²), on the left rounding
# (∝ 1/ε). You should see float32 bottom out around 10⁻⁶, near ε ≈ 5·10⁻³, and float64 around
# 10⁻¹¹, near ε ≈ 10⁻⁵ — six orders of magnitude apart. At ε = 10⁻⁶ float32 is off by about
# 10⁻², as large as many real gradient bugs. A checker must separate "right up to rounding"
# from "slightly wrong" with room to spare, so `md.gradcheck` casts everything to float64 and
# uses ε = 10⁻⁶ with a tolerance of 10⁻⁵ + 10⁻³·|numerical|.
#
# ## 2. Why a random upstream gradient
#
# A Function with output y has a whole Jacobian; `backward(ḡ)` computes ḡᵀ·∂y/∂x. A check of
# L = y.sum() only ever tests ḡ = (1, 1, …, 1) — and some bugs give the right answer for that
# one vector. Here is a transpose whose backward forgot to transpose the gradient back:

# %%
class BuggyTranspose(md.Function):
    """y = xᵀ for a square matrix. The backward should return gyᵀ — it returns gy."""

    def forward(self, x):
        return x.T.copy()

    def backward(self, gy):
        return gy  # BUG: should be gy.T


def sum_check(fn, x: md.Tensor, eps: float = 1e-6) -> float:
    """The naive check: compare backward() of fn(x).sum() with central differences; returns
    the largest difference."""
    x.grad = None
    fn(x).sum().backward()
    numerical = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        original = x.data[index]
        x.data[index] = original + eps
        plus = fn(x).sum().item()
        x.data[index] = original - eps
        minus = fn(x).sum().item()
        x.data[index] = original
        numerical[index] = (plus - minus) / (2 * eps)
    return float(np.abs(numerical - x.grad.numpy()).max())


square = md.tensor(rng.standard_normal((3, 3)), dtype="float64", requires_grad=True)
print("sum() check, largest difference:", sum_check(lambda m: BuggyTranspose()(m), square))

# %% [markdown]
# The sum check passes: with ḡ all ones, ḡ and ḡᵀ are the same matrix. `md.gradcheck` uses
# L = Σ g ⊙ y for a **random** g (fixed by a seed), so the bug shows, and the error names the
# input, the worst element and both values:

# %%
try:
    md.gradcheck(lambda m: BuggyTranspose()(m), square)
except md.GradcheckError as error:
    print("GradcheckError:", error)

# %% [markdown]
# Not every bug hides from `sum()`. Here is a matrix product whose backward uses B where Bᵀ
# belongs — the classic mistake, and the kit exercise `matmul_backward`. With ḡ all ones, the
# right gradient of A has the row sums of B in every row, the buggy one its column sums; they
# differ unless B is symmetric, so the sum check sees it:

# %%
class BuggyMatMul(md.Function):
    """Y = A @ B. The backward should return (gy @ Bᵀ, Aᵀ @ gy) — it uses B, not Bᵀ."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, gy):
        a, b = self.saved_tensors
        return gy @ b, a.T @ gy  # BUG: gy @ b should be gy @ b.T


fixed_B = md.tensor(rng.standard_normal((3, 3)), dtype="float64")
print("sum() check of B for Bᵀ, largest difference:",
      round(sum_check(lambda m: BuggyMatMul()(m, fixed_B), square), 3))

# %% [markdown]
# What `sum()` cannot see is exactly the bugs that agree with the right answer on ḡ = 1: the
# transposed square gradient above, or a gradient that is right up to a permutation of
# equal-sized axes. A random ḡ sees those too; it costs nothing extra, so always use one.
#
# By default `md.gradcheck` is *directional* (as Chainer's `check_backward`): for each input it
# draws one random direction d and compares the numerical directional derivative
# (L(x + εd) − L(x − εd)) / 2ε with ⟨∂L/∂x, d⟩ — two extra forward passes per input instead of
# two per element. Only when that disagrees does it go element by element to name the culprit.
#
# ## 3. Checking your own Function
#
# softplus(x) = ln(1 + eˣ), with derivative σ(x). A stable forward: ln(1 + eˣ) =
# max(x, 0) + ln(1 + e^(−|x|)), which never exponentiates a large positive number.

# %%
class Softplus(md.Function):
    """y = ln(1 + eˣ).   dy/dx = σ(x)."""

    differentiable_backward = False  # backward below works on raw arrays only (see note)

    def forward(self, x):
        xp = get_array_module(x)
        self.save_for_backward(x)
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):
        x, = self.saved_tensors
        xp = get_array_module(x)
        return gy * (xp.tanh(x * 0.5) * 0.5 + 0.5)  # σ(x), in its stable tanh form


v = md.tensor(rng.standard_normal((4, 5)) * 3, dtype="float64", requires_grad=True)
print("Softplus passes:", md.gradcheck(lambda z: Softplus()(z), v))
print("softplus(1000) =", Softplus()(md.tensor([1000.0])).item(), "(no overflow)")

# %% [markdown]
# Note the `xp = get_array_module(x)`: the same code then runs on NumPy or CuPy arrays
# (Lesson 12). The backward computes on raw arrays, so it cannot be differentiated a second
# time; `differentiable_backward = False` makes `create_graph=True` (Lesson 2) say so instead
# of failing obscurely. minidl's own ops write their backward with operators that arrays and
# Tensors share, so most of them *are* twice differentiable.
#
# ## 4. Checking a layer: gradients with respect to its weights
#
# `wrt=` takes tensors the function uses without receiving them as arguments — a module's
# parameters. They are cast to float64 for the check and restored afterwards. Here: one LSTM
# step (Lesson 8), with respect to the input, the state and all three weight matrices.

# %%
md.manual_seed(0)
cell = nn.LSTMCell(3, 4)
xs = md.tensor(rng.standard_normal((2, 3)), dtype="float64", requires_grad=True)
h0 = md.tensor(rng.standard_normal((2, 4)), dtype="float64", requires_grad=True)
c0 = md.tensor(rng.standard_normal((2, 4)), dtype="float64", requires_grad=True)
print("LSTMCell passes:", md.gradcheck(lambda a, h, c: cell(a, (h, c)), xs, h0, c0,
                                        wrt=dict(cell.named_parameters())))
print("weights restored to", cell.W_x.dtype)

# %% [markdown]
# **Summary.** Compare backward() with central differences, in float64, with ε ≈ 10⁻⁶, against
# a random upstream gradient. Every Function and every layer in minidl is checked this way in
# its tests (`tests/test_ops.py`, `tests/test_nn.py`).
#
# **Exercises.** (1) Run `md.gradcheck` on `BuggyTranspose` with `mode='elementwise'`. (2) Write
# a `Square` Function whose backward returns `gy * x` (forgot the 2); which check catches it,
# `sum_check` or `md.gradcheck`? (Both — why is this bug different from the transpose?)
# (3) Check `F.softmax` along `axis=0` of a (3, 4) matrix.
#
# **Kit exercise for this lesson**: `matmul_backward` (`minidl exercises export kit/`, then
# `minidl grade kit/`).
