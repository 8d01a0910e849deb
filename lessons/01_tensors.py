# %% [markdown]
# # Lesson 1 — Tensors, dtypes, broadcasting, CPU and GPU arrays
#
# **What you will learn**
# - what a minidl `Tensor` is: an array (NumPy on the CPU, CuPy on a GPU) plus what autograd needs;
# - why deep learning uses `float32`, and what that costs in precision;
# - NumPy's broadcasting rules, which every layer relies on (`X @ W + b`);
# - where a tensor lives (its *device*), and how minidl catches code that would only work on a CPU.
#
# **Key terms 关键术语**: tensor 张量 · shape 形状 · dtype 数据类型 · single/double precision
# 单精度/双精度 · broadcasting 广播 · matrix multiplication 矩阵乘法 · reduction 归约 ·
# device 设备 · host (CPU) memory 主机内存 · GPU memory 显存
#
# Run it as a script (`python lessons/01_tensors.py`) or open it as a notebook (jupytext).

# %%
import os

import numpy as np

import minidl as md
import minidl.functions as F

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # nothing here is slow; kept for symmetry

# %% [markdown]
# ## 1. Making tensors
#
# `md.tensor(data)` copies Python lists or NumPy arrays into a new tensor. Python floats become
# **float32** (as in PyTorch and Keras), Python integers **int64**; a NumPy array keeps its dtype.

# %%
a = md.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
ids = md.tensor([3, 1, 4])
b = md.tensor(np.arange(6, dtype=np.float64).reshape(2, 3))
for name, t in (("a", a), ("ids", ids), ("b", b)):
    print(f"{name}: shape {t.shape}, ndim {t.ndim}, dtype {t.dtype}, device {t.device!r}")
print(a)

# %% [markdown]
# `.data` is the raw array the tensor wraps; `.numpy()` gives a *copy* on the host, so changing
# it leaves the tensor alone.

# %%
host = a.numpy()
host[0, 0] = 100.0
print("type of a.data:", type(a.data).__name__, "| a[0, 0] is still", a[0, 0].item())

# %% [markdown]
# ## 2. Why float32, and what it costs
#
# A float32 has a 24-bit significand: the machine epsilon (the gap between 1 and the next
# representable number) is ε₃₂ = 2⁻²³ ≈ 1.19·10⁻⁷; for float64 it is ε₆₄ = 2⁻⁵² ≈ 2.2·10⁻¹⁶.
# Weights in float32 take half the memory and run about twice as fast (much faster on GPUs),
# and training noise is far larger than 10⁻⁷ anyway. But adding a tiny number to 1 can be lost:

# %%
for dtype in (np.float32, np.float64):
    eps = np.finfo(dtype).eps
    one = md.tensor(1.0, dtype=dtype)
    print(f"{np.dtype(dtype).name}: eps = {eps:.3g};  1 + 1e-8 = {(one + 1e-8).item()!r}")

# %% [markdown]
# In float32 the 10⁻⁸ is lost entirely. In Lesson 3 this matters: numerical gradient checks
# divide tiny differences by tiny steps, so they run in float64.
#
# Mixing dtypes follows NumPy's promotion rules: float32 combined with float64 gives float64
# (twice the memory, and slower), so keep one dtype throughout —
# `md.tensor(numpy_array, dtype="float32")` converts on the way in.

# %%
print("float32 * float64 ->", (a * b).dtype, "| float32 * Python float ->", (a * 0.5).dtype)

# %% [markdown]
# ## 3. Broadcasting 广播
#
# Operators work elementwise with NumPy's broadcasting rules. Line the shapes up **from the
# right**; two sizes fit if they are equal or one of them is 1; a missing axis counts as 1.
# The size-1 axes are stretched (without copying):
#
# ```
#   X   (4, 3)        batch of 4 rows, 3 features
#   b      (3,)       one bias per feature   ->  X + b  has shape (4, 3)
#   col (4, 1)        one value per row      ->  X * col has shape (4, 3)
# ```

# %%
X = md.tensor(np.arange(12, dtype=np.float32).reshape(4, 3))
bias = md.tensor([100.0, 200.0, 300.0])
col = md.tensor([[1.0], [-1.0], [2.0], [0.0]])
print("X + bias ->", (X + bias).shape)
print(X + bias)
print("X * col  ->", (X * col).shape)
print("(4,1) + (3,) ->", (col + bias).shape, " (both stretched: an outer sum)")

# %% [markdown]
# Shapes that do not fit raise a `ShapeError` that names the op and the shapes:

# %%
try:
    X + md.tensor([1.0, 2.0, 3.0, 4.0])  # (4, 3) + (4,): 3 vs 4 from the right
except md.ShapeError as error:
    print("ShapeError:", error)

# %% [markdown]
# The fix is usually to make the size-1 axis explicit: a per-row value needs shape `(4, 1)`.

# %%
per_row = md.tensor([1.0, 2.0, 3.0, 4.0]).reshape(4, 1)
print("X + per_row ->", (X + per_row).shape)

# %% [markdown]
# ## 4. Matrix products, reductions, reshaping
#
# `@` is the matrix product: `(n, k) @ (k, m) -> (n, m)`; leading axes broadcast, so a batch of
# matrices `(B, n, k) @ (k, m)` works too. This is the workhorse of every layer: a dense layer
# computes **Y = X W + b** for a batch X of shape (batch, in) and W of shape (in, out).

# %%
W = md.tensor(np.ones((3, 2), dtype=np.float32))
print("X @ W:", (X @ W).shape, "| batched (5, 4, 3) @ (3, 2):",
      (md.tensor(np.ones((5, 4, 3), dtype=np.float32)) @ W).shape)
print("sum over rows (axis=0):", X.sum(axis=0))
print("mean over columns, keepdims:", X.mean(axis=1, keepdims=True).shape)
print("max of all:", X.max().item())
print("reshape(3, 4):", X.reshape(3, 4).shape, "| transpose .T:", X.T.shape,
      "| indexing X[1:3, 0]:", X[1:3, 0])

# %% [markdown]
# `F` (`minidl.functions`) has the math functions: `F.exp`, `F.log`, `F.tanh`, `F.sigmoid`,
# `F.relu`, `F.softmax`, ... Softmax turns each row of scores into probabilities,
# softmax(z)ᵢ = exp(zᵢ − max z) / Σⱼ exp(zⱼ − max z) (the max is subtracted for stability):

# %%
p = F.softmax(md.tensor([[1.0, 2.0, 3.0], [1000.0, 1000.0, 1000.0]]), axis=-1)
print(p, "row sums:", p.sum(axis=1))

# %% [markdown]
# ## 5. Devices: CPU, GPU, and the strict CPU array 设备
#
# A tensor's data lives on a **device**: `'cpu'` (a NumPy array in host memory) or `'cuda'`
# (a CuPy array in GPU memory). Every minidl op asks its input which array module holds it
# (`xp = get_array_module(x)`: `numpy` or `cupy`) and calls `xp.exp`, `xp.matmul`, ..., so the
# same code runs on both. `.to(device)` copies a tensor over; the default device of new tensors
# comes from the environment variable `MINIDL_DEVICE`.

# %%
print("CUDA available:", md.cuda.is_available())
if md.cuda.is_available():
    g = a.to("cuda")
    print("on the GPU:", g.device, type(g.data).__module__, "->", (g * 2).sum().item())
else:
    print("no GPU here: tensors stay on the CPU (Lesson 12 shows what changes on a GPU)")

# %% [markdown]
# A GPU array will not silently copy itself to the host: CuPy raises on `np.asarray(gpu_array)`
# and on `gpu_array + numpy_array`. Code that mixes in NumPy arrays therefore works on a laptop
# and breaks on a GPU. minidl's third device, **`'strict'`**, is a CPU array that follows CuPy's
# rules, so such code fails on any machine:

# %%
s = a.to("strict")
print("strict tensor:", s.device, "->", (s * 2).sum().item(), "(tensor ops work)")
try:
    s.data + np.ones(3, dtype=np.float32)  # a host array mixed with "device" data
except TypeError as error:
    print("TypeError:", str(error)[:120], "...")
try:
    a + s  # two devices in one op
except md.DeviceError as error:
    print("DeviceError:", error)

# %% [markdown]
# **Summary.** A tensor is an array with a shape, a dtype (float32 by default) and a device.
# Broadcasting stretches size-1 axes, lined up from the right. Keep every array of a computation
# on one device; make new arrays with the data's own module (`xp`), never with `np` directly.
#
# **Exercises.** (1) Predict the shape of
# `md.tensor(np.ones((2, 1, 3))) + md.tensor(np.ones((4, 1)))`, then check. (2) Why does
# `X.sum(axis=1, keepdims=True)` broadcast against `X` but `X.sum(axis=1)` does not?
# (3) Find a float32 number x with `x + 1 == x`.
