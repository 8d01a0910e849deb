"""Layers: Linear (σ(Wx+b) without the σ), activations, Sequential, Dropout, Embedding, Flatten.

dtypes (the policy of ``nn.module``, PyTorch's): a layer computes in its parameters' dtype and
raises ``DTypeError`` for an input of another dtype, saying how to cast — ``Linear`` given
float64 or integer data; ``Embedding`` takes integer ids (lists, arrays, Tensors, or floats
that are exact whole numbers).
"""
from __future__ import annotations

from typing import Any, Optional

from minidl import backend
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.nn import init
from minidl.nn.module import Module, Parameter


class Linear(Module):
    """y = x @ W + b — the affine half of the σ(Wx+b) layer, for row-vector batches.

    Shape: x (..., in_features) -> y (..., out_features).
    Parameters: W (in_features, out_features), glorot-uniform; b (out_features,), zeros
    (Keras' Dense defaults).
    dtype: x must have W's dtype (float32 by default); another dtype is a ``DTypeError``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: Any = "float32", device: Optional[str] = None):
        super().__init__()
        device = backend.check_device(device)
        self.in_features, self.out_features = in_features, out_features
        self.W = Parameter(init.glorot_uniform((in_features, out_features), dtype=dtype,
                                               device=device))
        self.b = Parameter(init.zeros((out_features,), dtype, device)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        # BEGIN EXERCISE linear_forward
        return F.linear(x, self.W, self.b)
        # END EXERCISE

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.b is not None}"


class Sigmoid(Module):
    """σ(x) = 1/(1 + e⁻ˣ) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class Softmax(Module):
    """softmax along ``axis`` (default: the last)."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.axis)


class Sequential(Module):
    """Modules applied one after another: ``Sequential(Linear(2, 8), Sigmoid(), Linear(8, 1))``."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            self.append(layer)

    def append(self, layer: Module) -> "Sequential":
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential takes Modules, got {type(layer).__name__}")
        setattr(self, str(len(self._modules)), layer)
        return self

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x: Any) -> Any:
        for layer in self._modules.values():
            x = layer(x)
        return x


class Dropout(Module):
    """Inverted dropout with probability ``p`` in training mode; the identity in eval mode."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Embedding(Module):
    """A lookup table: token id -> vector.

    Shape: ids (...) integers in [0, num_embeddings) -> (..., embedding_dim).
    ids: a list, a NumPy/CuPy array or a Tensor of integers; floats are accepted only when
    every one is a whole number (checked before any cast), anything else is a TypeError.
    Parameter: W (num_embeddings, embedding_dim), U(−0.05, 0.05) as Keras (the ``padding_idx``
    row starts at zero and gets no gradient). Out-of-range or negative ids raise IndexError.
    """

    takes_ids = True

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: Optional[int] = None, dtype: Any = "float32",
                 device: Optional[str] = None):
        super().__init__()
        if padding_idx is not None and not 0 <= padding_idx < num_embeddings:
            raise ValueError(f"padding_idx {padding_idx} must be in [0, {num_embeddings})")
        device = backend.check_device(device)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        W = init.uniform((num_embeddings, embedding_dim), -0.05, 0.05, dtype, device)
        if padding_idx is not None:
            W[padding_idx] = 0
        self.W = Parameter(W)

    def forward(self, ids: Any) -> Tensor:
        return F.embedding(ids, self.W, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Flatten(Module):
    """(batch, ...) -> (batch, product of the rest)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)
