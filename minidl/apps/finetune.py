"""Fine-tuning methods for a pretrained GPT, side by side (微调):

- ``full``: every weight trains; the pretrained body at a smaller learning rate than the new
  head (discriminative learning rates), so the head's early, random gradients do not wreck it.
- ``lora``: the body is frozen and low-rank adapters train on its attention and MLP
  projections (``nn.apply_lora``), plus the head: a few percent of the parameters.
- ``probe``: the body is frozen and only a linear classifier is fitted on its pooled features
  (computed once) — what the pretrained representation knows, without any adaptation.
- ``scratch``: the same architecture from random weights (what pretraining is measured against),
  and ``lstm``: the seed's LSTM classifier from scratch.

Every method trains for a fixed number of optimizer steps on the labelled subset (batches
drawn with a seeded generator), with AdamW, a short warmup and linear decay, and gradient
clipping. Returns a model whose ``predict_proba(ids)`` gives P(positive).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import minidl as md
from minidl import backend, nn, optim
from minidl import functions as F
from minidl import metrics
from minidl.autograd import no_grad
from minidl.models.gpt import GPT, GPTClassifier


@dataclass
class Recipe:
    """The hyper-parameters of one fine-tuning method (chosen on validation, never on test)."""

    lr: float = 1e-3              # head (and everything, from scratch)
    lr_body: float = 1e-4         # pretrained body (full fine-tuning)
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    weight_decay: float = 0.01
    warmup: float = 0.1           # share of the steps
    clip: float = 1.0
    dropout: float = 0.1


LORA_TARGETS = ("qkv", "proj", "fc")


def _schedule(step: int, steps: int, warmup: float) -> float:
    """Linear warmup over the first ``warmup`` share of the steps, then linear decay to 0."""
    w = max(1, int(round(warmup * steps)))
    if step < w:
        return (step + 1) / w
    return max(0.0, (steps - step) / max(1, steps - w))


def train_steps(model: nn.Module, groups: List[Dict[str, Any]], loss_fn: Callable,
                x: np.ndarray, y: np.ndarray, steps: int, batch_size: int, seed: int,
                recipe: Recipe, on_step: Optional[Callable[[], None]] = None) -> List[float]:
    """``steps`` AdamW steps on batches of (x, y), epochs shuffled by ``seed``."""
    optimizer = optim.AdamW(groups, weight_decay=recipe.weight_decay)
    base = [g["lr"] for g in optimizer.param_groups]
    rng = np.random.default_rng(seed)
    order, cursor, losses = rng.permutation(len(x)), 0, []
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    device = trainable[0].device
    model.train()
    for step in range(steps):
        if cursor + batch_size > len(order) and cursor > 0:
            order, cursor = rng.permutation(len(x)), 0
        rows = order[cursor:cursor + batch_size]
        cursor += batch_size
        factor = _schedule(step, steps, recipe.warmup)
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * factor
        optimizer.zero_grad()
        xb = backend.to_device(x[rows], device)
        yb = backend.to_device(y[rows].reshape(-1, 1).astype(np.float32), device)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optim.clip_grad_norm(trainable, recipe.clip)
        optimizer.step()
        losses.append(float(loss.item()))
        if on_step is not None:
            on_step()
    model.eval()
    return losses


class Classifier:
    """A trained classifier of any method: ``predict_proba(ids)`` → P(positive), shape (n,)."""

    def __init__(self, method: str, model: Optional[nn.Module] = None,
                 logits: bool = True, probe: Any = None, body: Optional[GPT] = None):
        self.method, self.model, self.logits, self.probe, self.body = \
            method, model, logits, probe, body
        self.losses: List[float] = []
        self.seconds = 0.0
        self.trainable = 0

    def predict_proba(self, ids: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if self.probe is not None:
            return self.probe.predict_proba(pooled_features(self.body, ids, batch_size))[:, 1]
        self.model.eval()

        def probabilities(rows: np.ndarray) -> np.ndarray:
            z = self.model(backend.to_device(rows, self.model.device)).data
            p = backend.to_numpy(z).astype(np.float64).ravel()
            return 1.0 / (1.0 + np.exp(-p)) if self.logits else p
        return by_length(ids, batch_size, probabilities)


def by_length(ids: np.ndarray, batch_size: int, fn: Callable[[np.ndarray], np.ndarray]
              ) -> np.ndarray:
    """``fn`` over batches of ``ids`` (n, time) formed in order of text length, the results put
    back in the original order. A GPT classifier drops the padding columns a batch shares, so
    short texts batched together cost what their length costs, not ``maxlen``."""
    order = np.argsort((np.asarray(ids) != 0).sum(axis=1), kind="stable")
    out = []
    with no_grad():
        for first in range(0, len(ids), batch_size):
            out.append(fn(ids[order[first:first + batch_size]]))
    result = np.concatenate(out)
    result[order] = result.copy()
    return result


def pooled_features(body: GPT, ids: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The frozen body's pooled features (``GPTClassifier.pooled``), shape (n, 2·d_model)."""
    pool = GPTClassifier(body, n_outputs=1, dropout=0.0)
    body.eval()
    return by_length(ids, batch_size,
                     lambda rows: backend.to_numpy(pool.pooled(rows).data)).astype(np.float64)


def fit_probe(features: np.ndarray, y: np.ndarray, val_features: np.ndarray,
              y_val: np.ndarray, seed: int) -> Any:
    """Logistic regression on standardised features; C chosen on the validation split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for C in (0.01, 0.1, 1.0):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000,
                                                                   random_state=seed))
        probe.fit(features, y)
        score = float((probe.predict(val_features) == y_val).mean())
        if best is None or score > best[0]:
            best = (score, probe)
    return best[1]


def _body_copy(pretrained: GPT) -> GPT:
    body = GPT(pretrained.config).to(pretrained.device)
    body.load_state_dict(pretrained.state_dict())
    return body


def finetune(method: str, x: np.ndarray, y: np.ndarray, steps: int, batch_size: int,
             seed: int, recipe: Recipe, pretrained: Optional[GPT] = None,
             vocab_size: Optional[int] = None, on_step: Optional[Callable[[], None]] = None,
             probe_data: Optional[Dict[str, np.ndarray]] = None) -> Classifier:
    """Train a classifier with ``method`` (full, lora, probe, scratch, lstm) on (x, y)."""
    start = time.perf_counter()
    md.manual_seed(seed)
    if method == "probe":
        probe = fit_probe(probe_data["train"], y, probe_data["val"], probe_data["y_val"], seed)
        result = Classifier("probe", probe=probe, body=pretrained)
        result.trainable = probe_data["train"].shape[1] + 1
        result.seconds = time.perf_counter() - start
        return result
    if method == "lstm":
        from minidl.apps.charlm import SentimentClassifier
        model = SentimentClassifier(vocab_size, 64, 128, dropout=0.3)
        model.to(pretrained.device if pretrained is not None else "cpu")
        groups = [{"params": model.parameters(), "lr": 3e-3}]
        result = Classifier("lstm", model, logits=False)
        loss_fn = F.binary_cross_entropy
    else:
        if method == "scratch":
            body = GPT(copy.copy(pretrained.config)).to(pretrained.device)
        else:
            body = _body_copy(pretrained)
        model = GPTClassifier(body, n_outputs=1, dropout=recipe.dropout)
        head = model.head.parameters()
        if method == "lora":
            nn.apply_lora(body, recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout,
                          LORA_TARGETS)
            adapters = [p for p in body.parameters() if p.requires_grad]
            groups = [{"params": adapters + head, "lr": recipe.lr}]
        elif method == "full":
            groups = [{"params": body.parameters(), "lr": recipe.lr_body},
                      {"params": head, "lr": recipe.lr}]
        elif method == "scratch":
            groups = [{"params": model.parameters(), "lr": recipe.lr}]
        else:
            raise ValueError(f"unknown fine-tuning method {method!r}; expected full, lora, "
                             f"probe, scratch or lstm")
        result = Classifier(method, model)
        loss_fn = F.binary_cross_entropy_with_logits
    result.trainable = sum(p.data.size for g in groups for p in g["params"])
    result.losses = train_steps(model, groups, loss_fn, x, y, steps, batch_size, seed, recipe,
                                on_step)
    result.seconds = time.perf_counter() - start
    return result


# Accuracy, precision, recall, F1 and the confusion matrix from probabilities.
scores = metrics.binary_scores


def _tfidf_vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)


def _logistic_regression(features: Any, y: np.ndarray, val_features: Any,
                         y_val: np.ndarray) -> Any:
    """Logistic regression with C chosen by validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for C in (1.0, 3.0, 10.0, 30.0):
        model = LogisticRegression(C=C, max_iter=2000).fit(features, y)
        score = float((model.predict(val_features) == y_val).mean())
        if best is None or score > best[0]:
            best = (score, model)
    return best[1]


def tfidf_baseline(train_texts: List[str], y: np.ndarray, val_texts: List[str],
                   y_val: np.ndarray, all_train_texts: List[str]) -> Callable:
    """TF-IDF of character 1–3-grams (vocabulary and idf from the unlabelled training texts)
    + logistic regression, C chosen on validation. Returns ``predict_proba(texts)``."""
    vectorizer = _tfidf_vectorizer().fit(all_train_texts)
    model = _logistic_regression(vectorizer.transform(train_texts), y,
                                 vectorizer.transform(val_texts), y_val)
    return lambda texts: model.predict_proba(vectorizer.transform(texts))[:, 1]


class TfidfBaseline:
    """``tfidf_baseline`` for many labelled subsets of one data set: the matrices of the three
    splits are computed once, and each ``fit`` trains a logistic regression on a subset."""

    def __init__(self, texts: Dict[str, List[str]]):
        vectorizer = _tfidf_vectorizer()
        self.features = {"train": vectorizer.fit_transform(texts["train"])}
        self.features.update({k: vectorizer.transform(v) for k, v in texts.items()
                              if k != "train"})

    def fit(self, indices: np.ndarray, y: np.ndarray, y_val: np.ndarray) -> Callable:
        """Train on the rows ``indices`` of the training split; returns
        ``predict_proba(split)`` for ``'val'`` or ``'test'``."""
        model = _logistic_regression(self.features["train"][indices], y,
                                     self.features["val"], y_val)
        return lambda split: model.predict_proba(self.features[split])[:, 1]
