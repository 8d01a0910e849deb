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
- All elementwise work writes into preallocated buffers (``out=``), and the large per-sequence
  buffers are recycled between calls (``_Workspace``): allocating and freeing megabytes each
  step makes the C library return them to the OS, and the page faults on the next touch cost
  more than the arithmetic.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from minidl import backend
from minidl.autograd import Function


def _sigmoid_(a: Any, xp) -> Any:
    """σ(a) in place, as 0.5·tanh(a/2) + 0.5 (stable, and faster than 1/(1+e⁻ᵃ))."""
    a *= 0.5
    xp.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


class _Workspace:
    """Large buffers handed back when the Function that used them is freed, for the next call.

    A buffer is reused only after its owner is gone, so a graph that is still alive (two
    forward passes before one backward, or ``backward()`` called twice) never sees its saved
    values overwritten.
    """

    def __init__(self, keep: int = 2):
        self.free: Dict[tuple, List[Any]] = {}
        self.keep = keep

    def take(self, xp, shape: Tuple[int, ...], dtype) -> Any:
        stack = self.free.get((xp.__name__, shape, str(dtype)))
        return stack.pop() if stack else xp.empty(shape, dtype=dtype)

    def give(self, xp, arrays) -> None:
        for a in arrays:
            stack = self.free.setdefault((xp.__name__, a.shape, str(a.dtype)), [])
            if len(stack) < self.keep:
                stack.append(a)


_workspace = _Workspace()


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
        take = _workspace.take
        # Feature-major buffers: gates[t] is zᵀ (4H, B); hs[t] is h_{t-1}ᵀ (H, B), hs[0] = h0ᵀ.
        gates = take(xp, (T, 4 * H, B), dtype)
        hs = take(xp, (T + 1, H, B), dtype)
        cs = take(xp, (T + 1, H, B), dtype)
        tanh_c = take(xp, (T, H, B), dtype)
        self._buffers = (gates, hs, cs, tanh_c)
        # Input projection of every step at once: zₓᵀ = W_xᵀ xₜᵀ + b.
        x_fm = xp.ascontiguousarray(x.transpose(1, 2, 0))            # (T, D, B)
        xp.matmul(xp.ascontiguousarray(W_x.T), x_fm, out=gates)
        gates += b[:, None]
        hs[0], cs[0] = h0.T, c0.T
        mask = None if self.mask is None else xp.ascontiguousarray(
            self.mask.T[:, None, :].astype(dtype))                     # (T, 1, B)
        W_h_T = xp.ascontiguousarray(W_h.T)                           # (4H, H)
        recurrent = xp.empty((4 * H, B), dtype=dtype)
        ig = xp.empty((H, B), dtype=dtype)
        for t in range(T):
            z = gates[t]
            xp.matmul(W_h_T, hs[t], out=recurrent)
            z += recurrent
            _sigmoid_(z[:2 * H], xp)                                   # i, f
            xp.tanh(z[2 * H:3 * H], out=z[2 * H:3 * H])                # g
            _sigmoid_(z[3 * H:], xp)                                   # o
            i, f, g, o = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
            c, h = cs[t + 1], hs[t + 1]
            xp.multiply(f, cs[t], out=c)
            xp.multiply(i, g, out=ig)
            c += ig
            xp.tanh(c, out=tanh_c[t])
            xp.multiply(o, tanh_c[t], out=h)
            if mask is not None:  # padded step: keep the previous state
                for new, old in ((h, hs[t]), (c, cs[t])):
                    new -= old
                    new *= mask[t]
                    new += old
        self.x_fm_shape = (B, T, D)
        self.x, self.W_x, self.W_h, self.mask_fm = x, W_x, W_h, mask
        outputs = xp.ascontiguousarray(hs[1:].transpose(2, 0, 1))      # (B, T, H)
        return outputs, xp.ascontiguousarray(hs[T].T), xp.ascontiguousarray(cs[T].T)

    def backward(self, g_outputs, g_h, g_c):
        xp = self.xp
        gates, hs, cs, tanh_c = self._buffers
        mask = self.mask_fm
        T, H4, B = gates.shape
        H = H4 // 4
        dtype = gates.dtype
        g_out = xp.ascontiguousarray(g_outputs.transpose(1, 2, 0))     # (T, H, B)
        dz = _workspace.take(xp, (T, H4, B), dtype)
        dh = xp.ascontiguousarray(g_h.T)
        dc = xp.ascontiguousarray(g_c.T)
        tmp = xp.empty((H, B), dtype=dtype)
        W_h = self.W_h
        for t in range(T - 1, -1, -1):
            dh += g_out[t]
            if mask is not None:  # the part of the gradient that skips a padded step
                m = mask[t]
                dh_skip, dc_skip = dh * (1 - m), dc * (1 - m)
                dh *= m
                dc *= m
            z, d = gates[t], dz[t]
            i, f, g, o = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
            d_i, d_f, d_g, d_o = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
            tc = tanh_c[t]
            # dc += dh ⊙ o ⊙ (1 − tanh²c)
            xp.multiply(tc, tc, out=tmp)
            xp.subtract(1, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp
            # σ' = s(1 − s) for the i, f, o blocks at once (the g block is overwritten next)
            xp.subtract(1, z, out=d)
            d *= z
            xp.multiply(g, g, out=d_g)                                 # tanh' = 1 − g²
            xp.subtract(1, d_g, out=d_g)
            d_i *= g                                                   # ∂c/∂i = g
            d_f *= cs[t]                                               # ∂c/∂f = c_{t−1}
            d_g *= i                                                   # ∂c/∂g = i
            first_three = d[:3 * H].reshape(3, H, B)                   # dz_i, dz_f, dz_g
            first_three *= dc
            d_o *= tc                                                  # ∂h/∂o = tanh c
            d_o *= dh
            dc *= f                                                    # dc_{t−1}
            xp.matmul(W_h, d, out=dh)                                  # dh_{t−1} = W_h dzᵀ
            if mask is not None:
                dh += dh_skip
                dc += dc_skip
        needs = self.needs_input_grad
        B_, T_, D = self.x_fm_shape
        dz_rows = xp.ascontiguousarray(dz.transpose(0, 2, 1)).reshape(T * B, H4)  # (T·B, 4H)
        _workspace.give(xp, (dz,))
        dx = dW_x = dW_h = db = None
        if needs[0]:
            dx = (dz_rows @ self.W_x.T).reshape(T, B, D).transpose(1, 0, 2)
        if needs[3]:
            x_rows = xp.ascontiguousarray(self.x.transpose(1, 0, 2)).reshape(T * B, D)
            dW_x = x_rows.T @ dz_rows
        if needs[4]:
            h_rows = xp.ascontiguousarray(hs[:T].transpose(0, 2, 1)).reshape(T * B, H)
            dW_h = h_rows.T @ dz_rows
        if needs[5]:
            db = dz_rows.sum(axis=0)
        return (dx, xp.ascontiguousarray(dh.T) if needs[1] else None,
                xp.ascontiguousarray(dc.T) if needs[2] else None, dW_x, dW_h, db)

    def __del__(self):
        if self._buffers:
            _workspace.give(self.xp, self._buffers)
