"""LoRA: low-rank adapters, the fine-tuning method that trains a few parameters per layer.

A pretrained ``Linear`` (y = x W + b) is frozen and a low-rank correction is trained beside it:

    y = x W + b + (α / r) · dropout(x) A B        A (in, r) small random, B (r, out) zeros

so training starts exactly from the pretrained function (B = 0) and learns r·(in + out)
numbers instead of in·out. For inference the correction folds into the weight,
W ← W + (α / r) A B, and the layer is an ordinary Linear again (Hu et al., 2021).
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional

from minidl import functions as F
from minidl.autograd import Tensor, no_grad
from minidl.nn import init
from minidl.nn.layers import Linear
from minidl.nn.module import Module, Parameter


class LoRALinear(Module):
    """A frozen ``Linear`` plus a trainable low-rank update (α / r)·A B.

    Shape: x (..., in_features) -> (..., out_features), as the wrapped layer.
    Parameters: ``base.W``, ``base.b`` (frozen), ``A`` (in_features, r) ~ U(±1/√in) as
    PyTorch's Kaiming default for A in the LoRA reference code, ``B`` (r, out_features) zeros.
    """

    def __init__(self, base: Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be ≥ 1, got {r}")
        self.base = base
        base.requires_grad_(False)
        self.r, self.alpha, self.dropout = r, alpha, dropout
        self.scaling = alpha / r
        W = base.W
        bound = 1.0 / math.sqrt(base.in_features)
        self.A = Parameter(init.uniform((base.in_features, r), -bound, bound, W.dtype, W.device))
        self.B = Parameter(init.zeros((r, base.out_features), W.dtype, W.device))
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: Tensor) -> Tensor:
        # BEGIN EXERCISE lora_forward
        y = self.base(x)
        if self.merged:
            return y
        h = F.dropout(x, self.dropout, self.training) if self.dropout else x
        return y + ((h @ self.A) * self.scaling) @ self.B       # scale the small (…, r) product
        # END EXERCISE

    def merge(self) -> Linear:
        """Fold (α / r)·A B into W (in place) and return the wrapped Linear, which now computes
        the same function on its own."""
        with no_grad():
            if not self.merged:
                self.base.W.data += (self.A.data @ self.B.data) * self.scaling
                self.merged = True
        return self.base

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, r={self.r}, alpha={self.alpha}"


def _replace(parent: Module, name: str, new: Module) -> None:
    """Swap a sub-module in place, keeping its position (parameter order, Sequential order)."""
    parent._modules[name] = new
    object.__setattr__(parent, name, new)


def apply_lora(model: Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               targets: Optional[Iterable[str]] = None) -> List[str]:
    """Freeze ``model`` and wrap its ``Linear`` layers whose path ends with one of ``targets``
    (e.g. ``('qkv', 'proj', 'fc')``; None = every Linear) in ``LoRALinear``.

    Returns the wrapped paths. Afterwards only the adapters (and whatever the caller unfreezes,
    such as a new classification head) train.
    """
    model.requires_grad_(False)
    targets = None if targets is None else tuple(targets)
    wrapped = []
    for path, module in list(model.named_modules()):
        for name, child in list(module._modules.items()):
            full = f"{path}.{name}" if path else name
            if isinstance(child, Linear) and not isinstance(module, LoRALinear) and (
                    targets is None or full.split(".")[-1] in targets
                    or any(full.endswith(t) for t in targets)):
                _replace(module, name, LoRALinear(child, r, alpha, dropout))
                wrapped.append(full)
    return wrapped


def merge_lora(model: Module) -> int:
    """Replace every ``LoRALinear`` by its merged ``Linear``; returns how many were merged."""
    count = 0
    for path, module in list(model.named_modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, LoRALinear):
                _replace(module, name, child.merge())
                count += 1
    return count


def lora_state_dict(model: Module) -> Dict[str, object]:
    """Only the adapters' parameters (``...A``, ``...B``): the small file to save after
    fine-tuning, loaded into a model that ``apply_lora`` has wrapped the same way."""
    return {name: p.data for name, p in model.named_parameters()
            if name.endswith((".A", ".B")) or name in ("A", "B")}
