"""Keras' layer wrappers.

    Bidirectional(layer, merge_mode='concat')   a recurrent layer run forwards and a copy of it
        run backwards (``go_backwards=True``); outputs merged by 'concat', 'sum', 'mul', 'ave'
        or None (a list of both). Weights: the forward layer's, then the backward layer's.
    TimeDistributed(layer)   the same layer on every time step:
        (batch, steps, ...) -> (batch, steps, ...layer's output)

With ``return_sequences``, the backward layer's outputs are turned back into forward time order
before merging, as Keras does; with a padding mask both directions skip the padded steps.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from minidl import functions as F
from minidl.autograd import Tensor
from minidl.keras.layers.layer import Layer, Shape, serialize_value

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Wrapper(Layer):
    """A layer around another (``self.layer``), whose weights it shares."""

    def __init__(self, layer: Layer, **kwargs: Any):
        if not isinstance(layer, Layer):
            raise TypeError(f"{type(self).__name__} wraps a minidl.keras layer, got "
                            f"{type(layer).__name__}")
        super().__init__(**kwargs)
        self.layer = layer

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Wrapper":
        from minidl.keras.layers import deserialize
        config = dict(config)
        for key in ("layer", "backward_layer"):
            if isinstance(config.get(key), dict):
                config[key] = deserialize(config[key])
        return cls(**config)


class Bidirectional(Wrapper):
    """Run a recurrent layer in both directions and merge the outputs (see module docstring).
    Shape: (batch, steps, features) -> (batch, 2·units) for 'concat', (batch, units) for the
    others (with the steps axis when ``return_sequences``)."""

    supports_masking = True
    input_ndim = 3

    def __init__(self, layer: Layer, merge_mode: Optional[str] = "concat",
                 weights: Any = None, backward_layer: Optional[Layer] = None, **kwargs: Any):
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should "
                             f"be one of {{'sum', 'mul', 'ave', 'concat', None}}")
        if weights is not None:
            raise NotImplementedError("Bidirectional: pass weights with set_weights instead")
        if not hasattr(layer, "go_backwards"):
            raise ValueError(f"Bidirectional wraps a recurrent layer (LSTM, GRU, SimpleRNN), "
                             f"got {type(layer).__name__}")
        super().__init__(layer, **kwargs)
        if backward_layer is None:
            config = layer.get_config()
            config.update(go_backwards=not layer.go_backwards, name="backward_" + layer.name)
            backward_layer = type(layer).from_config(config)
        elif backward_layer.go_backwards == layer.go_backwards:
            raise ValueError("Forward layer and backward layer should have different "
                             "`go_backwards` values")
        self.forward_layer, self.backward_layer = layer, backward_layer
        del self.layer  # registered once, as forward_layer
        object.__setattr__(self, "layer", layer)
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state

    def build(self, input_shape: Shape) -> None:
        self.forward_layer.build_for(input_shape)
        self.backward_layer.build_for(input_shape)

    def _merge(self, forward: Tensor, backward: Tensor) -> Any:
        if self.merge_mode == "concat":
            return F.concat([forward, backward], axis=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        if self.merge_mode == "ave":
            return (forward + backward) * 0.5
        return [forward, backward]

    def call(self, x: Tensor, mask: Any = None) -> Any:
        forward = self.forward_layer.call(x, mask=mask)
        backward = self.backward_layer.call(x, mask=mask)
        states: List[Tensor] = []
        if self.return_state:
            states = forward[1:] + backward[1:]
            forward, backward = forward[0], backward[0]
        if self.return_sequences:
            backward = backward[:, ::-1]
        output = self._merge(forward, backward)
        if not self.return_state:
            return output
        return (output if isinstance(output, list) else [output]) + states

    def compute_output_shape(self, input_shape: Shape) -> Any:
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], shape[1:]
        if self.merge_mode == "concat":
            merged: Any = tuple(shape[:-1]) + (shape[-1] * 2,)
        elif self.merge_mode is None:
            merged = [tuple(shape), tuple(shape)]
        else:
            merged = tuple(shape)
        if not self.return_state:
            return merged
        return (merged if isinstance(merged, list) else [merged]) + states + states

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask if self.return_sequences else None

    def get_weights(self) -> List[Any]:
        """The forward layer's weights, then the backward layer's (each in Keras' layout)."""
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights: Any) -> None:
        weights = list(weights)
        count = len(self.forward_layer.get_weights())
        if len(weights) != 2 * count:
            raise ValueError(f"layer {self.name!r} has {2 * count} weights, got "
                             f"{len(weights)} arrays")
        self.forward_layer.set_weights(weights[:count])
        self.backward_layer.set_weights(weights[count:])

    def get_config(self):
        config = super().get_config()
        config["backward_layer"] = serialize_value(self.backward_layer)
        return config

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode!r}, name={self.name!r}"


class TimeDistributed(Wrapper):
    """Apply ``layer`` to every time step: the steps are folded into the batch, the layer runs
    once, and the result is unfolded. Shape: (batch, steps, ...) -> (batch, steps, ...out)."""

    supports_masking = True
    min_ndim = 3

    def build(self, input_shape: Shape) -> None:
        self.layer.build_for((None,) + tuple(input_shape[2:]))

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        batch, steps = x.shape[:2]
        y = self.layer.call(x.reshape((batch * steps,) + tuple(x.shape[2:])))
        return y.reshape((batch, steps) + tuple(y.shape[1:]))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def get_weights(self):
        return self.layer.get_weights()

    def set_weights(self, weights):
        self.layer.set_weights(weights)
