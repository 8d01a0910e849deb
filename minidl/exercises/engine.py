"""minidl's backward pass as one function: the reference of the ``engine_backward`` exercise.

``minidl.autograd._run_backward`` walks the graph for ``Tensor.backward()``; it also handles
``create_graph`` (a differentiable backward pass), which is beyond the exercise. This module
writes the first-order pass on its own, as one reads it in micrograd or DeZero, but with the
two things they leave out: a topological order found without recursion (graphs are thousands
of steps deep), and Functions with several outputs. A test shows it gives exactly the gradients
of ``Tensor.backward()``; while grading, the student's version replaces minidl's own.
"""
from __future__ import annotations

from typing import Any

from minidl import backend
from minidl.autograd import Function, Tensor, _accumulate


def accumulate(leaf: Tensor, grad: Any) -> None:
    """Add the array ``grad`` to ``leaf.grad`` (creating it on first use), as minidl does."""
    _accumulate(leaf, grad)


def output_zeros(f: Function, index: int) -> Any:
    """Zeros shaped like output ``index`` of the multi-output Function ``f``: the gradient of an
    output that nothing used."""
    shape, dtype = f._output_meta[index]
    return backend.get_array_module(f.inputs[0].data).zeros(shape, dtype)


def backward_pass(root: Tensor, grad: Any) -> None:
    """Backpropagate ``grad`` from ``root`` to every leaf of its graph that requires grad.

    Shape: ``grad`` is an array of root's shape (1 for a loss); each leaf's gradient has the
    leaf's shape and is added to ``leaf.grad`` with ``accumulate``.
    The graph: a tensor ``t`` made by a Function has ``t.creator`` (that Function) and
    ``t.index`` (which of its outputs it is); ``f.inputs`` are the tensors ``f`` was called with,
    ``f.n_outputs`` how many outputs it has, and ``f.backward(*output_grads)`` returns the
    gradients of its inputs (one, or a tuple with one per input; None where an input needs
    none). A tensor whose ``creator`` is None is a leaf.
    Order: a Function's backward may run only once the gradients of all of its outputs are
    complete, i.e. after every Function that used them (a topological order from the root).
    A tensor used several times gets the sum of the gradients from each use. An output of a
    multi-output Function that received no gradient gets ``output_zeros``. Graphs may be
    thousands of Functions deep, so the walk must not recurse.
    """
    # BEGIN EXERCISE engine_backward
    if root.creator is None:  # backward() on a leaf: its gradient is grad itself
        accumulate(root, grad)
        return
    # 1. For each Function, count how many inputs of other Functions its outputs feed.
    consumers = {root.creator: 0}
    stack = [root.creator]
    while stack:
        for x in stack.pop().inputs:
            producer = x.creator
            if producer is None:
                continue
            if producer in consumers:
                consumers[producer] += 1
            else:
                consumers[producer] = 1
                stack.append(producer)
    # 2. Run each Function once all its consumers have sent their gradients (Kahn's algorithm).
    pending = {root.creator: [None] * root.creator.n_outputs}
    pending[root.creator][root.index] = grad
    ready = [root.creator]
    while ready:
        f = ready.pop()
        output_grads = pending.pop(f)
        if f.n_outputs > 1:
            output_grads = [output_zeros(f, k) if g is None else g
                            for k, g in enumerate(output_grads)]
        input_grads = f.backward(*output_grads)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for x, g in zip(f.inputs, input_grads):
            if not x.requires_grad:
                continue
            producer = x.creator
            if producer is None:  # a leaf: gradients accumulate in .grad
                if g is not None:
                    accumulate(x, g)
                continue
            slots = pending.setdefault(producer, [None] * producer.n_outputs)
            if g is not None:  # a tensor used twice: the gradients of both uses add up
                slots[x.index] = g if slots[x.index] is None else slots[x.index] + g
            consumers[producer] -= 1
            if consumers[producer] == 0:
                ready.append(producer)
    # END EXERCISE
