"""A vanilla RNN over a whole sequence as one Function with a hand-written backward through
time: the reference of the ``rnn_bptt`` exercise (CS231n's ``rnn_backward``).

``nn.LSTM`` runs its fused backward through time in ``functions/lstm.py``, where the gates, the
masks and the feature-major buffers hide the idea. This module keeps only the idea: lesson 8
derives backpropagation through time, and the exercise writes it for the simplest recurrent
cell, h_t = tanh(x_t W_x + h_{t−1} W_h + b). A test checks it against the same RNN written
with primitive ops, whose backward autograd derives.
"""
from __future__ import annotations

from minidl import backend
from minidl.autograd import Function, Tensor


class RNNFunction(Function):
    """A tanh RNN over T steps, forward and backward (through time) by hand.

        h_t = tanh(x_t W_x + h_{t−1} W_h + b)      for t = 1 … T, from h_0

    Shape: x (B, T, D), h0 (B, H), W_x (D, H), W_h (H, H), b (H,) -> hs (B, T, H), the h_t of
    every step. Forward keeps every h_t (``self.hs``) for the backward pass.
    Backward: from grad_hs = ∂L/∂hs (B, T, H) return (dx, dh0, dW_x, dW_h, db), one gradient
    per input, each of that input's shape.
    """

    differentiable_backward = False  # backward works on the saved arrays (first order only)

    def forward(self, x, h0, W_x, W_h, b):
        xp = backend.get_array_module(x)
        B, T, _ = x.shape
        hs = xp.empty((B, T, h0.shape[1]), dtype=x.dtype)
        h = h0
        for t in range(T):
            h = xp.tanh(x[:, t] @ W_x + h @ W_h + b)
            hs[:, t] = h
        self.save_for_backward(x, h0, W_x, W_h)
        self.hs = hs
        return hs

    def backward(self, grad_hs):
        # BEGIN EXERCISE rnn_bptt
        xp = backend.get_array_module(grad_hs)
        x, h0, W_x, W_h = self.saved_tensors
        hs = self.hs
        T = x.shape[1]
        dx = xp.empty_like(x)
        dW_x, dW_h = xp.zeros_like(W_x), xp.zeros_like(W_h)
        db = xp.zeros(W_h.shape[1], dtype=grad_hs.dtype)
        dh_next = xp.zeros_like(h0)           # ∂L/∂h_t through step t + 1 (none after T)
        for t in reversed(range(T)):
            h_prev = hs[:, t - 1] if t > 0 else h0
            dh = grad_hs[:, t] + dh_next      # h_t reaches the loss directly and via step t + 1
            dz = dh * (1 - hs[:, t] ** 2)     # back through tanh
            dx[:, t] = dz @ W_x.T
            dW_x += x[:, t].T @ dz            # the same weights at every step: sum over time
            dW_h += h_prev.T @ dz
            db += dz.sum(axis=0)
            dh_next = dz @ W_h.T
        return dx, dh_next, dW_x, dW_h, db
        # END EXERCISE


def rnn(x: Tensor, h0: Tensor, W_x: Tensor, W_h: Tensor, b: Tensor) -> Tensor:
    """``RNNFunction`` on tensors: the hidden states (B, T, H) of a tanh RNN over x."""
    return RNNFunction()(x, h0, W_x, W_h, b)
