"""A GPT-style language model: token and position embeddings, pre-LN Transformer blocks, and
an output layer tied to the token embedding.

    ids (B, T) → tok(ids) + pos(0..T−1) → n_layers × TransformerBlock → LayerNorm
               → logits = h Eᵀ (B, T, vocab)          E: the token embedding (weight tying)

Trained to predict token t+1 from tokens ≤ t (causal attention); perplexity = exp(mean
cross-entropy) on held-out text. ``generate`` samples with temperature and top-k, keeping each
layer's keys and values in a cache so every new token costs one position, not the whole prefix.
``GPTClassifier`` puts a classification head on the pretrained body for fine-tuning.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from minidl import backend
from minidl import functions as F
from minidl.autograd import Tensor, no_grad
from minidl.nn import init
from minidl.nn.layers import Dropout, Embedding, Linear
from minidl.nn.module import Module
from minidl.nn.normalization import LayerNorm
from minidl.nn.transformer import PositionalEmbedding, TransformerBlock


@dataclass
class GPTConfig:
    """The shape of a GPT: what is needed to build it again before loading its weights."""

    vocab_size: int
    context_length: int = 128
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.1

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class GPT(Module):
    """A causal Transformer language model (GPT-2's arrangement, small).

    Shape: ids (batch, time ≤ context_length) integers in [0, vocab_size)
           -> logits (batch, time, vocab_size).
    Parameters: ``tok.W`` (vocab, d_model) N(0, 0.02²), shared with the output layer;
    ``pos.W`` (context, d_model); per block two LayerNorms, attention and MLP; ``ln_f``.
    """

    def __init__(self, config: GPTConfig, device: Optional[str] = None):
        super().__init__()
        c = self.config = config
        self.tok = Embedding(c.vocab_size, c.d_model, device=device)
        self.tok.W.data[...] = init.normal(self.tok.W.shape, 0.0, 0.02, "float32",
                                           self.tok.W.device)
        self.pos = PositionalEmbedding(c.context_length, c.d_model, device=device)
        self.drop = Dropout(c.dropout)
        for i in range(c.n_layers):
            setattr(self, f"block{i}", TransformerBlock(c.d_model, c.n_heads, dropout=c.dropout,
                                                        n_layers=c.n_layers, device=device))
        self.ln_f = LayerNorm(c.d_model, device=device)

    @property
    def blocks(self) -> List[TransformerBlock]:
        return [getattr(self, f"block{i}") for i in range(self.config.n_layers)]

    def features(self, ids: Any, caches: Optional[List[dict]] = None, start: int = 0,
                 padding_mask: Any = None) -> Tensor:
        """The final hidden states h (batch, time, d_model), before the output layer.

        ``padding_mask`` (batch, time) bool, True at real tokens: padding becomes invisible.
        Real tokens attend only to real tokens (and each padding position to itself, so no
        softmax row is empty) and count their positions from their text's first real token —
        so a text's states do not depend on how much padding surrounds it, and its first
        character sits at position 0 as every window did in pretraining.
        """
        positions = attn_mask = None
        if padding_mask is not None:
            if caches is not None:
                raise ValueError("features: padding_mask cannot be combined with a key/value "
                                 "cache (generation runs one unpadded text)")
            real = backend.to_device_array(padding_mask, self.tok.W.device).astype(bool)
            if real.shape != tuple(ids.shape):
                raise ValueError(f"features: padding_mask must have the shape of ids "
                                 f"{tuple(ids.shape)}, got {real.shape}")
            xp = backend.get_array_module(real)
            positions = xp.maximum(xp.cumsum(real, axis=1) - 1, 0)           # (B, T)
            T = real.shape[1]
            attn_mask = real[:, None, None, :] | xp.eye(T, dtype=bool)       # (B, 1, T, T)
        x = self.drop(self.pos(self.tok(ids), start, positions))
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i], attn_mask)
        return self.ln_f(x)

    def forward(self, ids: Any, caches: Optional[List[dict]] = None, start: int = 0) -> Tensor:
        h = self.features(ids, caches, start)
        return h @ self.tok.W.T                                         # tied output layer

    def loss(self, ids: Any, targets: Any) -> Tensor:
        """Mean cross-entropy of predicting ``targets`` (B, T) from ``ids`` (B, T)."""
        logits = self(ids)
        return F.cross_entropy(logits, targets)

    # -- evaluation
    def perplexity(self, stream: np.ndarray, batch_size: int = 16,
                   max_windows: Optional[int] = None) -> float:
        """exp(mean cross-entropy) over ``stream`` (1-D ids) cut into windows of the context
        length, each predicting its own next tokens (positions in a window see only that
        window's past)."""
        T = self.config.context_length
        n = (len(stream) - 1) // T
        if max_windows is not None:
            n = min(n, max_windows)
        if n < 1:
            raise ValueError(f"perplexity needs more than {T} tokens, got {len(stream)}")
        was_training = self.training
        self.eval()
        total, count = 0.0, 0
        with no_grad():
            for first in range(0, n, batch_size):
                rows = range(first, min(first + batch_size, n))
                x = np.stack([stream[r * T:(r + 1) * T] for r in rows])
                y = np.stack([stream[r * T + 1:(r + 1) * T + 1] for r in rows])
                x, y = (backend.to_device(a.astype(np.int64), self.device) for a in (x, y))
                total += float(F.cross_entropy(self(x), y, reduction="sum").item())
                count += y.size
        self.train(was_training)
        return math.exp(total / count)

    # -- sampling
    def generate(self, prompt_ids: Sequence[int], length: int, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: Optional[int] = None,
                 stop_id: Optional[int] = None) -> List[int]:
        """Sample ``length`` new ids after ``prompt_ids``.

        ``temperature`` < 1 sharpens the distribution, > 1 flattens it; ``top_k`` keeps only
        the k most likely ids. The key/value cache makes each step cost one position; when the
        context is full, the cache is rebuilt from the last ``context_length // 2`` ids.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        rng = np.random.default_rng(seed)
        ids = list(prompt_ids) or [0]
        T = self.config.context_length
        was_training = self.training
        self.eval()
        new: List[int] = []
        with no_grad():
            caches, start, pending = None, 0, ids[-T:]
            for _ in range(length):
                if caches is None or start + len(pending) > T:
                    keep = (ids[-(T // 2):] if caches is not None else ids[-T:])
                    caches, start, pending = [{} for _ in self.blocks], 0, keep
                x = backend.to_device(np.asarray([pending], dtype=np.int64), self.device)
                logits = backend.to_numpy(self(x, caches, start).data[0, -1]).astype(np.float64)
                start += len(pending)
                logits /= temperature
                if top_k is not None and top_k < len(logits):
                    cut = np.partition(logits, -top_k)[-top_k]
                    logits[logits < cut] = -np.inf
                p = np.exp(logits - logits.max())
                p /= p.sum()
                token = int(rng.choice(len(p), p=p))
                ids.append(token)
                new.append(token)
                pending = [token]
                if token == stop_id:
                    break
        self.train(was_training)
        return new


class GPTClassifier(Module):
    """A GPT body with a classification head on pooled features: the fine-tuning model.

    Shape: ids (batch, time) with 0 as padding -> logits (batch, n_outputs).
    Pooling: the mean of the final hidden states over the non-padding positions and the state
    of the last position, concatenated (2·d_model features). Inputs are pre-padded (as
    ``pad_sequences`` does), so the last position is the text's last token. Padding is masked
    out of the body (``GPT.features(padding_mask=…)``) and leading columns that are padding in
    every row are dropped first: the logits of a text do not depend on its batch-mates or on
    ``maxlen`` beyond its own length, and short batches cost less.
    """

    def __init__(self, body: GPT, n_outputs: int = 1, dropout: float = 0.1):
        super().__init__()
        self.body = body
        self.drop = Dropout(dropout)
        d = body.config.d_model
        self.head = Linear(2 * d, n_outputs, device=body.device)
        # zero-initialised: the first logits are 0 (loss ln 2 for two classes), so the first,
        # random head cannot send large wrong gradients into the pretrained body
        self.head.W.data[...] = 0.0

    def pooled(self, ids: Any) -> Tensor:
        """The body's features pooled per text: mean over real tokens ‖ last position.
        Shape: ids (batch, time) -> (batch, 2·d_model)."""
        ids_data = ids.data if isinstance(ids, Tensor) else ids
        xp = backend.get_array_module(self.head.W.data)
        ids_data = backend.to_device_array(ids_data, self.head.W.device)
        if ids_data.ndim != 2:
            raise ValueError(f"GPTClassifier expects ids of shape (batch, time), got "
                             f"{tuple(ids_data.shape)}")
        real = ids_data != 0
        used = backend.to_numpy(real.any(axis=0))
        first = int(used.argmax()) if used.any() else ids_data.shape[1] - 1
        ids_data, real = ids_data[:, first:], real[:, first:]          # drop all-padding columns
        h = self.body.features(ids_data, padding_mask=real)            # (B, T, d)
        mask = real.astype(h.dtype)[..., None]
        count = xp.maximum(mask.sum(axis=1), 1.0)
        mean = (h * Tensor(mask)).sum(axis=1) * Tensor(1.0 / count)
        return F.concat([mean, h[:, -1, :]], axis=1)

    def forward(self, ids: Any) -> Tensor:
        return self.head(self.drop(self.pooled(ids)))
