"""Where one training step's time goes: BLAS products, elementwise work, copies and Python.

For each workload of bench_train.py (its models, batches and PyTorch twin, imported from it)
this prints the step time split into slices, the step a perfect implementation would take and
the minidl ÷ PyTorch ratio, then the array operations that cost the most. Aim each
optimisation at the largest slice.

How each figure is measured (nothing is estimated):

- Step: the minidl step on the CPU as bench_train.py runs it (zero_grad, forward, loss,
  backward, optimizer step), without instrumentation. Median over the timed steps.
- Slices, from a second copy of the same model on device 'profiled': a private copy of minidl's
  'strict' device (minidl/backend/strict.py, loaded a second time under another name), whose
  arrays send every NumPy call through one function (``_call``) or an operator method. The copy
  times each NumPy call itself -- not the wrapper around it; the clock's own cost is subtracted
  -- and classifies it by its NumPy name:
    BLAS         matmul and ``@`` (Linear, attention, the LSTM's gate products): the floor;
    elementwise  ufuncs (add, exp, tanh ...) and reductions (sum, max, mean ...);
    copies       astype, copy, ascontiguousarray, concatenate/stack, zeros/empty/ones..., gathers
                 (take, fancy indexing), writes through an index (x[i] = v, add.at), and any
                 reshape/ravel that had to copy;
    other        the remaining array calls (views: reshape, transpose, slicing; argmax ...);
    Python       the plain step minus all the array calls above: autograd bookkeeping, module
                 calls, the optimizer's loop. (The wrapper's own overhead is in no slice: it
                 runs outside the timed calls, and the step is the uninstrumented one.)
  The 'strict' and 'cpu' devices run the same minidl code (neither has fused kernels), so the
  profiled step makes the calls of a plain one; its first loss is checked to be the same.
  Each plain step is paired with an instrumented one, run right before or after it. A slice is
  the median over the pairs of its per-step total; Python is the median over the pairs of
  (plain step - all array calls), so a change of load between pairs cancels out. Medians do
  not add exactly, so the shares add up to 100% only within the noise.
- Ideal step: the BLAS time plus one elementwise pass (``np.add(a, 0, out=a)``, timed on scratch
  float32 buffers of the same sizes) over the activations: every array the forward wrote that is
  still alive when the forward ends -- what the graph keeps for backward, and the output.
  Temporaries freed during the forward are left out, since a perfect implementation would not
  make them; so is the optimizer's pass over the parameters. It is a floor, not a target.
- BLAS replay: the step's matrix products (same shapes, same counts) run again by themselves on
  contiguous float32 operands, by NumPy and, when installed, by PyTorch: the BLAS libraries'
  own difference on the same arithmetic, which bounds the ratio from below.
- Turns: the minidl pairs and PyTorch take turns in blocks as in bench_train.py (a pause
  before each block lets the other library's threads go idle; the first step of a block is not
  counted); PyTorch's step is the median of its steps, and the ratio is minidl's step ÷ it.
- Noise: the per-call timing itself is exact to the clock, but a call timed alone can run a
  little slower than inside a plain step (the wrapper's Python runs between calls); the number
  of NumPy calls per step is printed, so that bias can be weighed where calls are tiny (B=1).

Run from the repository root (all workloads: 3.5 minutes on a busy 2-core machine, with
the GPT row taking most; --workload and --steps make it shorter):
    python benchmarks/profile_step.py                       # every workload
    python benchmarks/profile_step.py --workload lstm --steps 5
    /root/bench-venv/bin/python benchmarks/profile_step.py  # any Python with torch: the ratio
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import operator
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from _common import format_ratio, median, print_table, ratio  # noqa: E402
from bench_train import (BLOCK_S, CONFIGS, PAUSE_S, Config, initial_weights,  # noqa: E402
                         make_batches, minidl_runner, torch_runner)

from minidl import backend  # noqa: E402
from minidl.backend import strict  # noqa: E402

PROFILED = "profiled"
SLICES = ("BLAS", "elementwise", "copies", "other")
BLAS_OPS = {"matmul", "@", "@=", "dot", "tensordot", "einsum", "inner", "vdot"}
REDUCTIONS = {"sum", "mean", "max", "min", "prod", "var", "std", "cumsum", "any", "all", "clip",
              "round", "where", "amax", "amin", "count_nonzero"}
COPY_OPS = {"astype", "copy", "ascontiguousarray", "asarray", "array", "asanyarray",
            "concatenate", "stack", "hstack", "vstack", "zeros", "empty", "ones", "full",
            "zeros_like", "empty_like", "ones_like", "full_like", "arange", "eye", "take",
            "take_along_axis", "put", "put_along_axis", "repeat", "tile", "pad", "fill",
            "copyto", "flatten", "tril", "triu", "setitem"}
VIEW_OPS = {"reshape", "transpose", "swapaxes", "squeeze", "expand_dims", "ravel",
            "broadcast_to", "view", "moveaxis", "split", "array_split", "flip"}
OPERATORS = {*strict._SYMBOLS.values(), *(s + "=" for s in strict._SYMBOLS.values()),
             *strict._COMPARISONS.values(), "neg", "pos", "abs", "invert"}  # '+', '+=', '<' ...
WRITES = ("BLAS", "elementwise", "copies")  # calls whose output counts as an activation
PHASES = ("forward", "backward", "optimizer")


# ----------------------------------------------------------------------------- classification
def classify(name: str, args: tuple, result: Any) -> tuple[str, str]:
    """(slice, display name) of one NumPy call, from its name and, for views, its result."""
    if name in BLAS_OPS:
        return "BLAS", name
    if name == "getitem":
        return ("copies", "gather x[index]") if _is_fancy(args[1]) else ("other", "x[slice]")
    if name in VIEW_OPS:  # a reshape of a transposed array copies
        if isinstance(result, np.ndarray) and not np.may_share_memory(result, args[0]):
            return "copies", name + " (copied)"
        return "other", name
    if name in COPY_OPS:
        return "copies", name
    if name.endswith(".at"):  # add.at: a scatter
        return "copies", name
    ufunc = getattr(np, name.split(".")[0], None)
    if isinstance(ufunc, np.ufunc) or name in REDUCTIONS or name in OPERATORS:
        return "elementwise", name
    return "other", name


def _is_fancy(key: Any) -> bool:
    """Whether an index gathers (an array or list in it) rather than slices."""
    keys = key if type(key) is tuple else (key,)
    return any(isinstance(k, (np.ndarray, list)) for k in keys)


def _op_name(where: str) -> str:
    """'numpy.add.at' -> 'add.at', 'StrictArray.astype' -> 'astype', 'strict_numpy.zeros' ->
    'zeros' (``where`` is the strict device's description of a call)."""
    for prefix in ("strict_numpy.", "numpy.", "StrictArray."):
        if where.startswith(prefix):
            return where[len(prefix):]
    return where


# ----------------------------------------------------------------------------- the recorder
class Recorder:
    """Times of the profiled device's NumPy calls, per step, by (phase, op, input shapes)."""

    def __init__(self):
        self.phase: Optional[str] = None  # None: not recording
        self.calls: dict = {}
        self.written: list = []  # weak references to the arrays the forward wrote
        self.activation_bytes: list[int] = []
        clock = time.perf_counter
        self.clock_cost = median([-(clock() - clock()) for _ in range(2000)])

    def record(self, name: str, args: tuple, result: Any, seconds: float) -> None:
        if self.phase is None:
            return
        kind, label = classify(name, args, result)
        shapes = tuple(a.shape for a in args if isinstance(a, np.ndarray))
        entry = self.calls.setdefault((self.phase, label, shapes, kind), [0.0, 0])
        entry[0] += max(0.0, seconds - self.clock_cost)
        entry[1] += 1
        if self.phase == "forward" and kind in WRITES:
            written = result
            if result is None and args:  # x[i] = v, add.at, fill: written in place
                written = args[0]
            if isinstance(written, np.ndarray):
                while isinstance(written.base, np.ndarray):  # the buffer, not the view
                    written = written.base
                self.written.append(weakref.ref(written))

    def note_activations(self) -> None:
        """The sizes of the arrays the forward wrote that are still alive (call it when the
        forward ends)."""
        alive = {id(a): a for a in (ref() for ref in self.written) if a is not None}
        self.activation_bytes = [a.nbytes for a in alive.values()]
        self.written = []


@contextlib.contextmanager
def profiling_device() -> Iterator[Recorder]:
    """Device 'profiled' (registered while the block runs): a fresh copy of the strict device
    whose NumPy calls are timed into the Recorder it yields."""
    recorder = Recorder()
    spec = importlib.util.spec_from_file_location("_minidl_profiled_device", strict.__file__)
    device_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(device_module)  # our own copy: the real 'strict' stays untouched
    _time_calls(device_module, recorder)
    device_module.DEVICE.name = PROFILED
    backend.DEVICES[PROFILED] = device_module.DEVICE
    try:
        yield recorder
    finally:
        del backend.DEVICES[PROFILED]


def _time_calls(device_module: Any, recorder: Recorder) -> None:
    """Make the strict-device copy time every NumPy call: functions, ufuncs and methods all go
    through its ``_call``; operators and indexing are rebuilt around a timed NumPy call."""
    clock = time.perf_counter

    def timed(func: Callable, name: str) -> Callable:
        def call(*args, **kwargs):
            start = clock()
            result = func(*args, **kwargs)
            recorder.record(name, args, result, clock() - start)
            return result
        return call

    original_call = device_module._call

    def timed_call(func, args, kwargs, where, **options):
        return original_call(timed(func, _op_name(where)), args, kwargs, where, **options)
    device_module._call = timed_call

    array, m = device_module.StrictArray, device_module
    for name, symbol in m._SYMBOLS.items():
        op, in_place = getattr(operator, f"__{name}__"), getattr(operator, f"__i{name}__")
        setattr(array, f"__{name}__", m._binary(timed(op, symbol), symbol))
        setattr(array, f"__r{name}__", m._binary(timed(op, symbol), symbol, reflected=True))
        setattr(array, f"__i{name}__", m._in_place(timed(in_place, symbol + "="), symbol + "="))
    for name, symbol in m._COMPARISONS.items():
        setattr(array, f"__{name}__", m._binary(timed(getattr(operator, f"__{name}__"), symbol),
                                                symbol))
    for name in ("neg", "pos", "abs", "invert"):
        setattr(array, f"__{name}__", m._unary(timed(getattr(operator, f"__{name}__"), name)))
    get, put = timed(operator.getitem, "getitem"), timed(operator.setitem, "setitem")
    array.__getitem__ = lambda self, key: m._wrap(get(self._a, m._unwrap_index(key)))
    array.__setitem__ = lambda self, key, value: put(
        self._a, m._unwrap_index(key), m._unwrap(value, "x[index] = value", {}))


def profiled_step(runner: Any, k: int, recorder: Recorder) -> dict:
    """One training step of a runner on the profiled device, phase by phase (the same calls as
    bench_train's step). Returns {(phase, op, shapes, slice): [seconds, calls]}."""
    x, y = runner.data[k % len(runner.data)]
    recorder.calls = {}
    recorder.phase = "optimizer"
    runner.optimizer.zero_grad()
    recorder.phase = "forward"
    loss = runner.loss_fn(runner.model(x), y)
    recorder.phase = None
    recorder.note_activations()
    recorder.phase = "backward"
    loss.backward()
    recorder.phase = "optimizer"
    runner.optimizer.step()
    recorder.phase = None
    return recorder.calls


# ----------------------------------------------------------------------------- measuring
def take_turns(players: dict, count: int, warmup: int = 2) -> dict:
    """Call each ``players[name](k)`` in turns, in blocks of about BLOCK_S seconds after a pause
    of PAUSE_S, until each has ``count`` counted calls; the first call of a block is not
    counted. Returns {name: [what each counted call returned]}."""
    clock, estimate = time.perf_counter, {}
    for name, play in players.items():
        start = clock()
        for k in range(warmup):
            play(k)
        estimate[name] = (clock() - start) / warmup
    gc.collect()
    names, done = list(players), {name: [] for name in players}
    rotation = k = 0
    while any(len(done[name]) < count for name in names):
        for name in names[rotation:] + names[:rotation]:
            left = count - len(done[name])
            if left <= 0:
                continue
            time.sleep(PAUSE_S)
            block = max(2, round(BLOCK_S / max(estimate[name], 1e-6)))
            for i in range(min(block, left + 1)):
                returned = players[name](k)
                if i:
                    done[name].append(returned)
                k += 1
        rotation = (rotation + 1) % len(names)
    return done


def timed_step(step: Callable) -> Callable:
    """``step`` returning its duration in seconds (and no loss, so no graph is kept alive)."""
    def run(k: int) -> float:
        start = time.perf_counter()
        step(k)
        return time.perf_counter() - start
    return run


def one_pass_seconds(sizes: list[int], repeats: int = 5) -> float:
    """Median time of one ``np.add(a, 0, out=a)`` over a float32 buffer of each size (bytes)."""
    buffers = [np.ones(max(1, size // 4), np.float32) for size in sizes]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for a in buffers:
            np.add(a, 0, out=a)
        samples.append(time.perf_counter() - start)
    return median(samples)


def profile_workload(config: Config, torch: Any, steps: int) -> dict:
    """``steps`` pairs of a plain and an instrumented minidl step (back to back, in alternating
    order) and ``steps`` PyTorch steps when ``torch`` is given, taking turns; then summarise."""
    weights, batches = initial_weights(config), make_batches(config)
    with profiling_device() as recorder:
        plain = minidl_runner(config, weights, batches, "cpu")
        profiled = minidl_runner(config, weights, batches, PROFILED)
        losses = plain.value(plain.step(0)), profiled.value(profiled.step(0))
        plain_step = timed_step(plain.step)

        def pair(k: int) -> tuple[float, dict]:
            if k % 2:  # alternate the order: neither always runs right after the other
                seconds, calls = plain_step(k), profiled_step(profiled, k, recorder)
            else:
                calls, seconds = profiled_step(profiled, k, recorder), plain_step(k)
            return seconds, calls
        players = {"minidl": pair}
        if torch is not None:
            players["torch"] = timed_step(torch_runner(torch, config, weights, batches,
                                                       "cpu").step)
        watch = _common.OthersCpu()
        done = take_turns(players, steps)
        activation_bytes = recorder.activation_bytes
    result = summarise(done["minidl"])
    result["replay"] = blas_replay(result["ops"], torch, steps)
    result.update(losses=losses, others=watch.cell(), activations=activation_bytes,
                  one_pass=one_pass_seconds(activation_bytes),
                  torch=median(done["torch"]) if "torch" in done else None)
    return result


def summarise(pairs: list[tuple[float, dict]]) -> dict:
    """Medians over (plain step seconds, instrumented calls) pairs: the step, each slice, each
    phase's array time, each operation; Python is the median of the pairs' step minus array
    time (paired, so that a change of load between pairs cancels out)."""
    records = [calls for _, calls in pairs]

    def total(calls: dict, keep: Callable) -> float:
        return sum(seconds for key, (seconds, _) in calls.items() if keep(key))

    slices = {kind: median([total(calls, lambda key: key[3] == kind) for calls in records])
              for kind in SLICES}
    phases = {phase: median([total(calls, lambda key: key[0] == phase) for calls in records])
              for phase in PHASES}
    keys = {key for calls in records for key in calls}
    ops = {key: (median([calls.get(key, (0.0, 0))[0] for calls in records]),
                 records[0].get(key, (0.0, 0))[1]) for key in keys}
    return {"step": median([seconds for seconds, _ in pairs]), "slices": slices,
            "python": median([seconds - total(calls, lambda key: True)
                              for seconds, calls in pairs]),
            "phases": phases, "ops": ops}


def blas_replay(ops: dict, torch: Any, count: int) -> dict:
    """The step's BLAS products run again outside the step, on fresh contiguous float32
    operands of the same shapes, as many times each as the step made them: by NumPy (this
    machine's BLAS) and by PyTorch (its own BLAS, MKL on x86) when it is installed, taking turns
    like the steps (``take_turns``, ``count`` counted runs each). Seconds per step, medians: each
    library's BLAS floor on the same arithmetic, the part of the ratio that no change to
    minidl's Python or elementwise work can remove.
    """
    products = {}
    for (_, _, shapes, kind), (_, calls) in ops.items():
        if kind == "BLAS" and len(shapes) == 2:
            products[shapes] = products.get(shapes, 0) + calls
    rng = np.random.default_rng(0)
    operands = [([rng.standard_normal(s).astype(np.float32) for s in shapes], calls)
                for shapes, calls in products.items()]

    def replay(matmul: Callable, pairs: list) -> Callable:
        def run(k: int) -> None:
            for (a, b), calls in pairs:
                for _ in range(calls):
                    matmul(a, b)
        return timed_step(run)

    players = {"numpy": replay(np.matmul, operands)}
    if torch is not None:
        players["torch"] = replay(torch.matmul, [([torch.from_numpy(a) for a in arrays], calls)
                                                 for arrays, calls in operands])
    return {name: median(seconds) for name, seconds in take_turns(players, count).items()}


# ----------------------------------------------------------------------------- the report
def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def share(seconds: float, step: float) -> str:
    return f"{seconds * 1e3:.2f} ({seconds / step:.0%})"


def shape_text(shapes: tuple) -> str:
    return ", ".join("x".join(map(str, s)) or "scalar" for s in shapes)


def print_summary(results: dict, torch_why: Optional[str]) -> None:
    rows = []
    for name, r in results.items():
        step, ideal = r["step"], r["slices"]["BLAS"] + r["one_pass"]
        torch_cell = "n/a" if r["torch"] is None else ms(r["torch"])
        ratio_cell = format_ratio(ratio(step, r["torch"])) if torch_why is None else \
            "n/a (PyTorch not installed)"
        rows.append([name, ms(step), torch_cell, ratio_cell,
                     *(share(r["slices"][kind], step) for kind in SLICES),
                     share(r["python"], step), ms(ideal), f"{step / ideal:.2f}×", r["others"]])
    print_table(["workload", "step ms", "PyTorch ms", "minidl÷PyTorch", "BLAS ms", "elementwise",
                 "copies", "other arrays", "Python", "ideal ms", "step÷ideal", "others"], rows)
    print("Slices are ms per step (share of the step). BLAS, elementwise, copies and other "
          "arrays: NumPy calls timed one by one\nin an instrumented step; Python = the plain "
          "step run beside it minus all of them (autograd, module calls, optimizer loop).\n"
          "Medians over the pairs: the shares add up to 100% within the noise (a negative "
          "Python share is noise).\n"
          "ideal = BLAS + one np.add(a, 0, out=a) pass over the activations the forward keeps "
          "alive.\nothers: CPU share used by other processes meanwhile (BUSY above "
          f"{_common.BUSY_SHARE:.0%}: rerun on a quiet machine).")
    if torch_why is not None:
        print(f"PyTorch: {torch_why}")


def print_details(name: str, r: dict, top: int) -> None:
    step, phases = r["step"], r["phases"]
    sizes = r["activations"]
    print(f"\n{name}: array time by phase: " +
          ", ".join(f"{p} {ms(phases[p])} ms" for p in PHASES) +
          f"; activations: {len(sizes)} arrays, {sum(sizes) / 2**20:.1f} MB, one pass "
          f"{ms(r['one_pass'])} ms")
    plain, profiled = r["losses"]
    same = abs(plain - profiled) <= 1e-6 * max(1.0, abs(plain))
    print(f"  first loss: plain {plain:.6f}, profiled {profiled:.6f} "
          f"({'the same' if same else 'DIFFER: the profiled device does not run the same code'})")
    calls = sum(c for _, c in r["ops"].values())
    products = sum(c for (*_, kind), (_, c) in r["ops"].items() if kind == "BLAS")
    print(f"  {calls} NumPy calls per step, {products} of them BLAS products "
          f"({ms(r['slices']['BLAS'])} ms).")
    replay = r["replay"]
    line = f"  the same products replayed on contiguous operands: NumPy {ms(replay['numpy'])} ms"
    if "torch" in replay:
        line += (f", PyTorch {ms(replay['torch'])} ms (NumPy's BLAS ÷ PyTorch's: "
                 f"{replay['numpy'] / replay['torch']:.2f}×); minidl's BLAS alone is "
                 f"{r['slices']['BLAS'] / r['torch']:.2f}× PyTorch's whole step")
    print(line)
    print("  The top calls outside the BLAS floor:")
    ranked = sorted(((t, calls, key) for key, (t, calls) in r["ops"].items()
                     if key[3] != "BLAS"), reverse=True)[:top]
    print_table(["  phase", "operation", "input shapes", "slice", "calls", "ms/step", "share"],
                [["  " + phase, label, shape_text(shapes), kind, calls, ms(t), f"{t / step:.1%}"]
                 for t, calls, (phase, label, shapes, kind) in ranked], align_left=4)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="",
                        help="only the workloads whose name contains this (e.g. 'lstm', 'B=64')")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per framework, the instrumented one included "
                             "(default: bench_train's count for each workload)")
    parser.add_argument("--top", type=int, default=8, help="operations listed per workload")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap BLAS and torch threads (default: the libraries' own)")
    args = parser.parse_args(argv)

    configs = [c for c in CONFIGS if args.workload.lower() in c.name.lower()]
    if not configs:
        parser.error(f"no workload matches {args.workload!r}; the workloads: "
                     + ", ".join(repr(c.name) for c in CONFIGS))
    torch, torch_why = _common.optional_import("torch", "pip install torch")
    extra = _common.limit_threads(args.threads)
    if torch is not None:
        extra.append(f"torch {torch.__version__}, torch.get_num_threads() = "
                     f"{torch.get_num_threads()}")
    for line in _common.environment_lines(extra):
        print(line)
    results = {}
    for config in configs:
        steps = args.steps or config.steps
        print(f"measuring {config.name} ...", flush=True)
        results[config.name] = profile_workload(config, torch, steps)
    print()
    print_summary(results, None if torch is not None else torch_why)
    for name, r in results.items():
        print_details(name, r, args.top)


if __name__ == "__main__":
    main()
