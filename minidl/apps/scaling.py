"""The scaling picture: downstream accuracy of a pretraining run's own checkpoints against the
tokens they had seen — where pretraining starts to pay, and why more data and compute matter.

    minidl pretrain RUN --scaling        # after a run with --keep-every N

For the untrained model (step 0, rebuilt from the run's seed) and each kept checkpoint
(``checkpoint-NNNNNN.npz``) it measures, on the test split, the linear
probe at 500 and 2,000 labels and LoRA at 500 labels (the demo's methods and recipes, label
subset 0), plus the references that do not depend on pretraining: the TF-IDF baseline and
the GPT trained from scratch at the same budgets. The result goes to ``RUN/scaling.json``;
``--export`` copies it into the shipped checkpoint's provenance, and ``minidl demo`` and the
lessons plot it. Choices inside each method (the probe's C, TF-IDF's C) use the validation
split only.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

import minidl as md
from minidl.apps import finetune as ft
from minidl.apps.jobs import default_workers, run_jobs
from minidl.data.vocabulary import encode_texts as encode
from minidl.data import load_reviews
from minidl.models.gpt import GPT

MAXLEN, VAL_EXAMPLES, SEED = 64, 600, 0
PROBE_BUDGETS, LORA_BUDGETS = (500, 2000), (500,)
STEPS = {500: 60, 2000: 120}


def measure(run_folder: str, verbose: int = 1, probe_budgets=PROBE_BUDGETS,
            lora_budgets=LORA_BUDGETS, steps: Dict[int, int] = STEPS,
            val_examples: int = VAL_EXAMPLES, test_examples: Any = None,
            texts_for_run: Any = None, workers: Optional[int] = None) -> Dict[str, Any]:
    """Measure every kept checkpoint of ``run_folder``; write and return ``scaling.json``.
    Checkpoints are measured side by side in ``workers`` processes (default: one per core).
    (The keyword arguments shrink the measurement for tests.)"""
    from minidl.apps.demo import subset
    from minidl.apps.pretrain import REVIEW_SPLIT_SEED, Run

    start = time.perf_counter()
    run = Run(run_folder, verbose=0, texts=texts_for_run)
    kept = sorted(f for f in os.listdir(run_folder) if f.startswith("checkpoint-"))
    if not kept:
        raise ValueError(f"{run_folder} has no kept checkpoints (checkpoint-NNNNNN.npz); "
                         f"pretrain with --keep-every N")
    reviews = load_reviews(split_seed=REVIEW_SPLIT_SEED)
    texts = {"train": list(reviews.train.texts), "val": list(reviews.val.texts)[:val_examples],
             "test": list(reviews.test.texts)[:test_examples]}
    labels = {"train": reviews.train.labels, "val": reviews.val.labels[:val_examples],
              "test": reviews.test.labels[:test_examples]}
    maxlen = min(MAXLEN, run.model.config.context_length)
    ids = {k: encode(run.tokenizer, v, maxlen) for k, v in texts.items()}
    budgets = sorted(set(probe_budgets) | set(lora_budgets))
    picked = {b: subset(labels["train"], b, SEED * 100) for b in budgets}
    needed = np.unique(np.concatenate(list(picked.values())))
    recipe = ft.Recipe()

    def say(text: str) -> None:
        if verbose:
            print(f"[scaling {time.perf_counter() - start:5.0f} s] {text}", flush=True)

    md.manual_seed(run.cfg.seed)  # the run's step 0: Run builds its model right after this
    initial = GPT(run.model.config).state_dict()
    _SHARED.update(run=run, run_folder=run_folder, initial=initial, ids=ids, labels=labels,
                   picked=picked, needed=needed, probe_budgets=probe_budgets,
                   lora_budgets=lora_budgets, steps=steps, recipe=recipe, texts=texts,
                   budgets=budgets)

    def done(i: int, result) -> None:
        name, tokens, accuracies = result
        say(f"{name}" + ("" if tokens is None else f" ({tokens:,} tokens)") + ": " +
            ", ".join(f"{k} {v:.3f}" for k, v in accuracies.items()))
    # one job per checkpoint, and one for the references (TF-IDF and GPT from scratch at each
    # budget, which do not depend on pretraining), on every core (apps/jobs.py)
    jobs = ["references", None] + kept
    try:
        results = run_jobs(_measure_checkpoint, jobs,
                           default_workers() if workers is None else workers, done)
    finally:
        _SHARED.clear()
    references = [{"label": k, "test_accuracy": v} for k, v in results[0][2].items()]
    results = results[1:]
    series: Dict[str, Dict[str, List[float]]] = {}
    for _, tokens, accuracies in results:
        for label, accuracy in accuracies.items():
            _add(series, label, tokens, accuracy)
    result = {"command": f"minidl pretrain {run_folder} --scaling",
              "split": "test (choices inside each method on 600 validation texts)",
              "series": [{"label": k, **v} for k, v in series.items()],
              "references": references, "seconds": round(time.perf_counter() - start, 1)}
    with open(os.path.join(run_folder, "scaling.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    return result


# What the worker processes need, set by ``measure`` before they fork.
_SHARED: Dict[str, Any] = {}


def _measure_checkpoint(name: Optional[str]) -> Tuple[str, Optional[int], Dict[str, float]]:
    """Test accuracy of the probes and LoRA from one kept checkpoint (None: step 0), or, for
    ``'references'``, of TF-IDF and the GPT from scratch at every budget."""
    c = _SHARED
    run, ids, labels, picked = c["run"], c["ids"], c["labels"], c["picked"]
    if name == "references":
        accuracies, tfidf = {}, ft.TfidfBaseline(c["texts"])
        for b in c["budgets"]:
            y = labels["train"][picked[b]]
            predict = tfidf.fit(picked[b], y, labels["val"])
            accuracies[f"TF-IDF + LR, {b} labels"] = \
                ft.scores(labels["test"], predict("test"))["accuracy"]
            model = ft.finetune("scratch", ids["train"][picked[b]], y, c["steps"][b], 32,
                                SEED * 100, c["recipe"], run.model)
            accuracies[f"GPT from scratch, {b} labels"] = \
                ft.scores(labels["test"], model.predict_proba(ids["test"]))["accuracy"]
        return name, None, accuracies
    if name is None:  # the untrained model: Run builds it from the run's seed
        state, name = {"model": c["initial"], "tokens": 0}, "step 0 (untrained)"
    else:
        state = md.load(os.path.join(c["run_folder"], name))
    run.model.load_state_dict(state["model"])
    tokens, accuracies = int(state["tokens"]), {}
    features = {k: ft.pooled_features(run.model, v) for k, v in ids.items() if k != "train"}
    train_features = np.zeros((len(ids["train"]), features["val"].shape[1]))
    train_features[c["needed"]] = ft.pooled_features(run.model, ids["train"][c["needed"]])
    for b in c["probe_budgets"]:
        probe = ft.fit_probe(train_features[picked[b]], labels["train"][picked[b]],
                             features["val"], labels["val"], SEED)
        acc = ft.scores(labels["test"], probe.predict_proba(features["test"])[:, 1])
        accuracies[f"linear probe, {b} labels"] = acc["accuracy"]
    for b in c["lora_budgets"]:
        model = ft.finetune("lora", ids["train"][picked[b]], labels["train"][picked[b]],
                            c["steps"][b], 32, SEED * 100, c["recipe"], run.model)
        acc = ft.scores(labels["test"], model.predict_proba(ids["test"]))
        accuracies[f"LoRA, {b} labels"] = acc["accuracy"]
    return name, tokens, accuracies


def _add(series: Dict[str, Dict[str, List[float]]], label: str, tokens: int,
         accuracy: float) -> None:
    entry = series.setdefault(label, {"tokens": [], "test_accuracy": []})
    entry["tokens"].append(tokens)
    entry["test_accuracy"].append(float(accuracy))
