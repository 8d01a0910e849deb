# %% [markdown]
# # Lesson 16 — Data parallelism: one model, many processes (数据并行)
#
# **What you will learn**
# - why N processes, each computing the gradient of its *shard* of a batch, and then averaging,
#   take exactly the step one process takes with the whole batch — shown with numbers;
# - the **all-reduce** that does the averaging: what it computes, and the ring algorithm that
#   makes its cost per process almost independent of the number of processes;
# - running it for real: `mpiexec -n 2` starts two processes that train one model with
#   `minidl.distributed`, and their weights match one process's to float32 round-off;
# - what communication costs (latency α, bandwidth β), measured between the two processes, and
#   what that predicts for 8 processes or 8 GPUs.
#
# This lesson runs two processes with `mpiexec` when mpi4py is installed
# (`pip install "minidl[dist]"`); without it, it says so and runs everything else.
#
# **Key terms 关键术语**: data parallelism 数据并行 · process / rank 进程 / 进程编号 ·
# world size 进程总数 · shard 分片 · global batch 全局批量 · gradient averaging 梯度平均 ·
# all-reduce 全归约 · broadcast 广播 · ring all-reduce 环形全归约 · reduce-scatter 归约散射 ·
# all-gather 全收集 · latency 延迟 · bandwidth 带宽 · bucket 梯度桶 · MPI 消息传递接口 ·
# NCCL · communication overhead 通信开销 · speed-up 加速比 · synchronous SGD 同步随机梯度下降

# %%
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from matplotlib.figure import Figure

import minidl as md
import minidl.functions as F
from minidl import distributed, nn
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")
CONFIG = {"small": dict(epochs=2, batch=64, hidden=64),      # seconds
          "large": dict(epochs=10, batch=64, hidden=256)}[SIZE]
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson16-")
os.makedirs(OUT, exist_ok=True)
md.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The gradient of a batch is the average of its shards' gradients
#
# The loss of a batch of B samples is a **mean**, L = (1/B) Σᵢ ℓᵢ, so its gradient is the mean
# of the samples' gradients. Cut the batch into shards S₁ … S_N of sizes n₁ … n_N, and let
# process r compute the mean loss of its shard, L_r = (1/n_r) Σ_{i∈S_r} ℓᵢ. Then
#
#   ∇L = (1/B) Σᵢ ∇ℓᵢ = Σ_r (n_r / B) · ∇L_r
#
# — the shards' gradients averaged, each weighted by its share of the batch (a plain mean when
# the shards are equal). Every process then holds the batch's gradient, takes the same
# optimizer step, and the copies of the model stay identical. This is **synchronous data
# parallelism**: N processes compute one step of batch B in the time one takes for B/N.
#
# The same numbers in minidl, for a small network and a batch of 8 split 5 + 3:

# %%
def small_network(seed: int = 0) -> nn.Module:
    md.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


x = rng.normal(size=(8, 6)).astype("float32")
labels = rng.integers(0, 3, size=8)


def gradients(rows: slice) -> list:
    """∂(mean cross-entropy over x[rows]) / ∂θ for the same starting weights."""
    network = small_network()
    F.cross_entropy(network(md.tensor(x[rows])), labels[rows]).backward()
    return [p.grad.numpy() for p in network.parameters()]


whole = gradients(slice(0, 8))
first, second = gradients(slice(0, 5)), gradients(slice(5, 8))
weighted = [(5 * a + 3 * b) / 8 for a, b in zip(first, second)]
plain = [(a + b) / 2 for a, b in zip(first, second)]
print("max |∇L − (5/8 ∇L₁ + 3/8 ∇L₂)| =",
      f"{max(np.abs(w - g).max() for w, g in zip(weighted, whole)):.1e}  (float32 round-off)")
print("max |∇L − (∇L₁ + ∇L₂)/2|       =",
      f"{max(np.abs(p - g).max() for p, g in zip(plain, whole)):.1e}  "
      f"(unequal shards need weights)")

# %% [markdown]
# Two details make this exact in practice. **Every process must draw the same batch**: the
# epoch's order is seeded identically (or drawn by one process and sent to the others), and
# each takes its own part (`distributed.DistributedSampler`, `shard_bounds`). And **every
# process must start from the same weights**: rank 0's are copied to the others at the start
# (a *broadcast*). Dropout masks are the one thing that differs: each process draws its own,
# which is the same training in distribution, not bit for bit.
#
# ## 2. All-reduce 全归约, and the ring
#
# The averaging is a collective operation called **all-reduce**: every process contributes an
# array, and every process receives the sum (then divided by the total weight). How is it done?
#
# *Naively*, each of the N processes sends its whole gradient (S bytes) to every other: each
# sends (N−1)·S bytes, which grows with N. The **ring all-reduce** (Baidu 2017, used by NCCL
# and MPI for large arrays) arranges the processes in a ring and cuts each array into N chunks:
#
# 1. **reduce-scatter** (归约散射), N−1 rounds: in each round every process sends one chunk to
#    its right neighbour, which adds it to its own copy of that chunk. Afterwards process r
#    holds the complete sum of one chunk.
# 2. **all-gather** (全收集), N−1 rounds: the completed chunks travel once around the ring.
#
# Each process sends 2(N−1) chunks of S/N bytes — **2(N−1)/N · S**, less than 2S however many
# processes there are. Here it is on arrays in one Python process, N = 4 "ranks":

# %%
def ring_all_reduce(arrays: list) -> tuple:
    """The sum of ``arrays`` (one 1-D array per rank) on every rank, by the ring algorithm.
    Returns (each rank's result, bytes each rank sent)."""
    n = len(arrays)
    chunks = [np.array_split(a.astype(np.float64), n) for a in arrays]
    sent = [0] * n
    for step in range(n - 1):                          # reduce-scatter
        outgoing = [(r, (r - step) % n, chunks[r][(r - step) % n].copy()) for r in range(n)]
        for r, c, data in outgoing:
            chunks[(r + 1) % n][c] += data
            sent[r] += data.nbytes
    for step in range(n - 1):                          # all-gather
        outgoing = [(r, (r + 1 - step) % n, chunks[r][(r + 1 - step) % n].copy())
                    for r in range(n)]
        for r, c, data in outgoing:
            chunks[(r + 1) % n][c] = data
            sent[r] += data.nbytes
    return [np.concatenate(c) for c in chunks], sent


ranks = [rng.normal(size=1000) for _ in range(4)]
results, sent = ring_all_reduce(ranks)
print("every rank holds the sum:", all(np.allclose(res, sum(ranks)) for res in results))
size = ranks[0].nbytes
print(f"bytes sent per rank: ring {sent[0]:,} = 2(N−1)/N·S = {2 * 3 / 4 * size:,.0f}; "
      f"naive (N−1)·S = {3 * size:,}")

# %% [markdown]
# **Latency and buckets.** Every message also costs a fixed time α (the *latency*: software,
# then the wire), on top of its size divided by the *bandwidth* β. A model has dozens of
# parameter arrays; one all-reduce per array would pay α dozens of times per step. minidl's
# `DistributedDataParallel` copies all gradients into a few flat **buckets** of up to 25 MB
# (PyTorch's default) and all-reduces those: the same bytes, a few latencies.
#
# ## 3. The real thing: two processes
#
# `mpiexec -n 2 python script.py` starts the script twice. Each copy is a **rank** (0 and 1)
# of a job of **world size** 2, and finds out which from the environment that `mpiexec` sets.
# Under it, `minidl.training.fit` trains data-parallel with no change to the call: the
# `batch_size` is the global batch, each rank computes on its half, the gradients are
# all-reduced (MPI between the processes; NCCL between GPUs), and only rank 0 prints and
# writes files. In this notebook, a process on its own, the same code is a job of one rank:

# %%
comm = distributed.init()
print(comm, "| main process:", distributed.is_main_process())

# %% [markdown]
# The script below trains an MLP on the digits of Lesson 4 with `fit`. This lesson writes it
# to a file, runs it here in one process, then under `mpiexec -n 2`, and compares the weights.
# After training, the two processes also time all-reduces of growing size (section 4).

# %%
SCRIPT = '''\
"""Train an MLP on the digits with fit(); under mpiexec -n N it runs data-parallel."""
import sys
import time

import numpy as np

import minidl as md
import minidl.functions as F
from minidl import distributed, nn, optim
from minidl.data.datasets import load_digits
from minidl.training import fit


def train(epochs, batch_size, hidden):
    X, y = load_digits(split="train")
    md.manual_seed(0)                       # the same initial weights (rank 0's are sent too)
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    md.manual_seed(1)                       # the shuffling (rank 0 draws, all ranks use it)
    started = time.perf_counter()
    history = fit(model, F.cross_entropy, optimizer, X, y, batch_size=batch_size,
                  epochs=epochs, verbose=0)
    return model, history.history, time.perf_counter() - started


def all_reduce_times(sizes, repeats=20):
    """The slowest rank's best time to all-reduce float32 arrays of each size (bytes)."""
    comm = distributed.get_comm()
    times = []
    for nbytes in sizes:
        buffer = np.ones(nbytes // 4, dtype=np.float32)
        best = float("inf")
        for _ in range(repeats):
            comm.barrier()
            started = time.perf_counter()
            comm.all_reduce(buffer)
            best = min(best, time.perf_counter() - started)
        times.append(comm.all_reduce(np.array([best]), "max")[0])
    return times


if __name__ == "__main__":
    out, epochs, batch_size, hidden = sys.argv[1], *map(int, sys.argv[2:5])
    model, history, seconds = train(epochs, batch_size, hidden)
    sizes = [4 * 4 ** k for k in range(11)]          # 4 bytes ... 4 MiB
    times = all_reduce_times(sizes)
    if distributed.is_main_process():               # rank 0 writes the file
        md.save({"weights": model.state_dict(), "history": history, "seconds": seconds,
                 "sizes": sizes, "times": times,
                 "ranks": distributed.get_world_size()}, out)
'''
script = os.path.join(OUT, "lesson16_train_digits.py")
with open(script, "w", encoding="utf-8") as f:
    f.write(SCRIPT)

spec = importlib.util.spec_from_file_location("lesson16_train_digits", script)
digits = importlib.util.module_from_spec(spec)
spec.loader.exec_module(digits)
one_model, one_history, one_seconds = digits.train(CONFIG["epochs"], CONFIG["batch"],
                                                   CONFIG["hidden"])
print(f"1 process: loss per epoch {np.round(one_history['loss'], 4)}, {one_seconds:.2f} s")

# %% [markdown]
# Now the same script on two processes. `mpiexec` comes with the `mpich` wheel (`pip install
# "minidl[dist]"`), beside the Python that has mpi4py.

# %%
def find_mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else shutil.which("mpiexec")
    return found if found and distributed.is_available() else None


MPIEXEC = find_mpiexec()
two = None
if MPIEXEC is None:
    print(f"No mpiexec with mpi4py here: {distributed.requirement()}. The two-process parts "
          f"below are skipped.")
else:
    result_file = os.path.join(OUT, "lesson16_two_ranks.npz")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"),
               MINIDL_DIST_TIMEOUT="120")
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, script, result_file,
                           str(CONFIG["epochs"]), str(CONFIG["batch"]), str(CONFIG["hidden"])],
                          env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"mpiexec failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    two = md.load(result_file)
    difference = max(np.abs(one_model.state_dict()[k] - two["weights"][k]).max()
                     for k in two["weights"])
    print(f"2 ranks:   loss per epoch {np.round(two['history']['loss'], 4)}, "
          f"{two['seconds']:.2f} s")
    batches = CONFIG["epochs"] * -(-len(digits.load_digits(split="train")[1]) // CONFIG["batch"])
    print(f"per step: {one_seconds / batches * 1e3:.2f} ms on 1 process, "
          f"{two['seconds'] / batches * 1e3:.2f} ms on 2 ranks")
    print(f"max |w(1 process) − w(2 ranks)| after {CONFIG['epochs']} epochs: {difference:.1e}")

# %% [markdown]
# The two runs took the same steps: their weights differ only by float32 round-off (the sum
# over 64 samples is added in a different order when it is split in two halves). They were
# not faster, though. A step of this small MLP computes for well under a millisecond, while
# each step of the two ranks waits for two all-reduces (the gradients, and the loss for the
# log) and for the slower of the two processes — and on a machine whose cores are busy with
# other work, one of them is often waiting for a core. Section 4 measures the costs and says
# when data parallelism pays.
#
# **When a rank fails.** If one rank dies, the others must not wait for it forever in their
# next all-reduce. minidl aborts the whole job when a rank raises an uncaught exception,
# `mpiexec` ends it when a process is killed, and a rank that waits longer than
# `MINIDL_DIST_TIMEOUT` seconds (600 by default) reports it and aborts.
#
# ## 4. What communication costs
#
# A message of S bytes takes about t(S) = α + S/β: the latency α, then the bytes at
# bandwidth β. Measured between the two ranks (the slower rank's best time):

# %%
if two is not None:
    sizes, times = np.asarray(two["sizes"], float), np.asarray(two["times"])
    alpha = times[0]                                    # a 4-byte message: all latency
    beta = (sizes[-1] - sizes[-3]) / (times[-1] - times[-3])   # slope between large messages
    for s, t in zip(sizes, times):
        print(f"{int(s):>9,} bytes: {t * 1e6:9.1f} us  ({s / t / 1e9:6.3f} GB/s)")
    print(f"latency α ≈ {alpha * 1e6:.0f} us, bandwidth β ≈ {beta / 1e9:.2f} GB/s")
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.loglog(sizes, times * 1e6, "o-", label="measured all-reduce, 2 ranks")
    axes.loglog(sizes, (alpha + sizes / beta) * 1e6, "--", label="α + S/β")
    axes.set_xlabel("message size S (bytes)")
    axes.set_ylabel("time (us)")
    axes.legend()
    show(figure, os.path.join(OUT, "lesson16_allreduce.png"))

# %% [markdown]
# Small messages cost α whatever their size — hence buckets; large ones cost S/β — hence the
# ring, which keeps the bytes per rank below 2S. For a step of N ranks that all-reduces a
# gradient of S bytes in one bucket, the ring model predicts
#
#   t_comm(N) ≈ α + 2(N−1)/N · S / β_bus
#
# (β_bus: the bandwidth per rank that the ring achieves, measured above for N = 2, where
# 2(N−1)/N = 1). With a compute time T for the whole batch on one process, split evenly,
# the speed-up is T / (T/N + t_comm). For the digits MLP and for the shipped GPT
# (`gpt-zh-char-small`, 2.57 M parameters):

# %%
if two is not None:
    mlp_bytes = sum(p.size * 4 for p in one_model.parameters())
    n_train = len(digits.load_digits(split="train")[1])
    steps = CONFIG["epochs"] * -(-n_train // CONFIG["batch"])     # ceil: batches per epoch
    step_time = one_seconds / steps
    for name, nbytes, compute in (("digits MLP", mlp_bytes, step_time),
                                  ("gpt-zh-char-small", 2_570_000 * 4, 3.0)):
        print(f"{name}: gradient {nbytes / 1e6:.2f} MB, one-process step {compute * 1e3:.1f} ms")
        for n in (2, 8):
            t_comm = alpha + 2 * (n - 1) / n * nbytes / beta
            print(f"   {n} ranks: all-reduce {t_comm * 1e3:6.2f} ms per step → speed-up "
                  f"{compute / (compute / n + t_comm):4.1f}× (of {n})")

# %% [markdown]
# (The GPT's 3 s per step is about what `minidl pretrain`'s batch of 32 × 128 tokens takes on
# a 2-core CPU.) When the computation per step is long compared with the all-reduce, data
# parallelism scales almost perfectly; a small model with a small batch is dominated by
# communication, and more ranks buy little. Three things help: a larger batch per rank (more
# computation per byte sent), overlapping the all-reduce of one bucket with the backward pass
# of the layers below (PyTorch does this; minidl keeps the call visible instead), and a faster
# link. GPUs compute a step some 10–100× faster, so they need the fast link: NCCL moves
# gradients GPU to GPU over NVLink at hundreds of GB/s (PCIe: ~10–25 GB/s), where copying them
# through host memory for MPI would cost more than the step itself.
#
# **Summary.** Data parallelism runs one model on N processes: each computes the gradient of
# its shard of the global batch, an all-reduce averages the gradients (weighted by shard size),
# and all take the same step — the step of one process with the whole batch. The ring
# all-reduce sends 2(N−1)/N · S bytes per process; buckets pay the latency a few times per
# step; the speed-up is T / (T/N + t_comm). In minidl: `mpiexec -n N minidl pretrain ...`,
# `fit` under `mpiexec`, or `distributed.DistributedDataParallel` in your own loop.
#
# **Exercises.** (1) Change `ring_all_reduce` to count messages, and compare α-costs of the
# ring (2(N−1) messages) and of a tree (2 log₂ N): which wins for small arrays, which for
# large? (2) Run `python examples/data_parallel.py --ranks 4`: how do the measured
# communication share and the estimate compare? (3) In a loop of your own, call
# `sync_gradients()` on a `DistributedDataParallel(model, bucket_cap_mb=0)` (one message per
# parameter) and time it against the default buckets. (4) Train with dropout 0.1 on 1 and 2
# ranks: why do the weights now differ, and why is that still correct?
