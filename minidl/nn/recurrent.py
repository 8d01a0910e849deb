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


class _Recurrent(Module):
    """What LSTM, GRU and RNN share: PyTorch's options for stacking and directions.

    ``num_layers``: layers stacked, each reading the outputs of the one below (``dropout``
    between them while training). ``bidirectional``: each layer also runs over the reversed
    sequence; the two outputs are concatenated (2H features). ``batch_first``: minidl is
    batch-first; ``batch_first=False`` takes and returns (T, B, ...) as PyTorch's default.

    States have minidl's shape (B, H) for the default single-layer, one-direction layer whose
    ``batch_first`` is not given. PyTorch's (num_layers·num_directions, B, H) is used — for the
    initial state too — when asked: ``batch_first`` given (True or False), ``num_layers > 1``
    or ``bidirectional``. Layer 0's cell is ``cell``; the others are ``cell_reverse``,
    ``cell_l1``, ``cell_l1_reverse``, ... (PyTorch's ``_l1``, ``_reverse`` suffixes).
    """

    cell_type: type = Module
    n_states = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool,
                 batch_first: Optional[bool], dropout: float, bidirectional: bool, dtype: Any,
                 device: Optional[str], recurrent_dropout: float):
        super().__init__()
        name = type(self).__name__
        if not bias:
            raise NotImplementedError(f"{name}: bias=False is not supported (the cells always "
                                      f"have biases)")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"{name}: num_layers must be a positive integer, got {num_layers!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bidirectional, self.dropout = num_layers, bidirectional, dropout
        self.batch_first = True if batch_first is None else bool(batch_first)
        self.pytorch_state = batch_first is not None or num_layers > 1 or bidirectional
        self.recurrent_dropout = recurrent_dropout
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            size = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                setattr(self, self._cell_name(layer, direction),
                        self.cell_type(size, hidden_size, dtype, device))

    @staticmethod
    def _cell_name(layer: int, direction: int) -> str:
        return ("cell" if layer == 0 else f"cell_l{layer}") + ("_reverse" if direction else "")

    def _run_one(self, cell: Module, x: Tensor, state: Any, m: Optional[Any]) -> Tuple[Tensor, Any]:
        """One layer in one direction over (B, T, features) from ``state``."""
        h_mask = recurrent_dropout_mask(x, self.hidden_size, self.recurrent_dropout,
                                        self.training)
        return _unroll(cell, x, state, m, h_mask)

    def _zeros(self, x: Tensor) -> Any:
        xp = backend.get_array_module(x.data)
        zeros = Tensor(xp.zeros((x.shape[0], self.hidden_size), dtype=x.dtype))
        return (zeros, zeros) if self.n_states == 2 else zeros

    def forward(self, x: Tensor, state: Any = None, mask: Any = None) -> Tuple[Tensor, Any]:
        """Shape: x (B, T, input_size) (or (T, B, ...) with batch_first=False) -> outputs
        (B, T, directions·H) and the final state(s) (see the class docstring)."""
        self.check_input_dtype(x)  # the nn dtype policy (nn.module)
        if not self.batch_first:
            x = x.transpose(1, 0, 2) if x.ndim == 3 else x
        _check_input(type(self).__name__, x, self.input_size)
        m = mask_array(mask, x)
        if not self.pytorch_state:
            outputs, final = self._run_one(self.cell, x,
                                            self._zeros(x) if state is None else state, m)
            return outputs, final
        directions = 2 if self.bidirectional else 1
        initial = self._initial_states(x, state, directions)
        finals, layer_input = [], x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                cell = getattr(self, self._cell_name(layer, direction))
                sequence, steps = (layer_input, m) if direction == 0 else \
                    (layer_input[:, ::-1], None if m is None else m[:, ::-1])
                out, final = self._run_one(cell, sequence, initial[layer * directions + direction],
                                           steps)
                outputs.append(out if direction == 0 else out[:, ::-1])
                finals.append(final)
            layer_input = outputs[0] if directions == 1 else F.concat(outputs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        outputs = layer_input if self.batch_first else layer_input.transpose(1, 0, 2)
        if self.n_states == 2:
            return outputs, (F.stack([h for h, _ in finals]), F.stack([c for _, c in finals]))
        return outputs, F.stack(finals)

    def _initial_states(self, x: Tensor, state: Any, directions: int) -> list:
        """One initial state per (layer, direction), from PyTorch's (L·D, B, H) tensors."""
        count = self.num_layers * directions
        if state is None:
            return [self._zeros(x)] * count
        parts = state if self.n_states == 2 else (state,)
        expected = (count, x.shape[0], self.hidden_size)
        for part in parts:
            if tuple(part.shape) != expected:
                raise ValueError(f"{type(self).__name__}: initial state must have shape "
                                 f"(num_layers * num_directions, batch, hidden) = {expected}, "
                                 f"got {tuple(part.shape)}")
        if self.n_states == 2:
            return [(parts[0][i], parts[1][i]) for i in range(count)]
        return [parts[0][i] for i in range(count)]

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in (("num_layers", self.num_layers),
                                                  ("bidirectional", self.bidirectional),
                                                  ("dropout", self.dropout)) if v)
        if self.pytorch_state:
            extra += f", batch_first={self.batch_first}"
        return f"{self.input_size}, {self.hidden_size}{extra}"


class LSTM(_Recurrent):
    """A long short-term memory layer over a whole sequence.

    Shape: x (B, T, input_size) -> outputs (B, T, H), (h_T, c_T) each (B, H).
    ``state``: initial (h_0, c_0), zeros when None. ``mask``: (B, T) of 0/1, see module doc.
    Parameters: as ``LSTMCell`` (``lstm.W_x``, ``lstm.W_h``, ``lstm.b``).

    ``fast=True`` runs the fused ``LSTMFunction`` (one op for the sequence, hand-written
    backward through time); ``fast=False`` applies ``LSTMCell`` step by step (readable, and
    differentiable twice). Both give the same numbers.

    PyTorch's ``num_layers``, ``bias``, ``batch_first``, ``dropout`` and ``bidirectional`` (in
    PyTorch's order after ``hidden_size``) stack layers and directions; see ``_Recurrent``.
    """

    cell_type, n_states = LSTMCell, 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: Optional[bool] = None, dropout: float = 0.0,
                 bidirectional: bool = False, *, fast: bool = True, dtype: Any = "float32",
                 device: Optional[str] = None, recurrent_dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, device, recurrent_dropout)
        self.fast = fast

    def _run_one(self, cell: Module, x: Tensor, state: Any, m: Optional[Any]) -> Tuple[Tensor, Any]:
        h_mask = recurrent_dropout_mask(x, self.hidden_size, self.recurrent_dropout,
                                        self.training)
        if self.fast and h_mask is None:
            outputs, h, c = LSTMFunction(m)(x, state[0], state[1], cell.W_x, cell.W_h, cell.b)
            return outputs, (h, c)
        return _unroll(cell, x, state, m, h_mask)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fast={self.fast}"


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


class _SingleStateRNN(_Recurrent):
    cell_type: type = Module

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: Optional[bool] = None, dropout: float = 0.0,
                 bidirectional: bool = False, *, dtype: Any = "float32",
                 device: Optional[str] = None, recurrent_dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype, device, recurrent_dropout)


class GRU(_SingleStateRNN):
    """A GRU layer over a sequence (``GRUCell`` step by step). Returns (outputs, h_T) with
    h_T (B, H); PyTorch's stacking options as ``LSTM``."""
    cell_type = GRUCell


class RNN(_SingleStateRNN):
    """A simple tanh RNN layer over a sequence (``RNNCell`` step by step). Returns (outputs,
    h_T); PyTorch's stacking options as ``LSTM``."""
    cell_type = RNNCell
