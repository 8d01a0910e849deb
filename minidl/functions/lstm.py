"""The LSTM over a whole sequence as one Function, with a hand-written backward through time.

This is the fast path behind ``nn.LSTM``. The readable path is ``nn.LSTMCell`` applied step by
step (``nn.LSTM(..., fast=False)``); a test shows both agree. The math of one step, gates in the
order i, f, g, o (as Keras and PyTorch):

    z = x_t W_x + h_{t-1} W_h + b                      (B, 4H)
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g        h_t = o ⊙ tanh(c_t)

With a mask, a step where m = 0 leaves the state unchanged: h_t = h_{t-1}, c_t = c_{t-1}
(Keras' ``mask_zero``).

Why it is fast:
- The input projection of all T steps is one (batched) matmul; each step does one matmul for
  the four gates; backward collects dz for all steps and computes dW_x, dW_h and dx with three
  big matmuls instead of 3T small ones.
- Inside, everything is stored *feature-major*: zᵀ = W_hᵀ hᵀ has shape (4H, B), so each gate is
  a contiguous block of rows and every elementwise op runs on contiguous memory (slicing gate
  columns out of a (B, 4H) matrix gives strided views, about 2× slower).
- The layout changes between batch-major (B, T, ·) and feature-major (T, ·, B) are copied one
  time step and one cache-sized tile at a time (``blocks.copy_transposed``): NumPy's own
  transposing copy missed the cache on nearly every element (at B = 256 the output copy took
  11 ms of a 100 ms step, now 1 ms).
- All elementwise work writes into preallocated buffers (``out=``), and the large per-sequence
  buffers are recycled between calls (``backend.workspace``): allocating and freeing megabytes each
  step makes the C library return them to the OS, and the page faults on the next touch cost
  more than the arithmetic.
"""
from __future__ import annotations

import sys
from typing import Any, Optional

from minidl import backend
from minidl.autograd import Function
from minidl.backend.blocks import copy_transposed
from minidl.backend.workspace import workspace
from minidl.functions.elementwise import sigmoid_array

# The two fused elementwise kernels of an LSTM step, for devices that compile them (CUDA).
# Each thread handles one (unit, sample) pair of the feature-major (H, B) state; ``n`` is H·B,
# so the four gate blocks of z are at offsets 0, n, 2n, 3n. ``m`` is the mask (1 or 0).
_FORWARD_KERNEL = ("T c_prev, T h_prev, T m", "raw T z, T c, T h, T tanh_c", """
    const ptrdiff_t n = _ind.size();
    T a_i = tanh(z[i] * (T)0.5) * (T)0.5 + (T)0.5;
    T a_f = tanh(z[i + n] * (T)0.5) * (T)0.5 + (T)0.5;
    T a_g = tanh(z[i + 2 * n]);
    T a_o = tanh(z[i + 3 * n] * (T)0.5) * (T)0.5 + (T)0.5;
    z[i] = a_i; z[i + n] = a_f; z[i + 2 * n] = a_g; z[i + 3 * n] = a_o;
    T c_new = a_f * c_prev + a_i * a_g;
    T tc = tanh(c_new);
    tanh_c = tc;
    c = m * c_new + ((T)1 - m) * c_prev;
    h = m * (a_o * tc) + ((T)1 - m) * h_prev;
    """, "minidl_lstm_forward")
_BACKWARD_KERNEL = ("T c_prev, T tanh_c, T dh_in, T dc_in, T m, raw T z",
                    "raw T d, T dc_prev, T dh_skip", """
    const ptrdiff_t n = _ind.size();
    T a_i = z[i], a_f = z[i + n], a_g = z[i + 2 * n], a_o = z[i + 3 * n];
    T dh = dh_in * m;
    T dc = dc_in * m + dh * a_o * ((T)1 - tanh_c * tanh_c);
    d[i] = dc * a_g * a_i * ((T)1 - a_i);
    d[i + n] = dc * c_prev * a_f * ((T)1 - a_f);
    d[i + 2 * n] = dc * a_i * ((T)1 - a_g * a_g);
    d[i + 3 * n] = dh * tanh_c * a_o * ((T)1 - a_o);
    dc_prev = dc * a_f + dc_in * ((T)1 - m);
    dh_skip = dh_in * ((T)1 - m);
    """, "minidl_lstm_backward")


class LSTMFunction(Function):
    """inputs: x (B, T, D), h0 (B, H), c0 (B, H), W_x (D, 4H), W_h (H, 4H), b (4H,)
    outputs: hs (B, T, H), h_T (B, H), c_T (B, H)
    ``mask``: optional (B, T) array of 0/1; 0 marks padding steps that leave the state alone.
    """

    differentiable_backward = False
    _buffers: tuple = ()

    def __init__(self, mask: Optional[Any] = None):
        self.mask = mask

    def forward(self, x, h0, c0, W_x, W_h, b):
        xp = backend.get_array_module(x)
        self.xp = xp
        B, T, D = x.shape
        H = W_h.shape[0]
        dtype = x.dtype
        take = workspace.take
        # Feature-major buffers: gates[t] is zᵀ (4H, B); hs[t] is h_{t-1}ᵀ (H, B), hs[0] = h0ᵀ.
        gates = take(xp, (T, 4 * H, B), dtype)
        hs = take(xp, (T + 1, H, B), dtype)
        cs = take(xp, (T + 1, H, B), dtype)
        tanh_c = take(xp, (T, H, B), dtype)
        self._buffers = (gates, hs, cs, tanh_c)
        # Input projection of every step at once: zₓᵀ = W_xᵀ xₜᵀ + b.
        x_fm = copy_transposed(x.transpose(1, 0, 2), xp.empty((T, D, B), dtype))  # (T, D, B)
        xp.matmul(xp.ascontiguousarray(W_x.T), x_fm, out=gates)
        gates += b[:, None]
        hs[0], cs[0] = h0.T, c0.T
        mask = None if self.mask is None else xp.ascontiguousarray(
            self.mask.T[:, None, :].astype(dtype))                     # (T, 1, B)
        W_h_T = xp.ascontiguousarray(W_h.T)                           # (4H, H)
        recurrent = xp.empty((4 * H, B), dtype=dtype)
        kernel = backend.elementwise_kernel(x, *_FORWARD_KERNEL)
        step = self._forward_step if kernel is None else self._forward_step_fused(kernel)
        for t in range(T):
            xp.matmul(W_h_T, hs[t], out=recurrent)
            gates[t] += recurrent                                      # z = zₓ + W_hᵀh
            step(xp, gates[t], cs[t], hs[t], cs[t + 1], hs[t + 1], tanh_c[t],
                 None if mask is None else mask[t])
        self.x_fm_shape = (B, T, D)
        self.x, self.W_x, self.W_h, self.mask_fm = x, W_x, W_h, mask
        outputs = xp.empty((B, T, H), dtype)
        copy_transposed(hs[1:], outputs.transpose(1, 0, 2))             # (B, T, H)
        return outputs, xp.ascontiguousarray(hs[T].T), xp.ascontiguousarray(cs[T].T)

    def backward(self, g_outputs, g_h, g_c):
        xp = self.xp
        gates, hs, cs, tanh_c = self._buffers
        mask = self.mask_fm
        T, H4, B = gates.shape
        H = H4 // 4
        dtype = gates.dtype
        g_out = copy_transposed(g_outputs.transpose(1, 0, 2), xp.empty((T, H, B), dtype))
        dz = workspace.take(xp, (T, H4, B), dtype)
        dh = xp.ascontiguousarray(g_h.T)
        dc = xp.ascontiguousarray(g_c.T)
        W_h = self.W_h
        kernel = backend.elementwise_kernel(gates, *_BACKWARD_KERNEL)
        step = self._backward_step if kernel is None else self._backward_step_fused(kernel)
        for t in range(T - 1, -1, -1):
            dh += g_out[t]
            dh_skip, dc = step(xp, gates[t], cs[t], tanh_c[t], dh, dc, dz[t],
                               None if mask is None else mask[t])
            xp.matmul(W_h, dz[t], out=dh)                              # dh_{t−1} = W_h dzᵀ
            if dh_skip is not None:
                dh += dh_skip
        needs = self.needs_input_grad
        D = self.x_fm_shape[2]
        dz_rows = copy_transposed(dz, xp.empty((T, B, H4), dtype)).reshape(T * B, H4)
        workspace.give(xp, (dz,))
        dx = dW_x = dW_h = db = None
        if needs[0]:
            dx = (dz_rows @ self.W_x.T).reshape(T, B, D).transpose(1, 0, 2)
        if needs[3]:
            x_rows = xp.ascontiguousarray(self.x.transpose(1, 0, 2)).reshape(T * B, D)
            dW_x = x_rows.T @ dz_rows
        if needs[4]:
            h_rows = copy_transposed(hs[:T], xp.empty((T, B, H), dtype)).reshape(T * B, H)
            dW_h = h_rows.T @ dz_rows
        if needs[5]:
            db = dz_rows.sum(axis=0)
        return (dx, xp.ascontiguousarray(dh.T) if needs[1] else None,
                xp.ascontiguousarray(dc.T) if needs[2] else None, dW_x, dW_h, db)

    # -- one time step, in NumPy ufuncs (CPU, strict) ...
    @staticmethod
    def _forward_step(xp, z, c_prev, h_prev, c, h, tanh_c, m) -> None:
        """Gate activations in place in z (4H, B); then c, tanh c and h (H, B)."""
        H = c.shape[0]
        sigmoid_array(z[:2 * H], out=z[:2 * H])                        # i, f
        xp.tanh(z[2 * H:3 * H], out=z[2 * H:3 * H])                    # g
        sigmoid_array(z[3 * H:], out=z[3 * H:])                        # o
        i, f, g, o = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        xp.multiply(f, c_prev, out=c)
        c += i * g                                                     # c = f⊙c₋ + i⊙g
        xp.tanh(c, out=tanh_c)
        xp.multiply(o, tanh_c, out=h)                                  # h = o⊙tanh c
        if m is not None:  # padded step (m = 0): keep the previous state
            for new, old in ((h, h_prev), (c, c_prev)):
                new -= old
                new *= m
                new += old

    @staticmethod
    def _backward_step(xp, z, c_prev, tanh_c, dh, dc, d, m):
        """dz (4H, B) into d from dh, dc (H, B); returns (dh_skip, dc_{t−1}). ``dh`` and ``dc``
        are used as scratch. dh_skip is the part of dh that skips a padded step."""
        H = tanh_c.shape[0]
        dh_skip = None
        if m is not None:  # the gradient of a padded step goes straight to the previous one
            dh_skip, dc_skip = dh * (1 - m), dc * (1 - m)
            dh *= m
            dc *= m
        i, f, g, o = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        d_i, d_f, d_g, d_o = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
        dc += dh * o * (1 - tanh_c * tanh_c)                           # through h = o⊙tanh c
        # σ' = s(1 − s) for the i, f, o blocks at once (the g block is overwritten next)
        xp.subtract(1, z, out=d)
        d *= z
        xp.multiply(g, g, out=d_g)                                     # tanh' = 1 − g²
        xp.subtract(1, d_g, out=d_g)
        d_i *= g                                                       # ∂c/∂i = g
        d_f *= c_prev                                                  # ∂c/∂f = c₋
        d_g *= i                                                       # ∂c/∂g = i
        first_three = d[:3 * H].reshape(3, H, -1)                      # dz_i, dz_f, dz_g
        first_three *= dc
        d_o *= tanh_c                                                  # ∂h/∂o = tanh c
        d_o *= dh
        dc *= f                                                        # dc_{t−1}
        if m is not None:
            dc += dc_skip
        return dh_skip, dc

    # -- ... and as one fused kernel each way (on CUDA), as Chainer's LSTM
    @staticmethod
    def _forward_step_fused(kernel):
        def step(xp, z, c_prev, h_prev, c, h, tanh_c, m) -> None:
            kernel(c_prev, h_prev, 1 if m is None else m, z, c, h, tanh_c)
        return step

    @staticmethod
    def _backward_step_fused(kernel):
        def step(xp, z, c_prev, tanh_c, dh, dc, d, m):
            dc_prev = xp.empty_like(dc)
            dh_skip = xp.empty_like(dh)
            kernel(c_prev, tanh_c, dh, dc, 1 if m is None else m, z, d, dc_prev, dh_skip)
            return (None if m is None else dh_skip), dc_prev
        return step

    def __del__(self):
        if self._buffers and not sys.is_finalizing():
            workspace.give(self.xp, self._buffers)
