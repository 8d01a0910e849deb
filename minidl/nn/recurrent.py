"""Recurrent layers: LSTM (with a fast fused path), GRU and a simple RNN.

All take batch-first input ``x`` of shape (batch, time, features) and an optional ``mask`` of
shape (batch, time) — 1 for real steps, 0 for padding. A masked step leaves the state unchanged
and repeats the previous output (Keras' ``mask_zero``), so with pre-padding the result equals
running on the unpadded sequence.

``recurrent_dropout`` (Keras'): while training, one dropout mask per sequence multiplies the
previous h where it enters the recurrent matmul (h W_h), the same mask at every step; the state
itself is not dropped. It runs the step-by-step path.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from minidl import backend
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.functions.lstm import LSTMFunction
from minidl.nn import init
from minidl.nn.module import Module, Parameter


def mask_array(mask: Any, x: Tensor, time_axis: int = 1) -> Optional[Any]:
    """A padding mask as an array of 0/1 in x's dtype, on x's device, checked against x's shape
    (None stays None). Recurrent layers and Keras' masked pooling use it.

    Shape: mask (batch, time) booleans or numbers, any device, list or Tensor; x has its batch
    axis first and its time axis at ``time_axis`` -> (batch, time).
    """
    if mask is None:
        return None
    data = backend.to_device_array(mask.data if isinstance(mask, Tensor) else mask, x.device)
    expected = (x.shape[0], x.shape[time_axis])
    if data.shape != expected:
        raise ValueError(f"mask must have shape (batch, time) = {expected}, got {data.shape}")
    return data.astype(x.dtype)


def _check_input(name: str, x: Tensor, input_size: int) -> None:
    if x.ndim != 3 or x.shape[2] != input_size:
        raise ValueError(f"{name}: input must have shape (batch, time, {input_size}), got "
                         f"{x.shape}")


def recurrent_dropout_mask(x: Tensor, hidden_size: int, p: float, training: bool) -> Optional[Any]:
    """The (B, H) inverted-dropout mask for h in the recurrent matmul, or None when not used."""
    if not p or not training:
        return None
    xp = backend.get_array_module(x.data)
    return F.dropout(Tensor(xp.ones((x.shape[0], hidden_size), dtype=x.dtype)), p, True).data


def _keep_where_masked(new: Tensor, old: Tensor, m: Optional[Tensor]) -> Tensor:
    """m·new + (1 − m)·old: a padded step (m = 0) keeps the old state."""
    return new if m is None else old + (new - old) * m


class LSTMCell(Module):
    """One LSTM step, written with primitive ops so that it reads like the math.

        z = x W_x + h W_h + b                 gates in the order i, f, g, o
        i = σ(z_i)  f = σ(z_f)  g = tanh(z_g)  o = σ(z_o)
        c' = f ⊙ c + i ⊙ g          h' = o ⊙ tanh(c')

    Shape: x (B, input_size), h and c (B, hidden_size) -> (h', c').
    Parameters: W_x (input_size, 4H) glorot-uniform; W_h (H, 4H) orthogonal; b (4H,) zeros
    except the forget gate's block, which starts at 1 (Keras' unit_forget_bias), so the cell
    remembers by default.
    """

    def __init__(self, input_size: int, hidden_size: int, dtype: Any = "float32",
                 device: Optional[str] = None):
        super().__init__()
        device = backend.check_device(device)
        H = hidden_size
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W_x = Parameter(init.glorot_uniform((input_size, 4 * H), dtype=dtype, device=device))
        self.W_h = Parameter(init.orthogonal((H, 4 * H), dtype=dtype, device=device))
        b = init.zeros((4 * H,), dtype, device)
        b[H:2 * H] = 1.0
        self.b = Parameter(b)

    def forward(self, x: Tensor, state: Tuple[Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
        # BEGIN EXERCISE lstm_cell_forward
        h, c = state
        H = self.hidden_size
        z = x @ self.W_x + h @ self.W_h + self.b
        i = F.sigmoid(z[:, :H])
        f = F.sigmoid(z[:, H:2 * H])
        g = F.tanh(z[:, 2 * H:3 * H])
        o = F.sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * F.tanh(c)
        return h, c
        # END EXERCISE

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class LSTM(Module):
    """A long short-term memory layer over a whole sequence.

    Shape: x (B, T, input_size) -> outputs (B, T, H), (h_T, c_T) each (B, H).
    ``state``: initial (h_0, c_0), zeros when None. ``mask``: (B, T) of 0/1, see module doc.
    Parameters: as ``LSTMCell`` (``lstm.W_x``, ``lstm.W_h``, ``lstm.b``).

    ``fast=True`` runs the fused ``LSTMFunction`` (one op for the sequence, hand-written
    backward through time); ``fast=False`` applies ``LSTMCell`` step by step (readable, and
    differentiable twice). Both give the same numbers.
    """

    def __init__(self, input_size: int, hidden_size: int, fast: bool = True,
                 dtype: Any = "float32", device: Optional[str] = None,
                 recurrent_dropout: float = 0.0):
        super().__init__()
        self.cell = LSTMCell(input_size, hidden_size, dtype, device)
        self.input_size, self.hidden_size, self.fast = input_size, hidden_size, fast
        self.recurrent_dropout = recurrent_dropout

    def forward(self, x: Tensor, state: Optional[Tuple[Tensor, Tensor]] = None,
                mask: Any = None) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        self.check_input_dtype(x)  # the nn dtype policy (nn.module)
        _check_input("LSTM", x, self.input_size)
        B, T, _ = x.shape
        if state is None:
            xp = backend.get_array_module(x.data)
            zeros = Tensor(xp.zeros((B, self.hidden_size), dtype=x.dtype))
            state = (zeros, zeros)
        m = mask_array(mask, x)
        cell = self.cell
        h_mask = recurrent_dropout_mask(x, self.hidden_size, self.recurrent_dropout,
                                        self.training)
        if self.fast and h_mask is None:
            outputs, h, c = LSTMFunction(m)(x, state[0], state[1], cell.W_x, cell.W_h, cell.b)
            return outputs, (h, c)
        return _unroll(cell, x, state, m, h_mask)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, fast={self.fast}"


def _unroll(cell: Module, x: Tensor, state: Any, mask: Optional[Any],
            h_mask: Optional[Any] = None):
    """Apply ``cell`` to each time step; the readable reference for every recurrent layer.
    ``h_mask``: recurrent dropout, applied to h where it enters the recurrent matmul."""
    outputs = []
    lstm = isinstance(state, tuple)
    h_mask = None if h_mask is None else Tensor(h_mask)
    for t in range(x.shape[1]):
        m = None if mask is None else Tensor(mask[:, t:t + 1])
        if h_mask is None:
            new = cell(x[:, t], state)
        elif lstm:  # the LSTM uses h only in the matmul
            new = cell(x[:, t], (state[0] * h_mask, state[1]))
        else:
            new = cell(x[:, t], state, h_recurrent=state * h_mask)
        if lstm:
            state = (_keep_where_masked(new[0], state[0], m),
                     _keep_where_masked(new[1], state[1], m))
            outputs.append(state[0])
        else:
            state = _keep_where_masked(new, state, m)
            outputs.append(state)
    return F.stack(outputs, axis=1), state


class GRUCell(Module):
    """One GRU step (PyTorch's formulation, gates in the order r, z, n):

        r = σ(x W_xr + b_xr + h W_hr + b_hr)      z = σ(x W_xz + b_xz + h W_hz + b_hz)
        n = tanh(x W_xn + b_xn + r ⊙ (h W_hn + b_hn))
        h' = (1 − z) ⊙ n + z ⊙ h

    Parameters: W_x (input_size, 3H) glorot-uniform, W_h (H, 3H) orthogonal, b_x and b_h (3H,).
    """

    def __init__(self, input_size: int, hidden_size: int, dtype: Any = "float32",
                 device: Optional[str] = None):
        super().__init__()
        device = backend.check_device(device)
        H = hidden_size
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W_x = Parameter(init.glorot_uniform((input_size, 3 * H), dtype=dtype, device=device))
        self.W_h = Parameter(init.orthogonal((H, 3 * H), dtype=dtype, device=device))
        self.b_x = Parameter(init.zeros((3 * H,), dtype, device))
        self.b_h = Parameter(init.zeros((3 * H,), dtype, device))

    def forward(self, x: Tensor, h: Tensor, h_recurrent: Optional[Tensor] = None) -> Tensor:
        """``h_recurrent``: h as it enters the recurrent matmul (h with recurrent dropout)."""
        H = self.hidden_size
        zx = x @ self.W_x + self.b_x
        zh = (h if h_recurrent is None else h_recurrent) @ self.W_h + self.b_h
        r = F.sigmoid(zx[:, :H] + zh[:, :H])
        z = F.sigmoid(zx[:, H:2 * H] + zh[:, H:2 * H])
        n = F.tanh(zx[:, 2 * H:] + r * zh[:, 2 * H:])
        return (1 - z) * n + z * h

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(Module):
    """One step of the simple (Elman) RNN: h' = tanh(x W_x + h W_h + b)."""

    def __init__(self, input_size: int, hidden_size: int, dtype: Any = "float32",
                 device: Optional[str] = None):
        super().__init__()
        device = backend.check_device(device)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W_x = Parameter(init.glorot_uniform((input_size, hidden_size), dtype=dtype,
                                                 device=device))
        self.W_h = Parameter(init.orthogonal((hidden_size, hidden_size), dtype=dtype,
                                             device=device))
        self.b = Parameter(init.zeros((hidden_size,), dtype, device))

    def forward(self, x: Tensor, h: Tensor, h_recurrent: Optional[Tensor] = None) -> Tensor:
        h = h if h_recurrent is None else h_recurrent
        return F.tanh(x @ self.W_x + h @ self.W_h + self.b)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class _SingleStateRNN(Module):
    cell_type: type = Module

    def __init__(self, input_size: int, hidden_size: int, dtype: Any = "float32",
                 device: Optional[str] = None, recurrent_dropout: float = 0.0):
        super().__init__()
        self.cell = self.cell_type(input_size, hidden_size, dtype, device)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.recurrent_dropout = recurrent_dropout

    def forward(self, x: Tensor, state: Optional[Tensor] = None,
                mask: Any = None) -> Tuple[Tensor, Tensor]:
        """Shape: x (B, T, input_size) -> outputs (B, T, H), h_T (B, H)."""
        self.check_input_dtype(x)  # the nn dtype policy (nn.module)
        _check_input(type(self).__name__, x, self.input_size)
        if state is None:
            xp = backend.get_array_module(x.data)
            state = Tensor(xp.zeros((x.shape[0], self.hidden_size), dtype=x.dtype))
        h_mask = recurrent_dropout_mask(x, self.hidden_size, self.recurrent_dropout,
                                        self.training)
        return _unroll(self.cell, x, state, mask_array(mask, x), h_mask)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class GRU(_SingleStateRNN):
    """A GRU layer over a sequence (``GRUCell`` step by step). Returns (outputs, h_T)."""
    cell_type = GRUCell


class RNN(_SingleStateRNN):
    """A simple tanh RNN layer over a sequence (``RNNCell`` step by step). Returns (outputs, h_T)."""
    cell_type = RNNCell
