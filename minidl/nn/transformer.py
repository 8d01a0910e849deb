"""The Transformer's pieces: multi-head self-attention, the MLP, and a pre-LayerNorm block.

A block (GPT-2's arrangement, "pre-LN": normalise before each sub-layer, add after):

    x = x + Attention(LayerNorm(x))       tokens exchange information
    x = x + MLP(LayerNorm(x))             each token is transformed on its own

Multi-head attention splits the d_model features into ``n_heads`` heads of d_model/n_heads,
runs ``F.scaled_dot_product_attention`` in each head at once (shape (batch, heads, time,
head_dim)) and mixes the heads with an output projection.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from minidl import backend
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.nn import init
from minidl.nn.layers import Dropout, Linear
from minidl.nn.module import Module, Parameter
from minidl.nn.normalization import LayerNorm

Cache = Dict[str, Any]


def _linear(in_features: int, out_features: int, std: float, device: Optional[str]) -> Linear:
    """A Linear with N(0, std²) weights and zero bias (GPT-2's initialisation)."""
    layer = Linear(in_features, out_features, device=device)
    layer.W.data[...] = init.normal(layer.W.shape, 0.0, std, layer.W.dtype, layer.W.device)
    return layer


class MultiHeadSelfAttention(Module):
    """Self-attention with ``n_heads`` heads; causal (each position sees only the past) for a
    language model.

    Shape: x (batch, time, d_model) -> (batch, time, d_model).
    Parameters: ``qkv`` Linear(d_model, 3·d_model) (queries, keys, values at once), ``proj``
    Linear(d_model, d_model).
    ``cache``: a dict that keeps the keys and values of earlier positions during generation,
    so each new token costs O(time) instead of re-running the whole prefix.
    ``attn_mask``: boolean, broadcastable to (batch, heads, time, time), True where a query may
    attend to a key; combined with the causal rule (both must allow).
    """

    def __init__(self, d_model: int, n_heads: int, causal: bool = True, dropout: float = 0.0,
                 init_std: float = 0.02, proj_std: Optional[float] = None,
                 device: Optional[str] = None):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads, self.causal, self.dropout = d_model, n_heads, causal, dropout
        self.qkv = _linear(d_model, 3 * d_model, init_std, device)
        self.proj = _linear(d_model, d_model, proj_std or init_std, device)
        self.resid_dropout = Dropout(dropout)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, T, d) -> (B, heads, T, d/heads)."""
        B, T, _ = x.shape
        return x.reshape(B, T, self.n_heads, self.d_model // self.n_heads).transpose(0, 2, 1, 3)

    def forward(self, x: Tensor, cache: Optional[Cache] = None, attn_mask: Any = None) -> Tensor:
        B, T, d = x.shape
        qkv = self.qkv(x)
        q, k, v = (self._heads(part) for part in F.split(qkv, d, axis=-1))
        if cache is not None:  # generation: prepend the cached past (no graph is needed)
            if "k" in cache:
                xp = backend.get_array_module(k.data)
                k = Tensor(xp.concatenate([cache["k"], k.data], axis=2))
                v = Tensor(xp.concatenate([cache["v"], v.data], axis=2))
            cache["k"], cache["v"] = k.data, v.data
        out = F.scaled_dot_product_attention(q, k, v, attn_mask, is_causal=self.causal,
                                             dropout_p=self.dropout, training=self.training)
        out = out.transpose(0, 2, 1, 3).reshape(B, T, d)               # heads side by side
        return self.resid_dropout(self.proj(out))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, causal={self.causal}"


class MLP(Module):
    """Linear(d, 4d) → GELU → Linear(4d, d): the position-wise feed-forward network."""

    def __init__(self, d_model: int, d_hidden: int, dropout: float = 0.0,
                 init_std: float = 0.02, proj_std: Optional[float] = None,
                 approximate: str = "tanh", device: Optional[str] = None):
        super().__init__()
        self.fc = _linear(d_model, d_hidden, init_std, device)
        self.proj = _linear(d_hidden, d_model, proj_std or init_std, device)
        self.dropout = Dropout(dropout)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), self.approximate)))


class TransformerBlock(Module):
    """A pre-LayerNorm Transformer block: x + Attention(LN(x)), then + MLP(LN(x)).

    Shape: x (batch, time, d_model) -> the same. ``n_layers`` (of the whole model) scales the
    initial output projections by 1/√(2·n_layers), so the residual stream's variance does not
    grow with depth (GPT-2).
    """

    def __init__(self, d_model: int, n_heads: int, d_hidden: Optional[int] = None,
                 dropout: float = 0.0, causal: bool = True, n_layers: int = 1,
                 device: Optional[str] = None):
        super().__init__()
        proj_std = 0.02 / (2 * n_layers) ** 0.5
        self.ln1 = LayerNorm(d_model, device=device)
        self.attn = MultiHeadSelfAttention(d_model, n_heads, causal, dropout,
                                           proj_std=proj_std, device=device)
        self.ln2 = LayerNorm(d_model, device=device)
        self.mlp = MLP(d_model, d_hidden or 4 * d_model, dropout, proj_std=proj_std,
                       device=device)

    def forward(self, x: Tensor, cache: Optional[Cache] = None, attn_mask: Any = None) -> Tensor:
        x = x + self.attn(self.ln1(x), cache, attn_mask)
        return x + self.mlp(self.ln2(x))


class PositionalEmbedding(Module):
    """Learned absolute positions: row t of ``W`` is added to the token at position t.

    Shape: (batch, time, d) -> the same, for time ≤ max_length; ``start`` shifts the positions
    (the first new token during cached generation); ``positions`` (batch, time) integers give
    each token its own position instead (texts that start after some padding).
    """

    def __init__(self, max_length: int, d_model: int, init_std: float = 0.01,
                 device: Optional[str] = None):
        super().__init__()
        device = backend.check_device(device)
        self.max_length = max_length
        self.W = Parameter(init.normal((max_length, d_model), 0.0, init_std, "float32", device))

    def forward(self, x: Tensor, start: int = 0, positions: Any = None) -> Tensor:
        if positions is not None:
            return x + F.embedding(positions, self.W)
        T = x.shape[1]
        if start + T > self.max_length:
            raise ValueError(f"sequence of {start + T} positions is longer than the model's "
                             f"context of {self.max_length}")
        return x + self.W[start:start + T]

    def extra_repr(self) -> str:
        return f"max_length={self.max_length}"

