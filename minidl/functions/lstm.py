"""The LSTM over a whole sequence as one Function, with a hand-written backward through time.

This is the fast path behind ``nn.LSTM``. The readable path is ``nn.LSTMCell`` applied step by
step (``nn.LSTM(..., fast=False)``); a test shows both agree. The math of one step, gates in the
order i, f, g, o (as Keras and PyTorch):

    z = x_t W_x + h_{t-1} W_h + b                      (B, 4H)
    i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g        h_t = o ⊙ tanh(c_t)

With a mask, a step where m = 0 leaves the state unchanged: h_t = h_{t-1}, c_t = c_{t-1}
(Keras' ``mask_zero``).

Why it is fast: the input projection of all T steps is one matmul; each step does one matmul
for the four gates; the backward pass collects dz for all steps and then computes dW_x, dW_h and
dx with three big matmuls instead of 3T small ones; buffers are allocated once per call.
"""
from __future__ import annotations

from typing import Any, Optional

from minidl import backend
from minidl.autograd import Function


def _sigmoid_(a: Any, xp) -> Any:
    """σ(a) in place, as 0.5·tanh(a/2) + 0.5 (stable, and faster than 1/(1+e⁻ᵃ))."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


class LSTMFunction(Function):
    """inputs: x (B, T, D), h0 (B, H), c0 (B, H), W_x (D, 4H), W_h (H, 4H), b (4H,)
    outputs: hs (B, T, H), h_T (B, H), c_T (B, H)
    ``mask``: optional (B, T) array of 0/1; 0 marks padding steps that leave the state alone.
    """

    differentiable_backward = False

    def __init__(self, mask: Optional[Any] = None):
        self.mask = mask

    def forward(self, x, h0, c0, W_x, W_h, b):
        xp = backend.get_array_module(x)
        B, T, D = x.shape
        H = W_h.shape[0]
        # Time-major copies so that each step reads contiguous memory.
        x_tm = xp.ascontiguousarray(x.transpose(1, 0, 2))
        gates = (x_tm.reshape(T * B, D) @ W_x).reshape(T, B, 4 * H)  # becomes the activations
        gates += b
        hs = xp.empty((T + 1, B, H), dtype=x.dtype)   # hs[t] is h_{t-1}; hs[0] = h0
        cs = xp.empty((T + 1, B, H), dtype=x.dtype)
        tanh_c = xp.empty((T, B, H), dtype=x.dtype)
        hs[0], cs[0] = h0, c0
        mask = None if self.mask is None else xp.ascontiguousarray(
            self.mask.T[:, :, None].astype(x.dtype))
        recurrent = xp.empty((B, 4 * H), dtype=x.dtype)
        for t in range(T):
            z = gates[t]
            xp.matmul(hs[t], W_h, out=recurrent)
            z += recurrent
            _sigmoid_(z[:, :2 * H], xp)            # i, f
            xp.tanh(z[:, 2 * H:3 * H], out=z[:, 2 * H:3 * H])  # g
            _sigmoid_(z[:, 3 * H:], xp)            # o
            i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            c = cs[t + 1]
            xp.multiply(f, cs[t], out=c)
            c += i * g
            xp.tanh(c, out=tanh_c[t])
            h = hs[t + 1]
            xp.multiply(o, tanh_c[t], out=h)
            if mask is not None:  # padded step: keep the previous state
                m = mask[t]
                h -= hs[t]
                h *= m
                h += hs[t]
                c -= cs[t]
                c *= m
                c += cs[t]
        self.x_tm, self.W_x, self.W_h = x_tm, W_x, W_h
        self.gates, self.hs, self.cs, self.tanh_c, self.mask_tm = gates, hs, cs, tanh_c, mask
        outputs = xp.ascontiguousarray(hs[1:].transpose(1, 0, 2))
        return outputs, hs[T].copy(), cs[T].copy()

    def backward(self, g_outputs, g_h, g_c):
        xp = backend.get_array_module(g_outputs)
        gates, hs, cs, tanh_c, mask = self.gates, self.hs, self.cs, self.tanh_c, self.mask_tm
        T, B, H4 = gates.shape
        H = H4 // 4
        g_out_tm = g_outputs.transpose(1, 0, 2)
        dz = xp.empty_like(gates)
        dh = g_h.copy()
        dc = g_c.copy()
        W_h_T = xp.ascontiguousarray(self.W_h.T)
        for t in range(T - 1, -1, -1):
            dh += g_out_tm[t]
            if mask is not None:  # split into the part that flowed through this step
                m = mask[t]
                dh_skip, dc_skip = dh * (1 - m), dc * (1 - m)
                dh *= m
                dc *= m
            z = gates[t]
            i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            tc = tanh_c[t]
            dc += dh * o * (1 - tc * tc)
            d = dz[t]
            xp.multiply(dc * g, i * (1 - i), out=d[:, :H])           # dz_i
            xp.multiply(dc * cs[t], f * (1 - f), out=d[:, H:2 * H])  # dz_f
            xp.multiply(dc * i, 1 - g * g, out=d[:, 2 * H:3 * H])    # dz_g
            xp.multiply(dh * tc, o * (1 - o), out=d[:, 3 * H:])      # dz_o
            dc *= f                                                   # dc_{t-1}
            dh = d @ W_h_T                                            # dh_{t-1}
            if mask is not None:
                dh += dh_skip
                dc += dc_skip
        needs = self.needs_input_grad
        D = self.x_tm.shape[2]
        dz_flat = dz.reshape(T * B, H4)
        dx = dW_x = dW_h = db = None
        if needs[0]:
            dx = (dz_flat @ self.W_x.T).reshape(T, B, D).transpose(1, 0, 2)
        if needs[3]:
            dW_x = self.x_tm.reshape(T * B, D).T @ dz_flat
        if needs[4]:
            dW_h = hs[:T].reshape(T * B, H).T @ dz_flat
        if needs[5]:
            db = dz_flat.sum(axis=0)
        return dx, (dh if needs[1] else None), (dc if needs[2] else None), dW_x, dW_h, db
