"""The Transformer's fused ops against their NumPy floor and their readable reference paths.

For ``F.scaled_dot_product_attention`` (causal) and ``F.layer_norm``, forward + backward with a
random upstream gradient, at the shapes of the shipped GPT (batch 16, 4 heads, 128 positions,
head size 48; layer norm over 192 features of 16·128 tokens):

- minidl fused: the Function as the model runs it (autograd bookkeeping included);
- NumPy floor: the same arithmetic written directly in NumPy with no framework around it
  (the two/four batched matmuls, one exp, the row sums) — what a perfect implementation of
  this algorithm on NumPy would cost;
- minidl reference: the readable path from primitive ops, differentiated by autograd.

Target (large-model issue): fused ≤ 1.5× the NumPy floor. Paired, interleaved medians.

    python benchmarks/bench_transformer_ops.py [--repeats 15]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from _common import format_ratio, median, print_table  # noqa: E402

import minidl as md  # noqa: E402
import minidl.functions as F  # noqa: E402
from minidl.functions.attention import attention_reference  # noqa: E402
from minidl.functions.normalization import layer_norm_reference  # noqa: E402

B, H, T, D = 16, 4, 128, 48
FEATURES = H * D


def numpy_attention(q, k, v, g, causal_bias):
    """Forward and backward of causal attention in plain NumPy (the floor)."""
    s = q @ k.swapaxes(-1, -2)
    s *= 1.0 / np.sqrt(D)
    s += causal_bias
    s -= s.max(axis=-1, keepdims=True)
    p = np.exp(s, out=s)
    p /= p.sum(axis=-1, keepdims=True)
    out = p @ v
    dv = p.swapaxes(-1, -2) @ g
    dp = g @ v.swapaxes(-1, -2)
    dp -= (dp * p).sum(axis=-1, keepdims=True)
    dp *= p
    dp *= 1.0 / np.sqrt(D)
    return out, dp @ k, dp.swapaxes(-1, -2) @ q, dv


def numpy_layer_norm(x, w, b, g):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + 1e-5)
    xh = xc * rstd
    y = xh * w + b
    gw = g * w
    dx = (gw - gw.mean(axis=-1, keepdims=True) - xh * (gw * xh).mean(axis=-1, keepdims=True)) \
        * rstd
    return y, dx, (g * xh).sum(axis=0), g.sum(axis=0)


def minidl_step(fn, inputs, g):
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    out.backward(g)


def time_pairs(candidates: dict, repeats: int) -> dict:
    times = {name: [] for name in candidates}
    for name, run in candidates.items():  # warm-up
        run()
    for _ in range(repeats):
        for name, run in candidates.items():
            gc.collect()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    extra = _common.limit_threads(args.threads)
    for line in _common.environment_lines(extra):
        print(line)
    rng = np.random.default_rng(0)
    rows = []

    q, k, v, g = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(4))
    bias = np.where(np.tril(np.ones((T, T), dtype=bool)), 0.0, -np.inf).astype(np.float32)
    tq, tk, tv = (md.tensor(a, requires_grad=True) for a in (q, k, v))
    tg = md.tensor(g)
    times = time_pairs({
        "floor": lambda: numpy_attention(q, k, v, g, bias),
        "fused": lambda: minidl_step(lambda a, b, c: F.scaled_dot_product_attention(
            a, b, c, is_causal=True), (tq, tk, tv), tg),
        "reference": lambda: minidl_step(lambda a, b, c: attention_reference(
            a, b, c, is_causal=True), (tq, tk, tv), tg),
    }, args.repeats)
    rows.append(["attention (causal) fwd+bwd", f"{(B, H, T, D)}", *(f"{times[n] * 1e3:.1f}" for n in
                 ("floor", "fused", "reference")),
                 format_ratio(times["fused"] / times["floor"], "≤ 1.5×"),
                 format_ratio(times["reference"] / times["fused"])])

    x = rng.standard_normal((B * T, FEATURES)).astype(np.float32)
    w, b = (rng.standard_normal(FEATURES).astype(np.float32) for _ in range(2))
    gx = rng.standard_normal((B * T, FEATURES)).astype(np.float32)
    tx, tw, tb = (md.tensor(a, requires_grad=True) for a in (x, w, b))
    tgx = md.tensor(gx)
    times = time_pairs({
        "floor": lambda: numpy_layer_norm(x, w, b, gx),
        "fused": lambda: minidl_step(lambda a, c, d: F.layer_norm(a, FEATURES, c, d),
                                     (tx, tw, tb), tgx),
        "reference": lambda: minidl_step(lambda a, c, d: layer_norm_reference(a, FEATURES, c, d),
                                         (tx, tw, tb), tgx),
    }, args.repeats)
    rows.append(["layer_norm fwd+bwd", f"{(B * T, FEATURES)}", *(f"{times[n] * 1e3:.1f}" for n in
                 ("floor", "fused", "reference")),
                 format_ratio(times["fused"] / times["floor"], "≤ 1.5×"),
                 format_ratio(times["reference"] / times["fused"])])
    print(f"\nmedians of {args.repeats} interleaved repeats, ms (float32)")
    print_table(["op", "shape", "NumPy floor", "minidl fused", "minidl reference",
                 "fused÷floor", "reference÷fused"], rows)


if __name__ == "__main__":
    main()
