"""Training-step time and peak memory: minidl beside PyTorch and DeZero (each when installed).

Models (float32):
- LSTM text classifier: vocab 5,000, embedding 64, hidden 128; Embedding → LSTM → last hidden
  state → Linear(128, 1) → sigmoid → binary cross-entropy; Adam(lr=1e-3). Batches 64 × 50,
  256 × 50 and 1 × 10 (the seed example's shape).
- MLP 784-256-256-10 with ReLU, batch 128, softmax cross-entropy, SGD(lr=0.1).

A step is zero_grad + forward + loss + backward + optimizer update. All frameworks start from
the same weights (minidl's initialisation, copied) and see the same batches; the losses of the
first two steps are compared (the second one checks gradients and the optimizer too).

Time: the frameworks take turns (the order rotates), each running a block of about 0.4 s of
consecutive steps after a 0.2 s pause; the pause lets the previous framework's worker threads
go idle (OpenBLAS threads spin for ~0.1 s after each call; back to back, PyTorch ran up to 2×
slower after minidl on a 2-core machine). The first step of each block is not counted. The
figure is the median step time; ratios are ratios of those paired medians.

Memory: each framework runs each model in a fresh process. The figure is the growth of the
resident set size (RSS) during 5 training steps, from a baseline taken after imports, data
creation and a warm-up (2 steps of the same model on 2 examples, then freed and the C heap
trimmed), so that one-time costs -- lazy imports (PyTorch's first optimizer step imports
torch._dynamo, about 70 MB), thread pools -- are not counted as the model's memory; the
"cold" columns measure from just after imports and data instead. Linux: the peak counter is
reset through /proc/self/clear_refs and read as VmHWM; elsewhere ru_maxrss. It includes the
weights, optimizer state, activations, gradients and whatever the allocator keeps. RSS is used
because tracemalloc does not see PyTorch's allocator; for minidl the tracemalloc peak of one
step (NumPy buffers allocated during the step) is printed as well.

Targets (issue): LSTM ≤ 1.3× PyTorch at batch 64, ≤ 1.0× at batch 256 and batch 1; MLP ≤ 1.0×;
at least 3× faster than DeZero on the LSTM; peak memory ≤ 1.5× PyTorch's.

Run from the repository root:
    python benchmarks/bench_train.py                 # about a minute per BLAS environment
    python benchmarks/bench_train.py --quick         # a smoke run
    python benchmarks/bench_train.py --profile       # where a minidl LSTM step spends its time
    python benchmarks/bench_train.py --device cuda   # minidl (CuPy) and PyTorch on a GPU
The figures are printed for the environment as set and again, in a fresh process, with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed (see benchmarks/_common.py).
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minidl
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from _common import format_ratio, format_time, median, print_table, ratio  # noqa: E402

import minidl as md  # noqa: E402
from minidl import nn  # noqa: E402

VOCAB, EMBED, HIDDEN = 5000, 64, 128
MLP_SIZES = (784, 256, 256, 10)
LSTM_LR, MLP_LR = 1e-3, 0.1
LOSS_TOLERANCE = 1e-4
# Timing blocks: each framework runs ~BLOCK_S of consecutive steps, after a pause of PAUSE_S.
# The pause lets the worker threads of the framework that ran before go idle: OpenBLAS threads
# spin for about 0.1 s after a call, and running PyTorch right after minidl made it up to 2×
# slower on a 2-core machine -- a cost no user of one framework pays.
BLOCK_S, PAUSE_S = 0.4, 0.2
MEMORY_TARGET = "≤ 1.5×"
FRAMEWORKS = ("minidl", "torch", "dezero")


@dataclass
class Config:
    name: str
    kind: str                     # 'lstm' or 'mlp'
    batch: int
    length: int                   # time steps (LSTM only)
    steps: int                    # timed steps per framework (default run)
    torch_target: str             # minidl ÷ torch
    dezero_target: Optional[str]  # DeZero ÷ minidl (a speed-up)


CONFIGS = [
    Config("lstm B=64 T=50", "lstm", 64, 50, 30, "≤ 1.3×", "≥ 3×"),
    Config("lstm B=256 T=50", "lstm", 256, 50, 10, "≤ 1.0×", "≥ 3×"),
    Config("lstm B=1 T=10", "lstm", 1, 10, 200, "≤ 1.0×", "≥ 3×"),
    Config("mlp B=128", "mlp", 128, 0, 60, "≤ 1.0×", None),
    Config("gpt B=16 T=128 d192 L4", "gpt", 16, 128, 8, "≤ 1.3×", None),
]
GPT_SHAPE = dict(vocab_size=4000, d_model=192, n_layers=4, n_heads=4)  # the shipped model's
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}


# ----------------------------------------------------------------------------- data and weights
def make_batches(config: Config, count: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` host batches (inputs, targets), the same for every framework."""
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(count):
        if config.kind == "lstm":
            ids = rng.integers(0, VOCAB, (config.batch, config.length), dtype=np.int64)
            labels = rng.integers(0, 2, (config.batch, 1)).astype(np.float32)
            batches.append((ids, labels))
        elif config.kind == "gpt":  # next-character prediction: targets are inputs shifted
            ids = rng.integers(0, GPT_SHAPE["vocab_size"], (config.batch, config.length + 1),
                               dtype=np.int64)
            batches.append((ids[:, :-1], ids[:, 1:]))
        else:
            x = rng.normal(size=(config.batch, MLP_SIZES[0])).astype(np.float32)
            classes = rng.integers(0, MLP_SIZES[-1], config.batch, dtype=np.int64)
            batches.append((x, classes))
    return batches


def initial_weights(config: Config) -> dict[str, np.ndarray]:
    """minidl's initialisation (seeded), as host arrays named like minidl's state_dict."""
    md.manual_seed(0)
    return minidl_model(config).state_dict()


def minidl_model(config: Config) -> nn.Module:
    if config.kind == "gpt":
        from minidl.models import GPT, GPTConfig
        return GPT(GPTConfig(context_length=config.length, dropout=0.0, **GPT_SHAPE))
    if config.kind == "mlp":
        n_in, h1, h2, n_out = MLP_SIZES
        return nn.Sequential(nn.Linear(n_in, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                             nn.Linear(h2, n_out))
    return MinidlLSTMClassifier()


class MinidlLSTMClassifier(nn.Module):
    """Embedding → LSTM → last hidden state → Linear(H, 1) → sigmoid."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, ids):
        _, (h, _) = self.lstm(self.embedding(ids))
        return md.functions.sigmoid(self.head(h))


# ----------------------------------------------------------------------------- the frameworks
class Runner:
    """One framework's model, optimizer and batches. ``step(k)`` trains on batch k and returns
    the loss (a framework scalar); ``value(loss)`` is the float; ``sync()`` waits for the GPU."""

    step: Callable[[int], Any]
    value: Callable[[Any], float]

    def sync(self) -> None:
        pass


def minidl_runner(config: Config, weights: dict, batches: list, device: str,
                  data_only: bool = False):
    import minidl.functions as F
    from minidl import optim

    data = [(md.tensor(x, device=device), md.tensor(y, device=device)) for x, y in batches]
    if data_only:
        return data
    model = minidl_model(config)
    model.load_state_dict(weights)
    model.to(device)
    if config.kind == "lstm":
        optimizer = optim.Adam(model.parameters(), lr=LSTM_LR)
        loss_fn = F.binary_cross_entropy
    elif config.kind == "gpt":
        optimizer = optim.AdamW(model.parameters(), lr=LSTM_LR)
        loss_fn = F.cross_entropy
    else:
        optimizer = optim.SGD(model.parameters(), lr=MLP_LR)
        loss_fn = F.cross_entropy

    runner = Runner()

    def step(k):
        x, y = data[k % len(data)]
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    runner.step, runner.value = step, lambda loss: float(loss.item())
    runner.model, runner.optimizer, runner.data, runner.loss_fn = model, optimizer, data, loss_fn
    if device == "cuda":
        import cupy
        runner.sync = lambda: cupy.cuda.get_current_stream().synchronize()
    return runner


def torch_runner(torch, config: Config, weights: dict, batches: list, device: str,
                 data_only: bool = False):
    nn, F = torch.nn, torch.nn.functional
    data = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for x, y in batches]
    if data_only:
        return data

    def param(array):
        return nn.Parameter(torch.tensor(np.ascontiguousarray(array)))

    if config.kind == "lstm":
        class LSTMClassifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(VOCAB, EMBED)
                self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
                self.head = nn.Linear(HIDDEN, 1)

            def forward(self, ids):
                _, (h, _) = self.lstm(self.embedding(ids))
                return torch.sigmoid(self.head(h[-1]))

        model = LSTMClassifier()
        with torch.no_grad():  # minidl: W_x (D, 4H), W_h (H, 4H), one bias; torch: transposed, two
            model.embedding.weight = param(weights["embedding.W"])
            model.lstm.weight_ih_l0 = param(weights["lstm.cell.W_x"].T)
            model.lstm.weight_hh_l0 = param(weights["lstm.cell.W_h"].T)
            model.lstm.bias_ih_l0 = param(weights["lstm.cell.b"])
            # minidl has one bias; torch's second one stays at zero and out of training
            # (trained, it would get the same gradient and double the bias' Adam step)
            model.lstm.bias_hh_l0 = nn.Parameter(torch.zeros(4 * HIDDEN), requires_grad=False)
            model.head.weight = param(weights["head.W"].T)
            model.head.bias = param(weights["head.b"])
        model.lstm.flatten_parameters()
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad],
                                     lr=LSTM_LR)
        loss_fn = F.binary_cross_entropy
    elif config.kind == "gpt":
        model = torch_gpt(torch, config, weights)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LSTM_LR)

        def loss_fn(logits, targets):
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    else:
        n_in, h1, h2, n_out = MLP_SIZES
        model = nn.Sequential(nn.Linear(n_in, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                              nn.Linear(h2, n_out))
        with torch.no_grad():
            for index in (0, 2, 4):
                model[index].weight = param(weights[f"{index}.W"].T)
                model[index].bias = param(weights[f"{index}.b"])
        optimizer = torch.optim.SGD(model.parameters(), lr=MLP_LR)
        loss_fn = F.cross_entropy
    model.to(device)

    runner = Runner()

    def step(k):
        x, y = data[k % len(data)]
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss
    runner.step, runner.value = step, lambda loss: float(loss.item())
    runner.model, runner.optimizer, runner.data, runner.loss_fn = model, optimizer, data, loss_fn
    if device == "cuda":
        runner.sync = torch.cuda.synchronize
    return runner


def torch_gpt(torch, config: Config, weights: dict):
    """minidl's GPT written in PyTorch (pre-LN blocks, GELU tanh, tied output layer), with
    minidl's initial weights (a minidl Linear's W is (in, out): torch's weight is W.T)."""
    nn, F = torch.nn, torch.nn.functional
    d, heads, layers = GPT_SHAPE["d_model"], GPT_SHAPE["n_heads"], GPT_SHAPE["n_layers"]

    def param(name, transpose=False):
        array = weights[name].T if transpose else weights[name]
        return nn.Parameter(torch.tensor(np.ascontiguousarray(array)))

    def linear(prefix):
        layer = nn.Linear(1, 1)
        layer.weight, layer.bias = param(prefix + ".W", True), param(prefix + ".b")
        return layer

    def norm(prefix):
        layer = nn.LayerNorm(d)
        layer.weight, layer.bias = param(prefix + ".weight"), param(prefix + ".bias")
        return layer

    class Block(nn.Module):
        def __init__(self, i):
            super().__init__()
            p = f"block{i}."
            self.ln1, self.ln2 = norm(p + "ln1"), norm(p + "ln2")
            self.qkv, self.proj = linear(p + "attn.qkv"), linear(p + "attn.proj")
            self.fc, self.out = linear(p + "mlp.fc"), linear(p + "mlp.proj")

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = (t.reshape(B, T, heads, d // heads).transpose(1, 2)
                       for t in self.qkv(self.ln1(x)).split(d, dim=2))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
            return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = param("tok.W"), param("pos.W")
            self.blocks = nn.ModuleList(Block(i) for i in range(layers))
            self.ln_f = norm("ln_f")

        def forward(self, ids):
            x = self.tok[ids] + self.pos[:ids.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.ln_f(x) @ self.tok.T

    return GPT()


def dezero_runner(dezero, config: Config, weights: dict, batches: list, device: str,
                  data_only: bool = False):
    """DeZero's own layers: EmbedID, the single-step LSTM looped over time, Linear."""
    import dezero.functions as F
    import dezero.layers as L
    from dezero import optimizers

    data = list(batches)  # DeZero takes NumPy arrays as they are
    if data_only:
        return data

    def copy(array):
        return np.ascontiguousarray(array, dtype=np.float32)

    if config.kind == "lstm":
        class LSTMClassifier(dezero.Model):
            def __init__(self):
                super().__init__()
                self.embed = L.EmbedID(VOCAB, EMBED)
                self.lstm = L.LSTM(HIDDEN, in_size=EMBED)
                self.head = L.Linear(1, in_size=HIDDEN)

            def forward(self, ids):
                e = self.embed(ids)               # (B, T, E)
                self.lstm.reset_state()
                for t in range(ids.shape[1]):
                    h = self.lstm(e[:, t])
                return self.head(h)               # logits; the sigmoid is in the loss

        model = LSTMClassifier()
        H = HIDDEN
        W_x, W_h, b = (weights[f"lstm.cell.{n}"] for n in ("W_x", "W_h", "b"))
        model.embed.W.data = copy(weights["embedding.W"])  # DeZero's own init is float64
        for gate, block in (("i", 0), ("f", 1), ("u", 2), ("o", 3)):  # u is the g gate
            cols = slice(block * H, (block + 1) * H)
            getattr(model.lstm, f"x2{gate}").W.data = copy(W_x[:, cols])
            getattr(model.lstm, f"x2{gate}").b.data = copy(b[cols])
            getattr(model.lstm, f"h2{gate}").W.data = copy(W_h[:, cols])
        model.head.W.data, model.head.b.data = copy(weights["head.W"]), copy(weights["head.b"])
        optimizer = optimizers.Adam(alpha=LSTM_LR).setup(model)
        loss_fn = F.sigmoid_cross_entropy  # sigmoid + clipped binary cross-entropy, mean
    else:
        class MLP(dezero.Model):
            def __init__(self):
                super().__init__()
                n_in, h1, h2, n_out = MLP_SIZES
                self.l1 = L.Linear(h1, in_size=n_in)
                self.l2 = L.Linear(h2, in_size=h1)
                self.l3 = L.Linear(n_out, in_size=h2)

            def forward(self, x):
                return self.l3(F.relu(self.l2(F.relu(self.l1(x)))))

        model = MLP()
        for layer, index in ((model.l1, 0), (model.l2, 2), (model.l3, 4)):
            layer.W.data, layer.b.data = copy(weights[f"{index}.W"]), copy(weights[f"{index}.b"])
        optimizer = optimizers.SGD(lr=MLP_LR).setup(model)
        loss_fn = F.softmax_cross_entropy

    runner = Runner()

    def step(k):
        x, y = data[k % len(data)]
        model.cleargrads()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.update()
        return loss
    runner.step, runner.value = step, lambda loss: float(loss.data)
    return runner


def load_frameworks(device: str) -> tuple[dict, dict]:
    """The reference modules that import, and why the others are unavailable."""
    modules, reasons = {}, {}
    torch, why = _common.optional_import("torch", "pip install torch")
    if torch is not None and device == "cuda" and not torch.cuda.is_available():
        torch, why = None, "installed, but torch.cuda.is_available() is False"
    modules["torch"], reasons["torch"] = torch, why
    dezero, why = _common.optional_import("dezero", "pip install dezero")
    if dezero is not None and device == "cuda":
        dezero, why = None, "not run on CUDA by this benchmark"
    if dezero is not None and not hasattr(dezero, "Model"):
        dezero, why = None, "this dezero has no dezero.Model; an equivalent model cannot be built"
    modules["dezero"], reasons["dezero"] = dezero, why
    return modules, reasons


def make_runner(name: str, modules: dict, config: Config, weights: dict, batches: list,
                device: str, data_only: bool = False):
    if name == "minidl":
        return minidl_runner(config, weights, batches, device, data_only)
    if name == "torch":
        return torch_runner(modules["torch"], config, weights, batches, device, data_only)
    return dezero_runner(modules["dezero"], config, weights, batches, device, data_only)


# ----------------------------------------------------------------------------- time
def time_config(config: Config, modules: dict, device: str, steps: int, warmup: int) -> dict:
    """Loss check on the first two steps, then paired step times. Returns medians and checks."""
    weights, batches = initial_weights(config), make_batches(config)
    runners, errors = {}, {}
    for name in FRAMEWORKS:
        if name != "minidl" and modules[name] is None:
            continue
        try:
            runners[name] = make_runner(name, modules, config, weights, batches, device)
        except Exception as error:  # a reference that cannot build this model
            errors[name] = f"cannot build the model: {type(error).__name__}: {error}"
    losses = {name: [r.value(r.step(k)) for k in range(2)] for name, r in runners.items()}
    checks = {}
    for name in runners:
        if name != "minidl":
            first, second = (abs(a - b) for a, b in zip(losses[name], losses["minidl"]))
            verdict = "ok" if max(first, second) <= LOSS_TOLERANCE else "DIFFER"
            checks[name] = (f"{name} vs minidl: step-1 loss {losses[name][0]:.6f} vs "
                            f"{losses['minidl'][0]:.6f} (|Δ| {first:.1e}), step-2 loss "
                            f"{losses[name][1]:.6f} vs {losses['minidl'][1]:.6f} (|Δ| "
                            f"{second:.1e}): {verdict} (tolerance {LOSS_TOLERANCE:g})")
    names = list(runners)
    clock = time.perf_counter
    estimate = {}
    for name in names:  # warm-up, which also gives the length of a step
        start = clock()
        for k in range(warmup):
            runners[name].step(k)
            runners[name].sync()
        estimate[name] = (clock() - start) / max(1, warmup)
    gc.collect()
    watch = _common.OthersCpu()
    times = {name: [] for name in names}
    block = {name: max(2, round(BLOCK_S / max(estimate[name], 1e-6))) for name in names}
    rotation = k = 0
    while any(len(times[name]) < steps for name in names):
        order = names[rotation % len(names):] + names[:rotation % len(names)]
        rotation += 1
        for name in order:
            if len(times[name]) >= steps:
                continue
            runner = runners[name]
            time.sleep(PAUSE_S)
            for i in range(min(block[name], steps - len(times[name]) + 1)):
                start = clock()
                runner.step(k)
                runner.sync()
                if i:  # the first step after the pause is not counted
                    times[name].append(clock() - start)
                k += 1
    return {"median": {name: median(t) for name, t in times.items()}, "checks": checks,
            "errors": errors, "steps": steps, "others": watch.cell()}


# ----------------------------------------------------------------------------- memory
def memory_probe(framework: str, config: Config, steps: int, device: str) -> dict:
    """Run in a fresh process: peak memory growth of ``steps`` training steps.

    ``bytes``: growth from a baseline taken after imports, data creation and a warm-up (two
    steps of the same model on a 2-example batch, then freed and handed back to the OS), so
    that one-time costs -- lazy imports (PyTorch's first optimizer step imports torch._dynamo,
    about 70 MB), thread pools, kernel caches -- do not count as the model's memory.
    ``cold_bytes``: the same peak measured from just after imports and data creation.
    """
    modules, reasons = load_frameworks(device)
    if framework != "minidl" and modules[framework] is None:
        return {"error": reasons[framework]}
    weights, batches = initial_weights(config), make_batches(config)
    data = make_runner(framework, modules, config, weights, batches, device, data_only=True)
    meter = _MemoryMeter(framework, modules, gpu=device == "cuda")
    meter.release()
    cold = meter.reset()
    tiny = make_batches(Config("warm-up", config.kind, 2, min(config.length, 3), 0, "", None))
    warm_up = make_runner(framework, modules, config, weights, tiny, device)
    for k in range(2):
        warm_up.step(k)
    warm_up.sync()
    del warm_up
    meter.release()
    warm_up_peak = meter.peak()
    baseline = meter.reset()
    runner = make_runner(framework, modules, config, weights, batches, device)
    for k in range(steps):
        runner.step(k)
    runner.sync()
    peak = meter.peak()
    result = {"bytes": peak - baseline, "cold_bytes": max(peak, warm_up_peak) - cold,
              "method": meter.method, "batches": len(data)}
    if framework == "minidl" and device == "cpu":  # NumPy buffers allocated during one step
        import tracemalloc
        tracemalloc.start()
        runner.step(steps)
        result["traced_step_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result


class _MemoryMeter:
    """Current and peak memory of this process: RSS on the CPU (the peak counter VmHWM is reset
    through /proc/self/clear_refs on Linux; elsewhere ru_maxrss, which cannot be reset), or the
    bytes reserved by the caching allocator on a GPU (PyTorch's, or CuPy's memory pool)."""

    def __init__(self, framework: str, modules: dict, gpu: bool):
        self.framework, self.modules, self.gpu = framework, modules, gpu
        if gpu:
            self.method = ("GPU memory reserved by the caching allocator (torch "
                           "max_memory_reserved; CuPy memory pool total_bytes), growth")
        elif _status_kib("VmRSS") is not None and _can_reset_peak():
            self.method = ("peak RSS (VmHWM, reset at the baseline) minus RSS at the baseline")
        else:
            self.method = "ru_maxrss after the steps minus ru_maxrss at the baseline"

    def release(self) -> None:
        """Free what can be freed, and give the C heap's free pages back to the OS, so that
        memory reused from earlier allocations still shows up as growth."""
        gc.collect()
        if self.gpu:
            if self.framework == "torch":
                self.modules["torch"].cuda.empty_cache()
            else:
                import cupy
                cupy.get_default_memory_pool().free_all_blocks()
            return
        try:
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def reset(self) -> int:
        """Reset the peak to the current value and return that value (the baseline)."""
        if self.gpu:
            if self.framework == "torch":
                torch = self.modules["torch"]
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                return torch.cuda.memory_reserved()
            import cupy
            cupy.cuda.get_current_stream().synchronize()
            return cupy.get_default_memory_pool().total_bytes()
        if self.method.startswith("peak RSS"):
            _can_reset_peak()
            return (_status_kib("VmRSS") or 0) * 1024
        return _maxrss_bytes()

    def peak(self) -> int:
        if self.gpu:
            if self.framework == "torch":
                torch = self.modules["torch"]
                torch.cuda.synchronize()
                return torch.cuda.max_memory_reserved()
            import cupy
            cupy.cuda.get_current_stream().synchronize()
            return cupy.get_default_memory_pool().total_bytes()
        if self.method.startswith("peak RSS"):
            return (_status_kib("VmHWM") or 0) * 1024
        return _maxrss_bytes()


def _can_reset_peak() -> bool:
    """Reset VmHWM (and ru_maxrss) to the current RSS; False where the OS does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def measure_memory(configs: list, device: str, steps: int) -> dict:
    """Peak memory per (config, framework), each in a fresh process (two at a time: they
    measure memory, not time)."""
    jobs = [(c.name, f) for c in configs for f in FRAMEWORKS]

    def run(job):
        config_name, framework = job
        command = [sys.executable, os.path.abspath(__file__), "--memory-probe", framework,
                   "--config", config_name, "--memory-steps", str(steps), "--device", device]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return job, {"error": f"probe failed: {tail}"}
        return job, json.loads(lines[-1])
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        return dict(pool.map(run, jobs))


# ----------------------------------------------------------------------------- the report
def measure(args) -> dict:
    modules, reasons = load_frameworks(args.device)
    extra = _common.limit_threads(args.threads)
    if modules["torch"] is not None:
        torch = modules["torch"]
        extra.append(f"torch {torch.__version__}, torch.get_num_threads() = "
                     f"{torch.get_num_threads()}" + ("" if args.threads else " (default)"))
    for name in ("torch", "dezero"):
        if modules[name] is None:
            extra.append(f"{name}: n/a, {reasons[name]}")
    if modules["dezero"] is not None:
        extra.append(f"dezero {getattr(modules['dezero'], '__version__', '?')}")
    extra.append(f"device: {args.device}")
    for line in _common.environment_lines(extra):
        print(line)
    configs = [CONFIG_BY_NAME[n] for n in args.configs] if args.configs else CONFIGS
    scale = 0.25 if args.quick else 1.0
    warmup = 1 if args.quick else 3

    print(f"\nStep time (ms, median; after {warmup} warm-up steps the frameworks take turns in "
          f"blocks of ~{BLOCK_S:g} s of steps, each after a {PAUSE_S:g} s pause)")
    rows, results, checks = [], {}, []
    for config in configs:
        steps = max(3, int(config.steps * scale))
        timing = time_config(config, modules, args.device, steps, warmup)
        t = timing["median"]
        results[config.name] = {"time": t}
        checks.extend(f"{config.name}: {line}" for line in timing["checks"].values())
        checks.extend(f"{config.name}: {name}: {why}" for name, why in timing["errors"].items())
        dezero_cell = format_time(t.get("dezero"))
        if "dezero" not in t:
            dezero_cell = "n/a" if "dezero" not in timing["errors"] else "no equivalent"
        rows.append([config.name, steps, format_time(t["minidl"]), format_time(t.get("torch")),
                     dezero_cell,
                     format_ratio(ratio(t["minidl"], t.get("torch")), config.torch_target),
                     format_ratio(ratio(t.get("dezero"), t["minidl"]), config.dezero_target)
                     if config.dezero_target else "-", timing["others"]])
    print_table(["config", "steps", "minidl ms", "torch ms", "DeZero ms", "minidl÷torch",
                 "DeZero÷minidl (speed-up)", "others"], rows)
    print(f"others: CPU share used by other processes while the row was measured (BUSY above "
          f"{_common.BUSY_SHARE:.0%}: rerun that row on a quiet machine)")
    for name in ("torch", "dezero"):
        if modules[name] is None:
            print(f"{name} columns n/a: {reasons[name]}")
    print("\nLoss check (same initial weights and batches; step 2 is after one optimizer "
          "update):")
    for line in checks or ["no reference framework available to compare with"]:
        print("  " + line)

    if args.no_memory:
        print("\nPeak memory: skipped (--no-memory)")
        return {"architecture": _common.blas_architecture(), "configs": results}
    memory_steps = 2 if args.quick else 5
    memory = measure_memory(configs, args.device, memory_steps)
    methods = {m["method"] for m in memory.values() if "method" in m}
    print(f"\nPeak memory growth (MB; each framework and model in a fresh process, "
          f"{memory_steps} training steps)")
    for method in sorted(methods):
        print(f"  method: {method}")
    print("  baseline: after imports, data creation and a warm-up (2 steps of the same model "
          "on 2 examples, freed)\n  so one-time costs are not counted; 'cold' columns measure "
          "from just after imports + data")
    rows, notes = [], []
    for config in configs:
        cells, values, cold = [], {}, {}
        for framework in FRAMEWORKS:
            m = memory[(config.name, framework)]
            if "error" in m:
                cells.append("n/a")
                if framework == "minidl" or modules.get(framework) is not None:
                    notes.append(f"{config.name} {framework}: {m['error']}")
            else:
                values[framework], cold[framework] = m["bytes"], m["cold_bytes"]
                cells.append(f"{m['bytes'] / 2**20:.1f}")
        traced = memory[(config.name, "minidl")].get("traced_step_peak")
        rows.append([config.name, *cells,
                     format_ratio(ratio(values.get("minidl"), values.get("torch")), MEMORY_TARGET),
                     *(f"{cold[f] / 2**20:.1f}" if f in cold else "n/a"
                       for f in ("minidl", "torch")),
                     "n/a" if traced is None else f"{traced / 2**20:.1f}"])
        results[config.name]["memory"] = values
    print_table(["config", "minidl MB", "torch MB", "DeZero MB", "minidl÷torch",
                 "cold minidl", "cold torch", "minidl tracemalloc/step"], rows)
    for note in notes:
        print("  " + note)
    return {"architecture": _common.blas_architecture(), "configs": results}


def compare(as_set: dict, unset: dict) -> None:
    print(f"NumPy's OpenBLAS kernel: {as_set['architecture']} as set, "
          f"{unset['architecture']} unset")
    rows = []
    for name, a in as_set["configs"].items():
        u = unset["configs"].get(name)
        if u is None:
            continue
        ta, tu = a["time"], u["time"]
        rows.append([name, format_time(ta["minidl"]), format_time(tu["minidl"]),
                     format_time(ta.get("torch")), format_time(tu.get("torch")),
                     format_ratio(ratio(ta["minidl"], ta.get("torch"))),
                     format_ratio(ratio(tu["minidl"], tu.get("torch")))])
    print_table(["config", "minidl ms set", "minidl ms unset", "torch ms set", "torch ms unset",
                 "minidl÷torch set", "minidl÷torch unset"], rows)


# ----------------------------------------------------------------------------- profile
def profile_lstm_step(args) -> None:
    """Where one minidl LSTM step (batch 64 × 50) spends its time: phases timed directly,
    then the functions that dominate under cProfile."""
    import cProfile
    import pstats

    import minidl.functions as F
    from minidl import optim

    config = CONFIG_BY_NAME["lstm B=64 T=50"]
    extra = _common.limit_threads(args.threads) + [f"device: {args.device}"]
    for line in _common.environment_lines(extra):
        print(line)
    runner = minidl_runner(config, initial_weights(config), make_batches(config), args.device)
    model, optimizer, data = runner.model, runner.optimizer, runner.data
    for k in range(3):
        runner.step(k)
    phases = {name: [] for name in ("zero_grad", "embedding forward", "LSTM forward",
                                    "head + loss forward", "backward (all)", "optimizer step")}
    clock = time.perf_counter
    steps = 5 if args.quick else 20
    for k in range(steps):
        ids, y = data[k % len(data)]
        t0 = clock()
        optimizer.zero_grad()
        t1 = clock()
        e = model.embedding(ids)
        t2 = clock()
        _, (h, _) = model.lstm(e)
        t3 = clock()
        loss = F.binary_cross_entropy(F.sigmoid(model.head(h)), y)
        t4 = clock()
        loss.backward()
        t5 = clock()
        optimizer.step()
        t6 = clock()
        runner.sync()
        for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            phases[name].append(dt)
        del e, h, loss
    total = sum(median(v) for v in phases.values())
    print(f"\nminidl {config.name}: phases, median of {steps} steps (ms)")
    print_table(["phase", "ms", "share"],
                [[name, f"{median(v) * 1e3:.2f}", f"{median(v) / total:.0%}"]
                 for name, v in phases.items()] + [["total", f"{total * 1e3:.2f}", "100%"]])

    # The optimizer's cost per parameter: a separate Adam per parameter, same gradients.
    for p in model.parameters():
        p.grad = None
    runner.step(0)
    rows = []
    for name, p in model.named_parameters():
        single = optim.Adam([p], lr=LSTM_LR)
        single.step()
        samples = []
        for _ in range(steps):
            t0 = clock()
            single.step()
            samples.append(clock() - t0)
        rows.append([name, "x".join(map(str, p.shape)), f"{median(samples) * 1e3:.2f}"])
    print("\nAdam update per parameter (ms)")
    print_table(["parameter", "shape", "ms"], rows)

    profiler = cProfile.Profile()
    profile_steps = 3 if args.quick else 10
    profiler.enable()
    for k in range(profile_steps):
        runner.step(k)
    profiler.disable()
    stats = pstats.Stats(profiler)
    wanted = [("lstm.py", "forward", "LSTMFunction.forward"),
              ("lstm.py", "backward", "LSTMFunction.backward (backward through time)"),
              ("embedding.py", "embedding", "F.embedding (ids check + row gather)"),
              ("embedding.py", "token_ids", "  token_ids (range check of the ids)"),
              ("shape.py", "_scatter", "embedding scatter (GetItem backward: zeros + add.at)"),
              ("backend.py", "scatter_add", "  backend.scatter_add (np.add.at)"),
              ("autograd.py", "_run_backward", "autograd engine, all backward"),
              ("optimizer.py", "step", "optimizer.step (Adam, all parameters)"),
              ("optimizer.py", "zero_grad", "optimizer.zero_grad"),
              ("loss.py", "binary_cross_entropy", "binary_cross_entropy forward")]
    rows = []
    for (filename, _, function), (_, _, tottime, cumtime, _) in stats.stats.items():
        for file_part, func_name, label in wanted:
            if filename.endswith(file_part) and function == func_name and "minidl" in filename:
                rows.append((label, cumtime / profile_steps))
    order = {label: i for i, (_, _, label) in enumerate(wanted)}
    rows.sort(key=lambda r: order[r[0]])
    step_total = stats.total_tt / profile_steps
    print(f"\ncProfile, {profile_steps} steps: cumulative time per step (ms; profiled step "
          f"{step_total * 1e3:.1f} ms)")
    print_table(["function", "ms/step", "share"],
                [[label, f"{ms * 1e3:.2f}", f"{ms / step_total:.0%}"] for label, ms in rows])
    print("\nTop 15 functions by own time (tottime):")
    stats.sort_stats("tottime").print_stats(15)


# ----------------------------------------------------------------------------- main
def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--configs", nargs="+", choices=list(CONFIG_BY_NAME), metavar="CONFIG",
                        help=f"only these ({', '.join(repr(c) for c in CONFIG_BY_NAME)})")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory table")
    parser.add_argument("--profile", action="store_true",
                        help="profile one minidl LSTM step (batch 64 × 50) and exit")
    _common.add_environment_arguments(parser)
    parser.add_argument("--memory-probe", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--memory-steps", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_probe:
        result = memory_probe(args.memory_probe, CONFIG_BY_NAME[args.config],
                              args.memory_steps, args.device)
        print(json.dumps(result))
        return
    if args.device == "cuda":
        if not md.cuda.is_available():
            if importlib.util.find_spec("cupy") is not None:
                why = "CuPy is installed but finds no usable CUDA device"
            else:
                why = "CuPy is not installed (pip install \"minidl[gpu]\")"
            print(f"no CUDA device: md.cuda.is_available() is False ({why}). Nothing to "
                  f"measure with --device cuda on this machine; run without it for the CPU.")
            return
    if args.profile:
        profile_lstm_step(args)
        return
    if args.child:
        _common.write_results(args.results_json, measure(args))
        return
    passthrough = [a for a in (sys.argv[1:] if argv is None else argv)
                   if a not in ("--child", "--both")]
    _common.run_both_environments(passthrough, lambda: measure(args), compare,
                                  always_both=args.both)


if __name__ == "__main__":
    main()
