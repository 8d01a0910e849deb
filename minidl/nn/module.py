"""``Module`` and ``Parameter``: layers that own their weights.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, in definition order, so
``named_parameters()`` is deterministic: ``lstm.W_x``, ``lstm.W_h``, ``lstm.b``, ...

dtype policy (PyTorch's): a layer computes in the dtype of its parameters (float32 unless made
with ``dtype=`` or cast with ``.astype``) and never casts its input silently. Calling a layer
checks its input (``Module.check_input_dtype``, once, in ``__call__`` for every layer that owns
parameters, and in the forward of the recurrent layers): floating input of another dtype, or
integer input to a layer of real numbers (Linear, LSTM, LayerNorm ...), is a ``DTypeError``
(a TypeError) that says how to cast. Layers whose input is token ids (``Embedding``) take
integer ids as lists, arrays or Tensors instead, and whole-number floats (checked exactly,
``functions.indices``). The Keras facade (``minidl.keras``) casts as Keras does.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from minidl import backend
from minidl.autograd import Tensor, no_grad


class Parameter(Tensor):
    """A tensor that is a learnable weight of a Module (``requires_grad=True`` by default)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, name: Optional[str] = None):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad, name=name)

    def __repr__(self) -> str:
        return "Parameter(" + super().__repr__()[len("tensor("):]


class DTypeError(TypeError):
    """An input whose dtype does not fit the layer (see the dtype policy above)."""


class StateDictError(KeyError):
    """A state dict whose keys or shapes do not match the module."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Module:
    """Base class of layers and models. Subclasses set parameters and sub-modules as attributes
    in ``__init__`` and define ``forward``; calling the module checks the input's dtype
    (``check_input_dtype``) and calls ``forward``."""

    takes_ids = False  # True for layers whose input is token ids, not real numbers

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        if args and self._parameters and not self.takes_ids:
            self.check_input_dtype(args[0])
        return self.forward(*args, **kwargs)

    def check_input_dtype(self, x: Any) -> None:
        """Raise ``DTypeError`` unless ``x`` (a Tensor or array) has the floating dtype of this
        module's parameters; inputs without a dtype (lists, numbers) are left to ``forward``."""
        dtype = getattr(x, "dtype", None)
        if dtype is None:
            return
        own = [p for p in self._parameters.values() if p.dtype.kind == "f"]
        expected = own[0].dtype if own else next(
            (p.dtype for p in self.parameters() if p.dtype.kind == "f"), None)
        if expected is None or dtype == expected:
            return
        name = type(self).__name__
        if dtype.kind != "f":
            raise DTypeError(f"{name}: the input has dtype {dtype}, but this layer computes in "
                             f"{expected} (the dtype of its parameters). minidl's nn does not "
                             f"cast silently (as PyTorch): pass md.tensor(x, dtype="
                             f"'{expected}'); integer token ids go through an nn.Embedding "
                             f"first")
        raise DTypeError(f"{name}: the input has dtype {dtype}, but the layer's parameters are "
                         f"{expected}. minidl's nn does not cast silently (as PyTorch): cast "
                         f"the input with md.tensor(x, dtype='{expected}'), or the layer with "
                         f".astype('{dtype}') (minidl.keras layers cast for you, as Keras does)")

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    # -- walking the tree
    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in definition order — parameters and sub-modules
        interleaved as they were assigned — each parameter once."""
        seen: set = set()

        def walk(module: "Module", path: str):
            for name in module.__dict__:  # attribute-assignment order
                full = f"{path}.{name}" if path else name
                if name in module._parameters:
                    p = module._parameters[name]
                    if id(p) not in seen:
                        seen.add(id(p))
                        yield full, p
                elif name in module._modules:
                    yield from walk(module._modules[name], full)
        return walk(self, prefix)

    def parameters(self) -> List[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- modes and devices
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active). Returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (dropout off). Returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze (True) every parameter. Returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, device: str) -> "Module":
        """Move every parameter to ``device`` in place (the Parameter objects stay the same, so an
        optimizer built before the move still holds them). Returns self."""
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            if p.grad is not None:
                p.grad = p.grad.to(device)
        return self

    @property
    def device(self) -> str:
        params = self.parameters()
        return params[0].device if params else backend.default_device()

    def astype(self, dtype: Any) -> "Module":
        """Cast every parameter to ``dtype`` in place (e.g. float64 for gradient checks)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
        return self

    # -- saving
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter name -> host NumPy copy of its values."""
        return OrderedDict((name, p.numpy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: Dict[str, Any], strict: bool = True) -> None:
        """Copy values into the parameters (onto their current device, in their dtype).

        ``state`` maps parameter names to arrays (NumPy, CuPy) or Tensors, as ``state_dict()``
        and ``md.load`` give them. Raises ``StateDictError`` naming missing or unexpected keys
        (when ``strict``), and any key whose value is not an array of numbers of the
        parameter's shape; nothing is copied unless every value fits.
        """
        if not isinstance(state, dict):
            raise StateDictError(f"load_state_dict expects a dict of parameter name -> array "
                                 f"(from state_dict() or md.load), got {type(state).__name__}")
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if strict and (missing or unexpected):
            raise StateDictError(f"load_state_dict: missing keys {missing}, unexpected keys "
                                 f"{unexpected} (model has {list(params)})")
        values = {}
        for name, p in params.items():
            if name not in state:
                continue
            value = state[name]
            value = value.data if isinstance(value, Tensor) else value
            if not (hasattr(value, "shape") and hasattr(value, "dtype")):
                raise StateDictError(f"load_state_dict: {name!r} must be an array (NumPy "
                                     f"array or Tensor) of shape {p.shape}, got "
                                     f"{type(value).__name__}")
            if value.dtype.kind not in "biuf":
                raise StateDictError(f"load_state_dict: {name!r} must hold numbers, got an "
                                     f"array of dtype {value.dtype}")
            if tuple(value.shape) != p.shape:
                raise StateDictError(f"load_state_dict: {name!r} has shape {tuple(value.shape)} "
                                     f"in the state dict but {p.shape} in the model")
            values[name] = value
        with no_grad():
            for name, value in values.items():
                p = params[name]
                p.data = backend.to_device(backend.to_numpy(value), p.device).astype(
                    p.dtype, copy=True)

    # -- showing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"

    def summary(self, *example_inputs: Any, print_fn=print) -> str:
        """A table of sub-modules with output shapes (when example inputs are given) and
        parameter counts. Returns the table and prints it with ``print_fn`` (None: no print)."""
        shapes: Dict[int, str] = {}
        if example_inputs:
            originals = {}
            for _, m in self.named_modules():
                if m is self:
                    continue
                originals[m] = m.forward

                def traced(*a, _m=m, _f=m.forward, **k):
                    out = _f(*a, **k)
                    first = out[0] if isinstance(out, tuple) else out
                    shapes[id(_m)] = str(tuple(getattr(first, "shape", ())))
                    return out
                object.__setattr__(m, "forward", traced)
            try:
                with no_grad():
                    self(*example_inputs)
            finally:
                for m in originals:
                    object.__delattr__(m, "forward")
        rows = [("Layer (type)", "Output shape", "Param #")]
        for name, m in self.named_modules():
            if m is self:
                continue
            own = sum(p.size for p in m._parameters.values())
            rows.append((f"{name} ({type(m).__name__})", shapes.get(id(m), "-"), f"{own:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        line = "-" * (sum(widths) + 6)
        out = [line] + [f"{r[0]:<{widths[0]}}   {r[1]:<{widths[1]}}   {r[2]:>{widths[2]}}"
                        for r in rows]
        out.insert(2, line)
        total, trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        out += [line, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable:,}", line]
        table = "\n".join(out)
        if print_fn is not None:
            print_fn(table)
        return table
