"""Pretraining (预训练) a character language model, and fine-tuning (微调) it into a classifier.

The story of transfer learning in three steps:

1. **Pretrain** a language model on plain text: Embedding → LSTM → Linear over the vocabulary,
   trained to predict the next character (cross-entropy), by truncated back-propagation through
   time (TBPTT): the text is cut into ``batch_size`` parallel streams and read ``bptt``
   characters at a time, carrying the LSTM state from one window to the next (detached, so the
   gradient stops at the window's start). Quality: perplexity = exp(mean cross-entropy) on
   held-out text — the number of characters the model is "choosing between".
2. **Transfer**: a classifier with the same Embedding and LSTM, initialised with the
   pretrained weights (same vocabulary; characters never seen in pretraining share the
   unknown-character id), and a new sigmoid head.
3. **Fine-tune** on labelled examples, optionally with the encoder frozen for the first epochs
   (so the random head does not wreck the pretrained weights) and a smaller learning rate for
   the encoder than for the head.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from minidl import backend
from minidl import functions as F
from minidl import nn, optim
from minidl.autograd import Tensor, no_grad
from minidl.data.text import Tokenizer
from minidl.data.vocabulary import (UNKNOWN, build_char_vocabulary, encode_stream,  # noqa: F401
                                    encode_texts, vocabulary_size)
from minidl.metrics import binary_accuracy
from minidl.training.callbacks import Callback
from minidl.training.loop import fit, predict
from minidl.training.progress import Progbar

# The character vocabulary lives in minidl.data; these names are kept for the lessons.
build_vocabulary = build_char_vocabulary


# ============================================================================= the models
class CharLanguageModel(nn.Module):
    """Next-character model: Embedding → LSTM → Dropout → Linear over the vocabulary.

    Shape: ids (B, T) -> logits (B, T, vocab_size), state ((B, H), (B, H)).
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 128,
                 dropout: float = 0.1):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: Any, state: Optional[Tuple[Tensor, Tensor]] = None):
        outputs, state = self.lstm(self.embedding(ids), state)
        return self.head(self.dropout(outputs)), state


class SentimentClassifier(nn.Module):
    """Embedding → LSTM (padding masked) → pooling → Dropout → [Linear → tanh] → Linear → sigmoid.

    Shape: ids (B, T), 0 = padding -> probability of the positive class (B, 1).
    ``pooling``: 'last' uses the final hidden state (the classic Keras example's
    ``LSTM → Dense``); 'concat' (default) joins the final state with the mean and the maximum of
    the outputs over the real (unpadded) steps — ULMFiT's "concat pooling", which lets the
    whole text speak rather than only its end. ``head_hidden`` > 0 adds a hidden tanh layer.
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 128,
                 dropout: float = 0.3, head_hidden: int = 0, pooling: str = "concat"):
        super().__init__()
        if pooling not in ("last", "concat"):
            raise ValueError(f"pooling must be 'last' or 'concat', got {pooling!r}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size)
        self.dropout = nn.Dropout(dropout)
        features = hidden_size * (3 if pooling == "concat" else 1)
        layers: List[nn.Module] = []
        if head_hidden:
            layers += [nn.Linear(features, head_hidden), nn.Tanh()]
        layers.append(nn.Linear(head_hidden or features, 1))
        self.head = nn.Sequential(*layers)

    def encoder(self) -> List[nn.Module]:
        return [self.embedding, self.lstm]

    def encoder_parameters(self) -> List[nn.Parameter]:
        return self.embedding.parameters() + self.lstm.parameters()

    def forward(self, ids: Any) -> Tensor:
        ids = ids.data if isinstance(ids, Tensor) else ids
        mask = ids != 0
        outputs, (h, _) = self.lstm(self.embedding(ids), mask=mask)
        if self.pooling == "concat":
            m = Tensor(mask[:, :, None].astype(outputs.dtype))          # (B, T, 1)
            count = Tensor(backend.get_array_module(mask).maximum(
                mask.sum(axis=1, keepdims=True), 1).astype(outputs.dtype))
            mean = (outputs * m).sum(axis=1) / count
            # outputs lie in (−1, 1): lowering padded steps by 2 keeps them out of the max
            largest = (outputs - (1 - m) * 2).max(axis=1)
            h = F.concat([h, mean, largest], axis=1)
        return F.sigmoid(self.head(self.dropout(h)))


def transfer_encoder(language_model: CharLanguageModel, classifier: SentimentClassifier) -> None:
    """Copy the pretrained Embedding and LSTM weights into the classifier (copies: fine-tuning
    the classifier leaves the language model as it was)."""
    for source, target in ((language_model.embedding, classifier.embedding),
                           (language_model.lstm, classifier.lstm)):
        target.load_state_dict(source.state_dict())


# ============================================================================= pretraining
def set_unigram_bias(model: CharLanguageModel, stream: np.ndarray) -> None:
    """Start the output layer's bias at log p(character), the unigram distribution of
    ``stream`` (add-one smoothed). The untrained model then already predicts frequent
    characters, and training spends its steps on context instead of on learning how common
    each character is — with a few hundred steps this matters a lot."""
    counts = np.bincount(stream, minlength=model.head.out_features).astype(np.float64) + 1.0
    model.head.load_state_dict({"b": np.log(counts / counts.sum())}, strict=False)


def _windows(stream: np.ndarray, batch_size: int, bptt: int):
    """Cut the stream into ``batch_size`` rows and yield (inputs, targets) windows of ``bptt``
    characters: targets are the inputs shifted by one."""
    length = (len(stream) - 1) // batch_size
    if length < 2:
        raise ValueError(f"a stream of {len(stream)} ids is too short for batch_size "
                         f"{batch_size}")
    rows = stream[:length * batch_size + 1]
    inputs = rows[:-1].reshape(batch_size, length)
    targets = rows[1:].reshape(batch_size, length)
    for start in range(0, length - 1, bptt):
        yield inputs[:, start:start + bptt], targets[:, start:start + bptt]


def pretrain(model: CharLanguageModel, stream: np.ndarray, steps: int, batch_size: int = 32,
             bptt: int = 64, lr: float = 3e-3, clip: float = 1.0, verbose: int = 1,
             stream_out: Any = None) -> List[float]:
    """Train ``model`` for ``steps`` TBPTT windows over ``stream`` (cycling through it).

    Returns the loss of each step. With ``verbose`` a progress bar shows the running loss.
    """
    optimizer = optim.Adam(model.parameters(), lr=lr)
    schedule = optim.CosineAnnealingLR(optimizer, T_max=steps, eta_min=lr / 10)
    bar = Progbar(steps, verbose=verbose, stream=stream_out or sys.stdout)
    device = model.device
    losses: List[float] = []
    model.train()
    while len(losses) < steps:
        state = None
        for inputs, targets in _windows(stream, batch_size, bptt):
            if state is not None:  # truncated BPTT: keep the state, cut the gradient
                state = (state[0].detach(), state[1].detach())
            logits, state = model(backend.to_device(inputs, device), state)
            loss = F.cross_entropy(logits, backend.to_device(targets, device))
            optimizer.zero_grad()
            loss.backward()
            optim.clip_grad_norm(model.parameters(), clip)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            recent = losses[-50:]
            bar.update(len(losses), [("loss", sum(recent) / len(recent))])
            if len(losses) >= steps:
                break
    return losses


def perplexity(model: CharLanguageModel, stream: np.ndarray, batch_size: int = 32,
               bptt: int = 128) -> float:
    """exp(mean next-character cross-entropy) over ``stream`` (held-out text)."""
    model.eval()
    total, count, state = 0.0, 0, None
    device = model.device
    with no_grad():
        for inputs, targets in _windows(stream, batch_size, bptt):
            logits, state = model(backend.to_device(inputs, device), state)
            total += F.cross_entropy(logits, backend.to_device(targets, device),
                                     reduction="sum").item()
            count += targets.size
    model.train()
    return math.exp(total / count)


def generate(model: CharLanguageModel, tokenizer: Tokenizer, prompt: str, length: int = 50,
             temperature: float = 1.0, seed: int = 0) -> str:
    """Continue ``prompt`` by sampling ``length`` characters (stopping at a newline).

    Temperature divides the logits before the softmax: below 1 the model picks likelier
    characters (safer, more repetitive), above 1 rarer ones (more varied, more mistakes).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rng = np.random.default_rng(seed)
    ids = tokenizer.texts_to_sequences([prompt])[0] or [1]
    model.eval()
    out: List[str] = []
    device = model.device
    with no_grad():
        logits, state = model(backend.to_device(np.array([ids]), device))
        for _ in range(length):
            scores = backend.to_numpy(logits.data[0, -1]).astype(np.float64) / temperature
            scores[:2] = -np.inf  # never emit padding or the unknown character
            p = np.exp(scores - scores.max())
            next_id = int(rng.choice(len(p), p=p / p.sum()))
            char = tokenizer.index_word.get(next_id, "")
            if char == "\n":
                break
            out.append(char)
            logits, state = model(backend.to_device(np.array([[next_id]]), device), state)
    model.train()
    return prompt + "".join(out)


# ============================================================================= fine-tuning
class UnfreezeEncoder(Callback):
    """A training callback: the encoder is frozen for the first ``epochs`` epochs, then trained."""

    def __init__(self, classifier: SentimentClassifier, epochs: int):
        super().__init__()
        self.classifier, self.epochs = classifier, epochs

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        for module in self.classifier.encoder():
            module.requires_grad_(epoch >= self.epochs)


def fine_tune(classifier: SentimentClassifier, x_train: np.ndarray, y_train: np.ndarray,
              x_val: Optional[np.ndarray] = None, y_val: Optional[np.ndarray] = None,
              epochs: int = 3, batch_size: int = 64, lr_encoder: float = 1e-3,
              lr_head: float = 3e-3, freeze_epochs: int = 0, verbose: int = 1,
              callbacks: Optional[List[Callback]] = None, stream: Any = None):
    """Train the classifier with binary cross-entropy and Adam, the encoder and the head in
    separate parameter groups (their own learning rates), the encoder frozen for the first
    ``freeze_epochs`` epochs. Returns the ``History``."""
    head = [p for p in classifier.parameters()
            if all(p is not q for q in classifier.encoder_parameters())]
    optimizer = optim.Adam([{"params": classifier.encoder_parameters(), "lr": lr_encoder},
                            {"params": head, "lr": lr_head}])
    callbacks = list(callbacks or [])
    if freeze_epochs:
        callbacks.insert(0, UnfreezeEncoder(classifier, freeze_epochs))
    y_train = np.asarray(y_train, dtype=np.float32).reshape(-1, 1)
    validation = None if x_val is None else (
        x_val, np.asarray(y_val, dtype=np.float32).reshape(-1, 1))
    history = fit(classifier, F.binary_cross_entropy, optimizer, x_train, y_train,
                  batch_size=batch_size, epochs=epochs, verbose=verbose,
                  validation_data=validation, callbacks=callbacks,
                  metrics={"accuracy": binary_accuracy}, stream=stream)
    for module in classifier.encoder():
        module.requires_grad_(True)
    return history


def predict_proba(classifier: SentimentClassifier, x: np.ndarray,
                  batch_size: int = 256) -> np.ndarray:
    """Probabilities of the positive class, shape (n,), computed without a graph."""
    return predict(classifier, x, batch_size=batch_size, verbose=0).ravel()


def classification_scores(classifier: SentimentClassifier, x: np.ndarray,
                          y: np.ndarray) -> Dict[str, Any]:
    """Accuracy, precision, recall, F1 (positive class = 1) and the confusion matrix of the
    classifier's predictions on ``x`` against labels ``y``. (Not ``training.evaluate``, which
    returns the loss and the compiled metrics.)"""
    from minidl import metrics
    return metrics.binary_scores(y, predict_proba(classifier, x))
