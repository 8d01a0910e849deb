"""One LSTM step as a single ``Function`` with a hand-written backward: the reference solution
of the exercise ``lstm_cell_backward``.

minidl's layers run an LSTM two ways: ``nn.LSTMCell`` (``minidl/nn/recurrent.py``) writes a step
with primitive ops, so autograd derives its backward — readable, but there is no backward to
write; ``LSTMFunction`` (``minidl/functions/lstm.py``) runs a whole sequence in one op with
feature-major buffers — fast, but its backward through time is too entangled to be an exercise.
This module adds no third forward: ``LSTMCellFunction.forward`` runs the fused path's own step
(``LSTMFunction._forward_step``, with ``sigmoid_array``) on one step. What it adds is the
backward through the gates of one step, written out as one reads it in a textbook — the
exercise. No layer uses it; a test checks it against ``nn.LSTMCell``, and the fused backward
follows the same steps.
"""
from __future__ import annotations

from typing import Tuple

from minidl import backend
from minidl.autograd import Function, Tensor
from minidl.functions.lstm import LSTMFunction
from minidl.nn.recurrent import LSTMCell


class LSTMCellFunction(Function):
    """One LSTM step, forward and backward by hand.

        z = x W_x + h W_h + b              (B, 4H), blocks of H columns in the order i, f, g, o
        i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
        c' = f ⊙ c + i ⊙ g                 h' = o ⊙ tanh(c')

    Shape: x (B, D), h and c (B, H), W_x (D, 4H), W_h (H, 4H), b (4H,) -> h' (B, H), c' (B, H).
    Backward: from grad_h = ∂L/∂h' and grad_c = ∂L/∂c' (both (B, H)) return
    (dx, dh, dc, dW_x, dW_h, db), one gradient per input, each of that input's shape. The local
    derivatives are σ' = σ(1 − σ) and tanh' = 1 − tanh². Note that c' reaches the loss twice:
    directly (grad_c) and through h'. The gradient dz (B, 4H) of the four gate blocks then
    feeds the three matrix products exactly as in Linear's backward.
    """

    differentiable_backward = False  # backward works on the saved arrays (first order only)

    def forward(self, x, h, c, W_x, W_h, b):
        xp = backend.get_array_module(x)
        B, H = h.shape
        # nn.LSTM's fast step works feature-major: zᵀ (4H, B), each gate a block of H rows,
        # activated in place (σ, σ, tanh, σ); it writes c', h' and tanh(c') as (H, B).
        z = xp.ascontiguousarray((x @ W_x + h @ W_h + b).T)
        c_new, h_new, tanh_c = (xp.empty((H, B), dtype=z.dtype) for _ in range(3))
        LSTMFunction._forward_step(xp, z, xp.ascontiguousarray(c.T), None, c_new, h_new, tanh_c,
                                   None)
        self.save_for_backward(x, h, c, W_x, W_h)
        self.gates = tuple(z[k * H:(k + 1) * H].T for k in range(4))   # i, f, g, o, each (B, H)
        self.tanh_c = tanh_c.T
        return xp.ascontiguousarray(h_new.T), xp.ascontiguousarray(c_new.T)

    def backward(self, grad_h, grad_c):
        # BEGIN EXERCISE lstm_cell_backward
        xp = backend.get_array_module(grad_h)
        x, h, c, W_x, W_h = self.saved_tensors
        i, f, g, o = self.gates
        tanh_c = self.tanh_c
        dc_new = grad_c + grad_h * o * (1 - tanh_c * tanh_c)   # c' directly and through h'
        d_o = grad_h * tanh_c
        d_i, d_f, d_g = dc_new * g, dc_new * c, dc_new * i
        dz = xp.concatenate([d_i * i * (1 - i),                # back through σ, σ, tanh, σ
                             d_f * f * (1 - f),
                             d_g * (1 - g * g),
                             d_o * o * (1 - o)], axis=1)
        dx = dz @ W_x.T
        dh = dz @ W_h.T
        dc = dc_new * f
        dW_x = x.T @ dz
        dW_h = h.T @ dz
        db = dz.sum(axis=0)
        return dx, dh, dc, dW_x, dW_h, db
        # END EXERCISE


def lstm_cell(cell: LSTMCell, x: Tensor,
              state: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
    """``cell(x, state)`` through ``LSTMCellFunction``: one step with ``cell``'s parameters
    W_x, W_h, b, returning (h', c'). Shapes as ``nn.LSTMCell``."""
    h, c = state
    return LSTMCellFunction()(x, h, c, cell.W_x, cell.W_h, cell.b)
