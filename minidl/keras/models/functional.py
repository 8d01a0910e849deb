"""The graph of a functional model: the layer calls between ``Input(...)`` and the outputs, in
an order where each call comes after the calls that made its inputs; ``run`` replays them on
data, passing masks along (an ``Embedding(mask_zero=True)`` masks the LSTM after it).

One input, as in the text models this facade serves; the graph may branch and join again
(``Concatenate``, ``Add``, ...) and may have several outputs.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from minidl.autograd import Tensor
from minidl.keras.layers.layer import InputLayer, KerasTensor, Layer, Node, Shape


def _as_list(x: Any) -> List[Any]:
    return list(x) if isinstance(x, (list, tuple)) else [x]


class Graph:
    """``nodes``: the layer calls in execution order; ``layers``: each layer once, the
    InputLayer first (Keras' ``model.layers``)."""

    def __init__(self, inputs: Any, outputs: Any):
        inputs = _as_list(inputs)
        if len(inputs) != 1:
            raise NotImplementedError("minidl.keras models take one input; got "
                                      f"{len(inputs)}")
        self.input = inputs[0]
        if not isinstance(self.input, KerasTensor) or \
                not isinstance(self.input.node.layer, InputLayer):
            raise TypeError(f"Model inputs must come from Input(...), got {self.input!r}")
        self.several_outputs = isinstance(outputs, (list, tuple))
        self.outputs = _as_list(outputs)
        for output in self.outputs:
            if not isinstance(output, KerasTensor):
                raise TypeError(f"Model outputs must be the results of layers called on "
                                f"Input(...) (KerasTensors), got {type(output).__name__}")
        self.nodes = self._order()
        self.layers: List[Layer] = []
        for node in self.nodes:
            if node.layer not in self.layers:
                self.layers.append(node.layer)

    def _order(self) -> List[Node]:
        """Depth-first from the outputs: every node after the nodes it depends on."""
        order: List[Node] = []
        state: Dict[int, str] = {}

        def visit(node: Node) -> None:
            if state.get(id(node)) == "done":
                return
            if state.get(id(node)) == "visiting":
                raise ValueError("the layers form a cycle")
            state[id(node)] = "visiting"
            for tensor in node.inputs:
                visit(tensor.node)
            state[id(node)] = "done"
            order.append(node)

        for output in self.outputs:
            visit(output.node)
        if self.input.node not in order:
            raise ValueError("the outputs are not computed from the model's input: "
                             "Model(inputs, outputs) needs outputs made by layers called on "
                             "inputs")
        for node in order:
            if not node.inputs and node is not self.input.node:
                raise ValueError(f"the outputs depend on {node.layer.name!r}, an Input that is "
                                 f"not the model's input")
        return order

    @property
    def output_shape(self) -> Any:
        shapes = [t.shape for t in self.outputs]
        return shapes if self.several_outputs else shapes[0]

    def returned_outputs(self) -> Any:
        return list(self.outputs) if self.several_outputs else self.outputs[0]

    def check_shape(self, shape: Shape) -> None:
        declared = self.input.shape
        if len(shape) != len(declared) or any(
                d is not None and s is not None and d != s for d, s in zip(declared[1:],
                                                                           shape[1:])):
            raise ValueError(f'Input 0 of model is incompatible: expected shape={declared}, '
                             f'found shape={(None,) + tuple(shape[1:])}')

    def first_layers(self) -> List[Layer]:
        """The layers that read the model's input directly."""
        return [node.layer for node in self.nodes if self.input in node.inputs]

    def run(self, x: Tensor) -> Any:
        """The outputs for ``x``: each node's layer applied to the values (and masks) of its
        inputs."""
        values: Dict[int, Tuple[Any, Any]] = {id(self.input): (x, None)}
        for node in self.nodes:
            if node is self.input.node:
                continue
            arguments = [values[id(t)] for t in node.inputs]
            if len(arguments) == 1 and not node.layer.takes_list:
                value, mask = arguments[0]
            else:
                value = [v for v, _ in arguments]
                mask = [m for _, m in arguments]
                mask = None if all(m is None for m in mask) else mask
            result = node.layer(value, mask=mask)
            next_mask = node.layer.compute_mask(value, mask)
            results = result if node.several else [result]
            masks = next_mask if isinstance(next_mask, list) else [next_mask] * len(results)
            for tensor, out, m in zip(node.outputs, results, masks):
                values[id(tensor)] = (out, m)
        outputs = [values[id(t)][0] for t in self.outputs]
        return outputs if self.several_outputs else outputs[0]

    def summary_rows(self) -> List[Tuple[Layer, Any]]:
        rows = []
        for layer in self.layers:
            shapes = [n.returned() for n in self.nodes if n.layer is layer]
            shape = shapes[0]
            shown = [t.shape for t in shape] if isinstance(shape, list) else shape.shape
            rows.append((layer, shown))
        return rows
