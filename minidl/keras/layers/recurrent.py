"""Keras' recurrent layers, each wrapping the ``minidl.nn`` layer of the same math.

    LSTM(units, return_sequences=False, return_state=False)   → nn.LSTM
    GRU(units, ...)                                            → nn.GRU
    SimpleRNN(units, ...)                                      → nn.RNN

Input (batch, timesteps, features). ``go_backwards=True`` reads the sequence from its end (the
outputs of ``return_sequences`` come in that reversed order, as Keras). With a mask (``Embedding(mask_zero=True)`` before them)
they leave their state unchanged at masked steps, so a pre-padded sequence gives the same final
output as the unpadded one.

Weights and defaults are Keras': kernels glorot-uniform, recurrent kernels orthogonal, biases
zero (LSTM forget gate 1, Keras' ``unit_forget_bias``).
"""
from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from minidl import backend, nn
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.keras.layers.layer import Layer, Shape, initialise


class _Recurrent(Layer):
    """Shared by LSTM, GRU and SimpleRNN: wraps an ``nn`` recurrent layer made at the first
    call. Output: the last output (batch, units), or every step's (batch, timesteps, units)
    with ``return_sequences``; with ``return_state`` a list ``[output, *final_states]``."""

    supports_masking = True
    input_ndim = 3
    rank_hint = (". Recurrent layers take (batch, timesteps, features); to feed token ids, "
                 "put an Embedding layer first.")
    core_class: type = nn.LSTM
    core_name = "lstm"
    n_states = 1

    def __init__(self, units: int, activation: str, use_bias: bool, kernel_initializer: Any,
                 recurrent_initializer: Any, bias_initializer: Any, dropout: float,
                 recurrent_dropout: float, return_sequences: bool, return_state: bool,
                 go_backwards: bool, stateful: bool, **kwargs: Any):
        super().__init__(**kwargs)
        unsupported = {"activation": activation != "tanh", "use_bias": not use_bias,
                       "stateful": stateful}
        for option, used in unsupported.items():
            if used:
                raise NotImplementedError(f"{type(self).__name__}: minidl.keras implements "
                                          f"the default {option} only")
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"{type(self).__name__}: units must be a positive integer, got "
                             f"{units!r}")
        for what, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{type(self).__name__}: {what} must be in [0, 1), got {rate}")
        self.units, self.dropout, self.recurrent_dropout = int(units), dropout, recurrent_dropout
        self.return_sequences, self.return_state = return_sequences, return_state
        self.go_backwards = go_backwards
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer

    @property
    def core(self) -> nn.Module:
        """The wrapped ``nn`` layer."""
        return getattr(self, self.core_name)

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"The last dimension of the inputs to {self.name!r} should be "
                             f"defined. Found None.")
        setattr(self, self.core_name, self.core_class(
            features, self.units, device=self._build_device,
            recurrent_dropout=self.recurrent_dropout))
        cell = self.core.cell
        initialise(cell.W_x, self.kernel_initializer, "glorot_uniform")
        initialise(cell.W_h, self.recurrent_initializer, "orthogonal")
        self._initialise_bias(cell)
        self._last_dim = features

    def _initialise_bias(self, cell: nn.Module) -> None:
        initialise(cell.b, self.bias_initializer, "zeros")

    def call(self, x: Tensor, mask: Any = None) -> Any:
        if self.go_backwards:  # read the sequence from its end; outputs stay in that order
            x = x[:, ::-1]
            if mask is not None:
                mask = (mask.data if isinstance(mask, Tensor) else mask)[:, ::-1]
        if self.dropout and self.training:
            # Keras drops the same input features at every time step of a sequence.
            xp = backend.get_array_module(x.data)
            ones = Tensor(xp.ones((x.shape[0], 1, x.shape[2]), dtype=x.dtype))
            x = x * F.dropout(ones, self.dropout, True)
        outputs, state = self.core(x, mask=mask)
        states = list(state) if isinstance(state, tuple) else [state]
        # The last output is the final h: at masked steps the state, and so h, is carried on.
        output = outputs if self.return_sequences else states[0]
        return [output] + states if self.return_state else output

    def compute_mask(self, inputs: Tensor, mask: Any = None) -> Any:
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape: Shape) -> Any:
        batch, steps = input_shape[0], input_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [output] + [(batch, self.units)] * self.n_states
        return output

    def extra_repr(self) -> str:
        return (f"{self.units}, return_sequences={self.return_sequences}, "
                f"return_state={self.return_state}, name={self.name!r}")


class LSTM(_Recurrent):
    """Long short-term memory (Keras' defaults: tanh, sigmoid gates, unit forget bias).
    Wraps ``nn.LSTM`` (``self.lstm``). ``return_state``: ``[output, h, c]``."""

    core_class, core_name, n_states = nn.LSTM, "lstm", 2

    def __init__(self, units: int, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 unit_forget_bias: bool = True, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, return_sequences: bool = False,
                 return_state: bool = False, go_backwards: bool = False, stateful: bool = False,
                 **kwargs: Any):
        if recurrent_activation != "sigmoid":
            raise NotImplementedError("LSTM: minidl.keras implements the default "
                                      "recurrent_activation='sigmoid' only")
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, dropout, recurrent_dropout, return_sequences,
                         return_state, go_backwards, stateful, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    def _initialise_bias(self, cell: nn.Module) -> None:
        H = self.units
        initialise(cell.b, self.bias_initializer, "zeros")
        if self.bias_initializer != "zeros" or not self.unit_forget_bias:
            cell.b.data[H:2 * H] = 1.0 if self.unit_forget_bias else 0.0


class GRU(_Recurrent):
    """Gated recurrent unit, Keras' default ``reset_after=True`` form (the reset gate applied
    after the recurrent matmul, as PyTorch and cuDNN). Wraps ``nn.GRU`` (``self.gru``).
    ``return_state``: ``[output, h]``."""

    core_class, core_name, n_states = nn.GRU, "gru", 1

    def __init__(self, units: int, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, reset_after: bool = True,
                 **kwargs: Any):
        if recurrent_activation != "sigmoid" or not reset_after:
            raise NotImplementedError("GRU: minidl.keras implements the default "
                                      "recurrent_activation='sigmoid' and reset_after=True only")
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, dropout, recurrent_dropout, return_sequences,
                         return_state, go_backwards, stateful, **kwargs)

    def _initialise_bias(self, cell: nn.Module) -> None:
        initialise(cell.b_x, self.bias_initializer, "zeros")
        initialise(cell.b_h, self.bias_initializer, "zeros")

    # Keras' layout: kernel (in, 3u), recurrent_kernel (u, 3u), bias (2, 3u) = [input bias,
    # recurrent bias], gate blocks z, r, h. nn.GRUCell keeps PyTorch's order r, z, n and two
    # bias vectors; swapping the first two blocks converts either way.
    def _swap_gates(self, array: np.ndarray) -> np.ndarray:
        H = self.units
        return np.concatenate([array[..., H:2 * H], array[..., :H], array[..., 2 * H:]],
                              axis=-1)

    def get_weights(self) -> List[np.ndarray]:
        """``[kernel, recurrent_kernel, bias]`` in Keras' layout (``reset_after=True``), so
        ``set_weights(keras_gru.get_weights())`` works both ways."""
        if not self.built:
            return []
        cell = self.core.cell
        return [self._swap_gates(cell.W_x.numpy()), self._swap_gates(cell.W_h.numpy()),
                self._swap_gates(np.stack([cell.b_x.numpy(), cell.b_h.numpy()]))]

    def set_weights(self, weights: Sequence[Any]) -> None:
        if len(weights) != 3:
            raise ValueError(f"layer {self.name!r} (GRU) has 3 weights in Keras' layout "
                             f"(kernel, recurrent_kernel, bias), got {len(weights)} arrays")
        kernel, recurrent, bias = (self._swap_gates(np.asarray(w)) for w in weights)
        if bias.shape != (2, 3 * self.units):
            raise ValueError(f"GRU bias must have Keras' shape (2, {3 * self.units}) "
                             f"(reset_after=True), got {bias.shape}")
        self.core.cell.load_state_dict({"W_x": kernel, "W_h": recurrent, "b_x": bias[0],
                                        "b_h": bias[1]})


class SimpleRNN(_Recurrent):
    """The simple (Elman) recurrent layer h' = tanh(x W_x + h W_h + b). Wraps ``nn.RNN``
    (``self.rnn``). ``return_state``: ``[output, h]``."""

    core_class, core_name, n_states = nn.RNN, "rnn", 1

    def __init__(self, units: int, activation: str = "tanh", use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", bias_initializer: Any = "zeros",
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, **kwargs: Any):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, dropout, recurrent_dropout, return_sequences,
                         return_state, go_backwards, stateful, **kwargs)
