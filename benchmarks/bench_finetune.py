"""Fine-tuning methods side by side: trainable parameters, time per step and peak memory of one
training step of each, at the demo's shapes (batch 32, 64 characters, the shipped GPT).

    python benchmarks/bench_finetune.py [--checkpoint gpt-zh-char-small] [--steps 5]

Peak memory is the largest amount of memory NumPy allocated during a step beyond what was
held before it (``tracemalloc`` sees NumPy's allocations): activations kept for backward,
gradients and optimizer state. The linear probe's step is one batch of frozen features
(no gradient), its training a logistic regression on the host.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
from _common import median, print_table  # noqa: E402

import minidl as md  # noqa: E402
from minidl import functions as F, nn, optim  # noqa: E402
from minidl.apps.finetune import LORA_TARGETS, Recipe  # noqa: E402
from minidl.models import GPT, GPTClassifier  # noqa: E402


def build(method: str, pretrained: GPT):
    body = GPT(pretrained.config)
    body.load_state_dict(pretrained.state_dict())
    model = GPTClassifier(body)
    recipe = Recipe()
    if method == "lora":
        nn.apply_lora(body, recipe.lora_r, recipe.lora_alpha, 0.0, LORA_TARGETS)
        params = [p for p in body.parameters() if p.requires_grad] + model.head.parameters()
    elif method == "probe":
        body.requires_grad_(False)
        params = model.head.parameters()
    else:  # full, scratch: every weight
        params = model.parameters()
    return model, params


def step_once(model, params, opt, x, y, method):
    if method == "probe":
        with md.no_grad():
            model.pooled(x)
        return
    opt.zero_grad()
    loss = F.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    opt.step()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="gpt-zh-char-small")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=["probe", "lora", "full"])
    args = parser.parse_args(argv)
    for line in _common.environment_lines(_common.limit_threads(args.threads)):
        print(line)
    pretrained = md.pretrained.load(args.checkpoint, folder=args.weights).model
    rng = np.random.default_rng(0)
    x = rng.integers(1, pretrained.config.vocab_size, (32, 64))
    y = md.tensor(rng.integers(0, 2, (32, 1)).astype(np.float32))
    rows = []
    for method in args.methods:
        model, params = build(method, pretrained)
        model.train()
        opt = optim.AdamW(params, lr=1e-4)
        step_once(model, params, opt, x, y, method)          # warm-up; optimizer state exists
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step_once(model, params, opt, x, y, method)
            times.append(time.perf_counter() - start)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        step_once(model, params, opt, x, y, method)
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        trainable = sum(p.data.size for p in params)
        total = model.num_parameters()
        rows.append([method, f"{trainable:,}", f"{100 * trainable / total:.1f} %",
                     f"{median(times) * 1e3:.0f}", f"{peak / 2**20:.1f}"])
    print(f"\none step, batch 32 × 64 characters, median of {args.steps}")
    print_table(["method", "trainable parameters", "share", "ms / step", "peak MB in a step"],
                rows)


if __name__ == "__main__":
    main()
