"""Keras' merge layers: several inputs of the functional API in, one out.

    Concatenate(axis=-1)   join along ``axis``
    Add(), Subtract(), Multiply(), Average(), Maximum(), Minimum()   elementwise
    concatenate([a, b]), add([a, b]), ...   the same as functions, as Keras has them

Called on a list: ``Concatenate()([lstm_out, pooled])``. Elementwise merges need equal
shapes. A padding mask passes through when the inputs carry one (the AND of their masks).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from minidl import functions as F
from minidl.autograd import Tensor
from minidl.keras.layers.layer import Layer, Node, Shape, to_input_tensor, training_mode


class _Merge(Layer):
    """Base of the merge layers: ``merge(tensors)`` combines a list of Tensors."""

    takes_list = True
    supports_masking = True

    def merge(self, tensors: List[Tensor]) -> Tensor:
        raise NotImplementedError

    def _check_shapes(self, shapes: Sequence[Shape]) -> None:
        if len(shapes) < 2:
            raise ValueError(f"A merge layer ({self.name!r}) should be called on a list of at "
                             f"least 2 inputs. Got {len(shapes)} inputs.")
        first = shapes[0]
        for shape in shapes[1:]:
            if len(shape) != len(first) or any(a is not None and b is not None and a != b
                                               for a, b in zip(first[1:], shape[1:])):
                raise ValueError(f"Inputs of {type(self).__name__} layer {self.name!r} must "
                                 f"have the same shape; got {list(shapes)}")

    def call_symbolic(self, inputs: Any) -> Any:
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"{type(self).__name__} is called on a list of tensors, e.g. "
                            f"{type(self).__name__}()([a, b])")
        shapes = [t.shape for t in inputs]
        self._check_shapes(shapes)
        self.built = True
        self._shapes = (shapes, self.compute_output_shape(shapes))
        return Node(self, list(inputs), self.compute_output_shape(shapes)).returned()

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        return tuple(input_shape[0])

    def forward(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> Tensor:
        tensors = [to_input_tensor(x) for x in inputs]
        self._check_shapes([(None,) + tuple(t.shape[1:]) for t in tensors])
        with training_mode(self, training):
            return self.merge(tensors)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        masks = [m for m in (mask or []) if m is not None]
        if not masks:
            return None
        combined = masks[0] != 0
        for m in masks[1:]:
            combined = combined & (m != 0)
        return combined


class Concatenate(_Merge):
    """Join the inputs along ``axis`` (every other axis must agree)."""

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = axis

    def _check_shapes(self, shapes: Sequence[Shape]) -> None:
        if len(shapes) < 2:
            raise ValueError(f"A `Concatenate` layer should be called on a list of at least 2 "
                             f"inputs. Received {len(shapes)} input(s).")
        rank = len(shapes[0])
        axis = self.axis % rank
        for shape in shapes:
            if len(shape) != rank or any(a is not None and b is not None and a != b
                                         for i, (a, b) in enumerate(zip(shapes[0], shape))
                                         if i not in (0, axis)):
                raise ValueError(f"A `Concatenate` layer requires inputs with matching shapes "
                                 f"except for the concatenation axis. Received: input_shape="
                                 f"{list(shapes)}")

    def merge(self, tensors: List[Tensor]) -> Tensor:
        return F.concat(tensors, axis=self.axis)

    def compute_output_shape(self, input_shape: Sequence[Shape]) -> Shape:
        axis = self.axis % len(input_shape[0])
        sizes = [shape[axis] for shape in input_shape]
        total = None if any(n is None for n in sizes) else sum(sizes)
        shape = list(input_shape[0])
        shape[axis] = total
        return tuple(shape)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if self.axis % len(inputs[0].shape) != len(inputs[0].shape) - 1:
            return None  # joining along time: the masks would have to be joined too
        return super().compute_mask(inputs, mask)


class Add(_Merge):
    """The elementwise sum of the inputs."""

    def merge(self, tensors):
        total = tensors[0]
        for t in tensors[1:]:
            total = total + t
        return total


class Subtract(_Merge):
    """a − b, for exactly two inputs."""

    def merge(self, tensors):
        if len(tensors) != 2:
            raise ValueError("A `Subtract` layer should be called on exactly 2 inputs")
        return tensors[0] - tensors[1]


class Multiply(_Merge):
    """The elementwise product of the inputs."""

    def merge(self, tensors):
        product = tensors[0]
        for t in tensors[1:]:
            product = product * t
        return product


class Average(Add):
    """The elementwise mean of the inputs."""

    def merge(self, tensors):
        return super().merge(tensors) * (1.0 / len(tensors))


class Maximum(_Merge):
    """The elementwise maximum of the inputs."""

    def merge(self, tensors):
        result = tensors[0]
        for t in tensors[1:]:
            result = F.maximum(result, t)
        return result


class Minimum(_Merge):
    """The elementwise minimum of the inputs."""

    def merge(self, tensors):
        result = tensors[0]
        for t in tensors[1:]:
            result = F.minimum(result, t)
        return result


def _functional(layer_class: type):
    def merge(inputs: Sequence[Any], **kwargs: Any) -> Any:
        return layer_class(**kwargs)(list(inputs))
    merge.__name__ = layer_class.__name__.lower()
    merge.__doc__ = f"``{layer_class.__name__}(**kwargs)(inputs)``."
    return merge


concatenate, add, subtract, multiply, average, maximum, minimum = (
    _functional(c) for c in (Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum))
