"""LayerNorm: the normalisation of every Transformer block."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from minidl import backend
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.nn import init
from minidl.nn.module import Module, Parameter


class LayerNorm(Module):
    """y = (x − μ)/√(σ² + ε) ⊙ weight + bias over the last axes (``F.layer_norm``).

    Shape: x (..., *normalized_shape) -> the same.
    Parameters: weight (normalized_shape), ones; bias (normalized_shape), zeros — as PyTorch.
    """

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, dtype: Any = "float32",
                 device: Optional[str] = None):
        super().__init__()
        device = backend.check_device(device)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) \
            else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(init.ones(shape, dtype, device)) if elementwise_affine else None
        self.bias = Parameter(init.zeros(shape, dtype, device)) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
