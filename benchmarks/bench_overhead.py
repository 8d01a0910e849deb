"""Forward + backward cost per op, on tiny (4-element) and medium (8,192-element) arrays.

For each op, a graph of N applications (default 100) is built on tensors that require grad and
then differentiated; the figure is (forward + backward) / N in microseconds, for

- minidl (also split into forward-only and backward-only columns),
- the same math written by hand in raw NumPy, forward and backward formulas: the floor that
  any NumPy framework pays for the arithmetic itself, with no graph and no Python objects,
- PyTorch eager on the CPU, when installed (its default thread count, printed).

Graphs. Most ops are a chain ``y = op(y, c)`` of N links (``c`` a constant, requires_grad=False)
and the backward pass starts from ``y.backward(ones)``. Two ops cannot be chained N times:
``exp`` overflows float32 after 5 links (and PyTorch slows down several-fold on inf), so it
runs as 25 chains of 4 links from 25 leaves; ``sum`` reduces to a scalar, so it runs as N sums
of N separate leaves. These fan-out graphs end in one ``stack(...).sum()`` (2 extra ops for
the whole graph, counted in the per-op figure, the same in all three columns).
"backward" includes freeing the graph. Target: ≤ 3 µs per op (forward + backward) at 4
elements on the 2-core reference machine.

BLAS threads: after a matrix product OpenBLAS' worker threads spin for about 0.1 s, which slows
whatever runs next on a 2-core machine; so in the medium matmul row each run waits 0.2 s and
runs once uncounted before it is timed.

The machine is noisy: the three implementations run alternately in one loop (the order rotates
each repeat), each figure is the median over repeats and ratios are ratios of those medians.

Run from the repository root:
    python benchmarks/bench_overhead.py            # about a minute per BLAS environment
    python benchmarks/bench_overhead.py --quick    # a few seconds
Needs only NumPy; PyTorch (pip install torch) and threadpoolctl add columns and BLAS details.
The figures are printed for the environment as set and again, in a fresh process, with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed (see benchmarks/_common.py).
"""
from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's minidl
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from _common import format_ratio, median, print_table, ratio  # noqa: E402

TARGET_US = 3.0  # per op, forward + backward, at 4 elements
EXP_CHAIN = 4    # exp links per chain (a 5th overflows float32 for inputs in [-2, -1])
BLAS_PAUSE_S = 0.2  # before each run of the medium matmul row (see _paired)


@dataclass
class OpSpec:
    """One row family. ``apply(y, c)`` is written with methods minidl and PyTorch share."""
    name: str
    graph: str                     # 'chain', 'exp-chains' or 'fan-out'
    apply: Callable[[Any, Any], Any]
    numpy_forward: Callable[[np.ndarray, Any], tuple]          # -> (output, saved)
    numpy_backward: Callable[[np.ndarray, Any, Any], np.ndarray]  # (g, saved, c) -> g_input
    constant: Callable[[tuple, np.random.Generator], Any] = lambda shape, rng: None
    shapes: Optional[dict] = None  # size name -> input shape (default: (2, 2) and (64, 128))


# ----------------------------------------------------------------------------- the ops
def _near_one(shape, rng):
    return rng.uniform(0.99, 1.01, shape).astype(np.float32)


def _orthogonal(shape, rng):
    n = shape[1]
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q.astype(np.float32)


def _reversed_rows(shape, rng):
    return np.arange(shape[0] - 1, -1, -1)


def _getitem_backward_slice(g, saved, c):
    full = np.zeros(saved, dtype=g.dtype)
    full[0:g.shape[0]] = g
    return full


def _getitem_backward_ints(g, saved, c):
    full = np.zeros(saved, dtype=g.dtype)
    np.add.at(full, c, g)
    return full


def _sum_backward(g, shape, c):
    full = np.empty(shape, dtype=np.float32)  # the cheapest NumPy spelling (broadcast_to is a
    full.fill(g)                              # view, but costs several µs of Python)
    return full


def _sigmoid_forward(y, c):
    out = np.tanh(y * 0.5)
    out *= 0.5
    out += 0.5
    return out, out


OPS = [
    OpSpec("add", "chain", lambda y, c: y + c,
           lambda y, c: (y + c, None), lambda g, s, c: g,
           lambda shape, rng: rng.uniform(-0.01, 0.01, shape).astype(np.float32)),
    OpSpec("mul", "chain", lambda y, c: y * c,
           lambda y, c: (y * c, None), lambda g, s, c: g * c, _near_one),
    OpSpec("div", "chain", lambda y, c: y / c,
           lambda y, c: (y / c, None), lambda g, s, c: g / c, _near_one),
    OpSpec("tanh", "chain", lambda y, c: y.tanh(),
           lambda y, c: (lambda out: (out, out))(np.tanh(y)),
           lambda g, out, c: g * (1 - out * out)),
    OpSpec("sigmoid", "chain", lambda y, c: y.sigmoid(),
           _sigmoid_forward, lambda g, out, c: g * out * (1 - out)),
    OpSpec("exp", "exp-chains", lambda y, c: y.exp(),
           lambda y, c: (lambda out: (out, out))(np.exp(y)), lambda g, out, c: g * out),
    OpSpec("matmul", "chain", lambda y, c: y @ c,
           lambda y, c: (y @ c, None), lambda g, s, c: g @ c.T, _orthogonal),
    OpSpec("sum", "fan-out", lambda y, c: y.sum(),
           lambda y, c: (y.sum(), y.shape), _sum_backward,
           shapes={"tiny": (4,), "medium": (8192,)}),
    OpSpec("getitem[0:R]", "chain", lambda y, c: y[0:y.shape[0]],
           lambda y, c: (y[0:y.shape[0]], y.shape), _getitem_backward_slice),
    OpSpec("getitem[int array]", "chain", lambda y, c: y[c],
           lambda y, c: (y[c], y.shape), _getitem_backward_ints, _reversed_rows),
]
DEFAULT_SHAPES = {"tiny": (2, 2), "medium": (64, 128)}


def shape_text(spec: OpSpec, shape: tuple) -> str:
    text = "x".join(map(str, shape))
    if spec.name == "matmul":
        return f"{text} @ {shape[1]}x{shape[1]}"
    return text


def graph_inputs(spec: OpSpec, shape: tuple, links: int, rng) -> tuple[list, Any]:
    """The leaves (host arrays) of one graph and its constant operand."""
    if spec.graph == "chain":
        leaves = [rng.uniform(-1, 1, shape).astype(np.float32)]
    elif spec.graph == "exp-chains":
        leaves = [rng.uniform(-2, -1, shape).astype(np.float32)
                  for _ in range(links // EXP_CHAIN)]
    else:
        leaves = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(links)]
    return leaves, spec.constant(shape, rng)


def links_per_leaf(spec: OpSpec, links: int) -> int:
    return {"chain": links, "exp-chains": EXP_CHAIN, "fan-out": 1}[spec.graph]


# ----------------------------------------------------------------------------- the runners
# Each ``make_*`` returns ``run() -> (forward seconds, backward seconds)`` for one whole graph.
def make_minidl(spec: OpSpec, leaves_np: list, constant: Any, links: int):
    import minidl as md
    import minidl.functions as F

    leaves = [md.tensor(a, requires_grad=True) for a in leaves_np]
    c = md.tensor(constant) if isinstance(constant, np.ndarray) and constant.dtype.kind == "f" \
        else constant
    return _graph_runner(spec, leaves, c, np.ones_like(leaves_np[0]), links,
                         lambda outs: F.stack(outs).sum())


def make_torch(torch, spec: OpSpec, leaves_np: list, constant: Any, links: int):
    leaves = [torch.tensor(a, requires_grad=True) for a in leaves_np]
    c = torch.from_numpy(np.ascontiguousarray(constant)) if constant is not None else None
    return _graph_runner(spec, leaves, c, torch.ones(leaves_np[0].shape), links,
                         lambda outs: torch.stack(outs).sum())


def _graph_runner(spec: OpSpec, leaves: list, c: Any, ones: Any, links: int, stack_sum):
    """The timed graph, the same code for minidl and PyTorch: ``run()`` builds it and
    differentiates it, returning (forward, backward) seconds; ``gradient()`` reads leaf 0's."""
    per_leaf = links_per_leaf(spec, links)
    apply = spec.apply
    clock = time.perf_counter

    def run():
        for leaf in leaves:
            leaf.grad = None
        start = clock()
        outs = []
        for leaf in leaves:
            y = leaf
            for _ in range(per_leaf):
                y = apply(y, c)
            outs.append(y)
        root = outs[0] if spec.graph == "chain" else stack_sum(outs)
        middle = clock()
        if spec.graph == "chain":
            root.backward(ones)
        else:
            root.backward()
        del root, outs, y
        end = clock()
        return middle - start, end - middle

    def gradient():
        return leaves[0].grad.numpy()
    return run, gradient


def make_numpy(spec: OpSpec, leaves_np: list, constant: Any, links: int):
    """The floor: the forward values and the backward formulas, by hand, nothing else."""
    per_leaf = links_per_leaf(spec, links)
    forward, backward = spec.numpy_forward, spec.numpy_backward
    c = constant
    clock = time.perf_counter
    result = {}

    def run():
        start = clock()
        tapes, outs = [], []
        for x in leaves_np:
            y, tape = x, []
            for _ in range(per_leaf):
                y, saved = forward(y, c)
                tape.append(saved)
            tapes.append(tape)
            outs.append(y)
        if spec.graph != "chain":
            np.stack(outs).sum()  # the root a framework computes
        middle = clock()
        if spec.graph == "chain":
            upstream = [np.ones_like(outs[0])]
        else:
            upstream = np.broadcast_to(np.float32(1), (len(outs),) + np.shape(outs[0]))
        grads = []
        for k, tape in enumerate(tapes):
            g = upstream[k]
            for saved in reversed(tape):
                g = backward(g, saved, c)
            grads.append(g)
        del tapes, outs
        end = clock()
        result["gradient"] = grads[0]
        return middle - start, end - middle

    def gradient():
        return np.asarray(result["gradient"])
    return run, gradient


# ----------------------------------------------------------------------------- measuring
def measure(args) -> dict:
    torch, torch_reason = _common.optional_import("torch", "pip install torch")
    extra = _common.limit_threads(args.threads)
    if torch is not None:
        extra.append(f"torch {torch.__version__}, torch.get_num_threads() = "
                     f"{torch.get_num_threads()}" + ("" if args.threads else " (default)"))
    else:
        extra.append(f"torch: n/a, {torch_reason}")
    for line in _common.environment_lines(extra):
        print(line)
    links, repeats = args.links, args.repeats
    print(f"{links} op applications per graph, {repeats} paired repeats (+{args.warmup} warm-up),"
          f" median per op in µs (forward + backward unless the column says otherwise)")
    print()

    rng = np.random.default_rng(0)
    rows, results = [], []
    for spec in OPS:
        for size, shape in (spec.shapes or DEFAULT_SHAPES).items():
            leaves, constant = graph_inputs(spec, shape, links, rng)
            runners = {"minidl": make_minidl(spec, leaves, constant, links),
                       "numpy": make_numpy(spec, leaves, constant, links)}
            if torch is not None:
                runners["torch"] = make_torch(torch, spec, leaves, constant, links)
            check = _check_gradients(runners)
            # Multi-threaded BLAS runs only for the medium matmul (OpenBLAS keeps tiny products
            # on one thread), so only that row pauses between implementations.
            pause = BLAS_PAUSE_S if spec.name == "matmul" and size == "medium" else 0.0
            watch = _common.OthersCpu()
            times = _paired(runners, repeats, args.warmup, pause)
            others = watch.cell()
            per_op = {name: median([f + b for f, b in t]) / links * 1e6
                      for name, t in times.items()}
            forward = median([f for f, _ in times["minidl"]]) / links * 1e6
            backward = median([b for _, b in times["minidl"]]) / links * 1e6
            torch_us = per_op.get("torch")
            target = ""
            if size == "tiny":
                target = "ok" if per_op["minidl"] <= TARGET_US else "MISSED"
            rows.append([spec.name, shape_text(spec, shape), spec.graph,
                         f"{forward:.2f}", f"{backward:.2f}", f"{per_op['minidl']:.2f}",
                         f"{per_op['numpy']:.2f}",
                         f"{torch_us:.2f}" if torch_us is not None else "n/a",
                         format_ratio(ratio(per_op["minidl"], per_op["numpy"])),
                         format_ratio(ratio(per_op["minidl"], torch_us)),
                         target, check, others])
            results.append({"op": spec.name, "size": size, "minidl": per_op["minidl"],
                            "minidl_forward": forward, "minidl_backward": backward,
                            "numpy": per_op["numpy"], "torch": torch_us})
    headers = ["op", "shape", "graph", "minidl fwd", "minidl bwd", "minidl", "numpy floor",
               "torch", "minidl/numpy", "minidl/torch", f"≤{TARGET_US:g}µs @4", "grad check", "others"]
    print_table(headers, rows, align_left=3)
    print(f"others: CPU share used by other processes while the row was measured (BUSY above "
          f"{_common.BUSY_SHARE:.0%}: rerun on a quiet machine)")
    if torch is None:
        print(f"torch column n/a: {torch_reason}")
    _print_summary(results)
    return {"architecture": _common.blas_architecture(), "rows": results}


def _check_gradients(runners: dict) -> str:
    """Run each graph once and compare the first leaf's gradient with the NumPy floor's."""
    reference = None
    worst = 0.0
    for name, (run, gradient) in runners.items():
        run()
        g = gradient()
        if reference is None:
            reference = g
            continue
        scale = max(1.0, float(np.max(np.abs(reference))))
        worst = max(worst, float(np.max(np.abs(g - reference))) / scale)
    return "ok" if worst < 1e-4 else f"DIFF {worst:.1e}"


def _paired(runners: dict, repeats: int, warmup: int, pause: float = 0.0) -> dict:
    """Alternate the implementations (rotating the order) and collect (fwd, bwd) per run.

    ``pause`` (seconds, before each run) lets the BLAS worker threads of the implementation
    that ran before go idle: they spin for about 0.1 s after a call and would slow the next one.
    """
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name][0]()
    times = {name: [] for name in names}
    gc.collect()
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            if pause:
                time.sleep(pause)
                runners[name][0]()  # wakes the threads; not counted
            times[name].append(runners[name][0]())
    return times


def _print_summary(results: list) -> None:
    for size in ("tiny", "medium"):
        subset = [r for r in results if r["size"] == size]
        line = f"geometric mean over the {size} rows: minidl " \
               f"{_geomean([r['minidl'] for r in subset]):.2f} µs/op, numpy floor " \
               f"{_geomean([r['numpy'] for r in subset]):.2f} µs/op"
        if all(r["torch"] is not None for r in subset):
            line += f", torch {_geomean([r['torch'] for r in subset]):.2f} µs/op"
        print(line)


def _geomean(values: list) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def compare(as_set: dict, unset: dict) -> None:
    """Side by side: minidl and torch per op in the two BLAS environments."""
    print(f"NumPy's OpenBLAS kernel: {as_set['architecture']} as set, "
          f"{unset['architecture']} unset")
    rows = []
    for a, u in zip(as_set["rows"], unset["rows"]):
        rows.append([a["op"], a["size"], f"{a['minidl']:.2f}", f"{u['minidl']:.2f}",
                     f"{a['numpy']:.2f}", f"{u['numpy']:.2f}",
                     "n/a" if a["torch"] is None else f"{a['torch']:.2f}",
                     "n/a" if u["torch"] is None else f"{u['torch']:.2f}"])
    print_table(["op", "size", "minidl set", "minidl unset", "numpy set", "numpy unset",
                 "torch set", "torch unset"], rows, align_left=2)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats (a smoke run)")
    parser.add_argument("--links", type=int, default=100,
                        help="op applications per graph (a multiple of 4; default 100)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="paired repeats per row (default 21, 7 with --quick)")
    _common.add_environment_arguments(parser)
    args = parser.parse_args(argv)
    passthrough = [a for a in (sys.argv[1:] if argv is None else argv)
                   if a not in ("--child", "--both")]
    if args.links % EXP_CHAIN:
        parser.error(f"--links must be a multiple of {EXP_CHAIN}")
    if args.repeats is None:
        args.repeats = 7 if args.quick else 21
    args.warmup = 2 if args.quick else 3
    if args.child:
        _common.write_results(args.results_json, measure(args))
        return
    _common.run_both_environments(passthrough, lambda: measure(args), compare,
                                  always_both=args.both)


if __name__ == "__main__":
    main()
