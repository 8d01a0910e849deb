"""Scaled dot-product attention, the heart of the Transformer.

For queries Q (..., Tq, d), keys K (..., Tk, d) and values V (..., Tk, dv):

    S = Q Kᵀ · s + M          scores, s = 1/√d; M is 0 where attention is allowed, −∞ elsewhere
    P = softmax(S)            each query's weights over the keys (rows sum to 1)
    O = P V                   (..., Tq, dv)

Backward, from dO (the chain rule through the three lines, bottom up):

    dV = Pᵀ dO
    dP = dO Vᵀ
    dS = P ⊙ (dP − rowsum(dP ⊙ P))        the softmax's backward (see functions/softmax.py)
    dQ = dS K · s,   dK = dSᵀ Q · s

``ScaledDotProductAttention`` is that, fused: P is computed once and kept, and the backward is
five batched matmuls and one pass over P. ``attention_reference`` writes the forward with
primitive ops (matmul, softmax) and lets autograd do the backward; a test shows they agree.
With ``dropout_p`` > 0 (training), P is replaced by P ⊙ m/(1 − p) for a Bernoulli mask m,
as PyTorch does.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from minidl import backend
from minidl.autograd import Function, ShapeError, Tensor
from minidl.backend.blocks import for_row_blocks
from minidl.functions.dropout import keep_mask
from minidl.functions.shape import sum_to
from minidl.functions.softmax import softmax


class ScaledDotProductAttention(Function):
    """inputs: q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv); output (..., Tq, dv).

    ``bias``: an additive (Tq, Tk)-broadcastable array of 0 and −∞ (or any floats), or None.
    ``keep``: the dropout mask already scaled by 1/(1 − p), or None.
    """

    differentiable_backward = False

    def __init__(self, scale: float, bias: Optional[Any] = None, keep: Optional[Any] = None):
        self.scale, self.bias, self.keep = scale, bias, keep

    def forward(self, q, k, v):
        xp = backend.get_array_module(q)
        scores = q @ k.swapaxes(-1, -2)
        scale, bias = self.scale, self.bias
        if bias is not None and bias.ndim == scores.ndim and bias.shape[0] != 1:
            scores *= scale           # a bias that differs along axis 0: added whole, not per block
            scores += bias
            scale, bias = 1.0, None

        def softmax_rows(s):          # P = softmax(s·scale + M) in place, on a block of rows
            if scale != 1.0:
                s *= scale
            if bias is not None:
                s += bias
            s -= s.max(axis=-1, keepdims=True)                        # stable softmax
            xp.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)

        for_row_blocks(softmax_rows, scores)
        p = self.p = scores
        self.q, self.k, self.v = q, k, v
        return (p if self.keep is None else p * self.keep) @ v

    def backward(self, g_out):
        p, q, k, v, keep = self.p, self.q, self.k, self.v, self.keep
        needs = self.needs_input_grad
        # BEGIN EXERCISE attention_backward
        p_used = p if keep is None else p * keep
        dv = sum_to(p_used.swapaxes(-1, -2) @ g_out, v.shape) if needs[2] else None
        dp = g_out @ v.swapaxes(-1, -2)
        if keep is not None:
            dp *= keep
        ds = dp
        ds -= (dp * p).sum(axis=-1, keepdims=True)
        ds *= p
        ds *= self.scale
        dq = sum_to(ds @ k, q.shape) if needs[0] else None
        dk = sum_to(ds.swapaxes(-1, -2) @ q, k.shape) if needs[1] else None
        return dq, dk, dv
        # END EXERCISE


def _additive_mask(attn_mask: Any, is_causal: bool, t_q: int, t_k: int, dtype, device: str) -> Any:
    """M for S = QKᵀs + M: 0 where allowed, −∞ where not; None when nothing is masked."""
    xp = backend.array_module_for(device)
    bias = None
    if is_causal:  # query i sees keys j ≤ i (+ offset, when the keys include a cached past)
        offset = t_k - t_q
        allowed = xp.arange(t_k)[None, :] <= xp.arange(t_q)[:, None] + offset
        bias = xp.where(allowed, 0.0, -xp.inf).astype(dtype)
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, Tensor) else attn_mask
        mask = backend.to_device_array(mask, device)
        if mask.dtype.kind == "b":                      # True = may attend (PyTorch's rule)
            extra = xp.where(mask, 0.0, -xp.inf).astype(dtype)
        else:
            extra = mask.astype(dtype)
        bias = extra if bias is None else bias + extra
    return bias


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: Optional[float] = None, training: bool = True) -> Tensor:
    """softmax(Q Kᵀ/√d + M) V, with PyTorch's ``F.scaled_dot_product_attention`` signature.

    Shape: q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) -> (..., Tq, dv); usually
    (batch, heads, time, head_dim). ``attn_mask``: boolean (True where attention is allowed)
    or float (added to the scores), broadcastable to (..., Tq, Tk). ``is_causal``: query i
    attends to keys up to i (aligned at the end when Tk > Tq, as with a key/value cache).
    ``scale`` defaults to 1/√d. ``dropout_p`` drops attention weights during training.
    Stability: the softmax subtracts each row's maximum first. A query with every key masked
    gets NaN, as in PyTorch.
    """
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ShapeError(f"scaled_dot_product_attention: q, k, v must have the same number "
                         f"(≥ 2) of axes, got shapes {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"scaled_dot_product_attention: q (..., Tq, d), k (..., Tk, d), "
                         f"v (..., Tk, dv) expected, got {q.shape}, {k.shape}, {v.shape}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    bias = _additive_mask(attn_mask, is_causal, q.shape[-2], k.shape[-2], q.dtype, q.device)
    keep = None
    if dropout_p > 0.0 and training:
        keep = keep_mask(q.shape[:-1] + (k.shape[-2],), dropout_p, q.dtype, q.device)
    return ScaledDotProductAttention(scale, bias, keep)(q, k, v)


def attention_reference(q: Tensor, k: Tensor, v: Tensor, attn_mask: Any = None,
                        is_causal: bool = False, scale: Optional[float] = None) -> Tensor:
    """The same attention from primitive ops (no dropout): the readable path."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.swapaxes(-1, -2)) * scale
    bias = _additive_mask(attn_mask, is_causal, q.shape[-2], k.shape[-2], q.dtype, q.device)
    if bias is not None:
        scores = scores + Tensor(bias)
    return softmax(scores, axis=-1) @ v
