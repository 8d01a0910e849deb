# %% [markdown]
# # Lesson 12 — Running everything on a GPU with CuPy
#
# **What you will learn**
# - how minidl runs the same code on a CUDA GPU: CuPy arrays instead of NumPy arrays, chosen per
#   tensor and per model with `.to('cuda')` (or `MINIDL_DEVICE=cuda`);
# - the mistakes that work on a CPU and break on a GPU, and the `'strict'` device that catches
#   them on any machine;
# - what changes in speed, and why: a timed LSTM training step on the CPU — and on the GPU,
#   when there is one.
#
# This lesson runs anywhere. Without a GPU it says so, runs the CPU and strict paths, and
# prints only what it measured.
#
# **Key terms 关键术语**: GPU 图形处理器 · CUDA · host memory 主机内存 · device (GPU) memory
# 显存 · data transfer 数据传输 · kernel 核函数 · kernel launch overhead 启动开销 ·
# synchronisation 同步 · throughput 吞吐量 · latency 延迟 · speed-up 加速比

# %%
import os
import time

import numpy as np

import minidl as md
import minidl.functions as F
from minidl import nn, optim
from minidl.backend import get_array_module

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": bigger batches, where GPUs shine
SHAPES = {"small": [(32, 50, 64)], "large": [(32, 50, 64), (128, 50, 256), (256, 50, 512)]}[SIZE]
REPEATS = {"small": 5, "large": 2}[SIZE]
md.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Is there a GPU?
#
# `md.cuda.is_available()` is True when CuPy is installed (`pip install "minidl[gpu]"`, i.e.
# `cupy-cuda12x`) *and* a CUDA device can be used. Importing minidl never touches the GPU.

# %%
HAS_GPU = md.cuda.is_available()
print("CUDA available:", HAS_GPU)
if HAS_GPU:
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print("device:", name, f"| {props['totalGlobalMem'] / 2 ** 30:.0f} GiB")
else:
    print("No GPU here: the CPU and 'strict' parts below still run; the GPU timings are skipped.")

# %% [markdown]
# ## 2. One code path, two array modules
#
# A tensor's `.data` is a `numpy.ndarray` on `'cpu'` and a `cupy.ndarray` on `'cuda'`. Every op
# asks its inputs which module holds them, `xp = get_array_module(x)`, and calls `xp.exp`,
# `xp.matmul`, ...; CuPy copies NumPy's API, so the op's code is the same for both. Moving data:
#
# ```python
# x = md.tensor(batch).to("cuda")     # host -> device copy
# model.to("cuda")                    # every parameter, in place (optimizers keep working)
# loss.item(), y.numpy()              # device -> host copies (they wait for the GPU)
# ```
#
# or set the default device of new tensors with the environment variable `MINIDL_DEVICE=cuda`.
# Keras-style models move the same way (`model.to('cuda')`), and `transfer.pretrain` /
# `fine_tune` / `predict_proba` move each batch to the model's device.
#
# ## 3. Code that works on a CPU and breaks on a GPU
#
# A GPU array lives in GPU memory, and CuPy refuses to convert it to a NumPy array behind your
# back: `np.asarray(gpu_array)` and `gpu_array + numpy_array` raise `TypeError`. So any code that
# quietly mixes in NumPy — a constant made with `np.ones`, a mask computed with `np.where`, a
# `np.asarray(t.data)` — runs on a laptop and fails on the GPU machine. minidl's `'strict'`
# device is a CPU array that follows CuPy's rules, so such code fails everywhere, including in
# CI. Two versions of the same custom op, "scale each feature by its index + 1":

# %%
def scale_features_numpy(x: md.Tensor) -> md.Tensor:
    """Works only on the CPU: the constant is a NumPy array, whatever x's device."""
    return x * md.tensor(np.arange(1, x.shape[-1] + 1, dtype=np.float32))


def scale_features_raw(x: md.Tensor) -> md.Tensor:
    """Works only on the CPU: raw device data multiplied by a host array."""
    return md.Tensor(x.data * np.arange(1, x.shape[-1] + 1, dtype=np.float32))


def scale_features_xp(x: md.Tensor) -> md.Tensor:
    """Works on every device: the constant is made by x's own array module, on x's device."""
    xp = get_array_module(x.data)
    return x * md.Tensor(xp.arange(1, x.shape[-1] + 1, dtype=x.dtype))


for device in ("cpu", "strict") + (("cuda",) if HAS_GPU else ()):
    x = md.tensor(np.ones((2, 3), dtype=np.float32), device=device)
    for fn in (scale_features_numpy, scale_features_raw, scale_features_xp):
        try:
            result = fn(x)
            print(f"{device:6} {fn.__name__:22} ok: {result.numpy()[0]}")
        except (TypeError, md.DeviceError) as error:
            print(f"{device:6} {fn.__name__:22} {type(error).__name__}: {str(error)[:70]}...")

# %% [markdown]
# Both NumPy versions are refused on `'strict'` exactly as they would be on `'cuda'`: mixing
# tensors of two devices is a `DeviceError` that names them, and mixing raw arrays is the
# `TypeError` CuPy raises. The rule: **make arrays with the data's own module** (`xp`), or
# move them explicitly with `.to(device)`.
#
# minidl's own test suite runs every op through `'strict'`, and a whole model runs there too —
# forward, backward and an optimizer step:

# %%
model = nn.Sequential(nn.Embedding(100, 16), nn.Flatten(), nn.Linear(16 * 10, 2)).to("strict")
optimizer = optim.Adam(model.parameters(), lr=1e-2)
ids = rng.integers(0, 100, size=(8, 10))
loss = F.cross_entropy(model(ids), rng.integers(0, 2, size=8))
optimizer.zero_grad()
loss.backward()
optimizer.step()
print("a training step on 'strict': loss", round(loss.item(), 4), "| parameters on",
      {p.device for p in model.parameters()})

# %% [markdown]
# ## 4. What changes in speed
#
# A training step of the kind used in Lessons 9–11: Embedding → LSTM → Linear on a batch of
# token ids, cross-entropy, backward, Adam. Timing rules: warm up first (the first steps
# allocate memory and, on a GPU, compile kernels), then average several steps. On a GPU the
# host only *queues* work, so a timer must wait for it to finish: `loss.item()` copies the
# loss to the host, which waits for every queued kernel.

# %%
class TinyLSTMClassifier(nn.Module):
    def __init__(self, vocab: int, hidden: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden)
        self.head = nn.Linear(hidden, 2)

    def forward(self, ids):
        _, (h, _) = self.lstm(self.embedding(ids))
        return self.head(h)


def ms_per_step(device: str, batch: int, steps_in_time: int, hidden: int,
                repeats: int = REPEATS) -> float:
    md.manual_seed(0)
    model = TinyLSTMClassifier(1000, hidden).to(device)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    ids = md.tensor(rng.integers(1, 1000, size=(batch, steps_in_time)), device=device)
    labels = md.tensor(rng.integers(0, 2, size=batch), device=device)

    def step() -> float:
        loss = F.cross_entropy(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device

    step()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1000


timings = []
for batch, length, hidden in SHAPES:
    row = {"shape": f"batch {batch}, {length} steps, {hidden} units",
           "cpu": ms_per_step("cpu", batch, length, hidden)}
    if HAS_GPU:
        row["cuda"] = ms_per_step("cuda", batch, length, hidden)
    timings.append(row)
for row in timings:
    line = f"{row['shape']:<32} CPU {row['cpu']:8.1f} ms/step"
    if "cuda" in row:
        line += f"   GPU {row['cuda']:7.1f} ms/step   speed-up ×{row['cpu'] / row['cuda']:.1f}"
    print(line)
if not HAS_GPU:
    print("(GPU not available: no GPU timings were measured, so none are shown.)")

# %% [markdown]
# **Why a GPU helps, and when it does not.**
#
# - Every op on a GPU is a *kernel launch*, with a fixed cost of several microseconds on the
#   host, however small the arrays. An LSTM step is a few dozen ops per time step; for small
#   batches and hidden sizes the GPU mostly waits for the host to launch kernels, and the
#   speed-up is modest (it can even be a slow-down).
# - The time of a CPU step grows with batch × hidden² (the matmuls), while the GPU's stays
#   nearly flat until its thousands of cores are busy. So the speed-up grows with the batch
#   size and the layer width — compare the rows of `SIZE = "large"`.
# - Copies between host and device go over PCIe and are slow compared with GPU memory: move
#   the model once, send each batch once, and avoid `.item()` / `.numpy()` inside the inner
#   loop except where you need the number (each one also forces a wait).
# - float32 is the GPU's native precision; float64 is many times slower on most GPUs (a
#   reason, besides memory, for the float32 default of Lesson 1).
#
# On the CPU, NumPy's matrix products use a BLAS library that may start several threads.
# On a machine with few cores shared with other work, extra threads can slow small matmuls
# down; `OPENBLAS_NUM_THREADS=1` (or `OMP_NUM_THREADS=1`) before starting Python is the
# standard remedy, and worth timing both ways.
#
# **To run the course on a GPU**: `pip install "minidl[gpu]"`, then
# `MINIDL_DEVICE=cuda python lessons/09_text_classifier.py` (or `.to('cuda')` in your own code),
# and check the installation with `MINIDL_DEVICE=cuda MINIDL_REQUIRE_GPU=1 python -m pytest -q`.
#
# **Summary.** Same code, two array modules: keep every array of a computation on one device,
# create new arrays with `xp`, move data explicitly, and let `'strict'` catch the exceptions on
# machines without a GPU. Time with warm-up and synchronisation, and expect GPU speed-ups to
# grow with the size of the work per op.
#
# **Exercises.** (1) Find the batch size at which the GPU becomes faster than the CPU for
# `hidden = 64` (on a GPU machine). (2) Move `ids` to the device inside `step()` instead of
# once: how much does the copy cost? (3) Run Lesson 4 with `MINIDL_DEVICE=strict`: does it
# pass, and if not, which line breaks?
