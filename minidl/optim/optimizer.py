"""The ``Optimizer`` base class: parameter groups, ``zero_grad``, and a state dict for resuming."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List

from minidl import backend
from minidl.autograd import Tensor


class Optimizer:
    """Updates parameters from their ``.grad``.

    ``params`` is an iterable of parameters, or of dicts ``{'params': [...], 'lr': ...}`` to give
    groups their own hyper-parameters (e.g. a smaller learning rate for a pretrained encoder).
    Subclasses implement ``update(p, grad, state, group)`` for one parameter; ``state`` is a dict
    of arrays kept between steps (momentum buffers, ...).
    """

    defaults: Dict[str, Any] = {}

    def __init__(self, params: Iterable[Any], **defaults: Any):
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: List[Dict[str, Any]] = []
        seen = set()
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{type(self).__name__} takes Tensors/Parameters, got "
                                    f"{type(p).__name__}")
                if id(p) in seen:
                    raise ValueError("a parameter appears in more than one group")
                seen.add(id(p))
            self.param_groups.append(group)
        self.state: Dict[int, Dict[str, Any]] = {}  # id(param) -> its state
        self.steps = 0

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (``p.grad = None``)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        self.steps += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or not p.requires_grad:
                    continue
                if p.grad.data.shape != p.data.shape:
                    raise ValueError(f"gradient shape {p.grad.shape} does not match parameter "
                                     f"shape {p.shape}")
                state = self.state.setdefault(id(p), {})
                self.update(p, p.grad.data, state, group)

    def update(self, p: Tensor, grad: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        raise NotImplementedError

    # -- resuming
    def state_dict(self) -> Dict[str, Any]:
        """Hyper-parameters and per-parameter state as host arrays, keyed by parameter position."""
        params = [p for g in self.param_groups for p in g["params"]]
        state = {str(i): {k: backend.to_numpy(v) if hasattr(v, "shape") else v
                          for k, v in self.state[id(p)].items()}
                 for i, p in enumerate(params) if id(p) in self.state}
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"state": state, "param_groups": groups, "steps": self.steps}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (same parameters, same order)."""
        params = [p for g in self.param_groups for p in g["params"]]
        if len(state_dict["param_groups"]) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(state_dict['param_groups'])} parameter "
                             f"groups, this optimizer {len(self.param_groups)}")
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update({k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()})
        self.state = {}
        for key, values in state_dict["state"].items():
            p = params[int(key)]
            restored = {}
            for name, value in values.items():
                if hasattr(value, "shape") and value.shape != ():
                    if name != "step" and value.shape != p.shape:
                        raise ValueError(f"optimizer state {name!r} of parameter {key} has "
                                         f"shape {value.shape}, the parameter {p.shape}")
                    value = backend.to_device(backend.to_numpy(value), p.device).copy()
                elif hasattr(value, "shape"):
                    value = value.item()
                restored[name] = value
            self.state[id(p)] = restored
        self.steps = int(state_dict.get("steps", 0))
