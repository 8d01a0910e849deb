"""Keras' normalisation layers.

    BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3)  → F.batch_norm
        weights gamma, beta (trainable), moving_mean, moving_variance (not trainable), in
        Keras' order; batch statistics while training, the moving ones at inference.
    LayerNormalization(axis=-1, epsilon=1e-3)                 → F.layer_norm
        weights gamma, beta; each sample normalised over its last axis.

Keras' momentum m is the weight of the old moving average (PyTorch's momentum is 1 − m). The
moving variance is updated with the batch's biased variance (Keras 3; Keras 2's fused kernel
uses the unbiased one, a difference of n/(n − 1)).
"""
from __future__ import annotations

from typing import Any

from minidl import backend, nn
from minidl import functions as F
from minidl.autograd import Tensor
from minidl.functions.batch_norm import batch_norm
from minidl.keras.layers.layer import Layer, Shape, initialise


def _check_axis(layer: str, axis: Any) -> None:
    if axis not in (-1, [-1], (-1,)):
        raise NotImplementedError(f"{layer}: minidl.keras normalises the last axis only "
                                  f"(axis=-1), got axis={axis!r}")


class BatchNormalization(Layer):
    """Normalise each feature (last axis) with batch statistics while training and moving
    averages at inference, then scale by gamma and shift by beta. Shape: unchanged."""

    supports_masking = True

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", **kwargs: Any):
        super().__init__(**kwargs)
        _check_axis("BatchNormalization", axis)
        self.momentum, self.epsilon, self.center, self.scale = momentum, epsilon, center, scale
        self.initializers = {"gamma": gamma_initializer, "beta": beta_initializer,
                             "moving_mean": moving_mean_initializer,
                             "moving_variance": moving_variance_initializer}

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1]
        device = backend.check_device(self._build_device)
        defaults = {"gamma": "ones", "beta": "zeros", "moving_mean": "zeros",
                    "moving_variance": "ones"}
        for name, default in defaults.items():
            if (name == "gamma" and not self.scale) or (name == "beta" and not self.center):
                continue
            trainable = name in ("gamma", "beta")
            make = nn.init.ones if default == "ones" else nn.init.zeros
            param = nn.Parameter(make((features,), device=device), requires_grad=trainable)
            initialise(param, self.initializers[name], default)
            setattr(self, name, param)
        self._last_dim = features

    def trainable_parameters(self):
        return [self._parameters[name] for name in ("gamma", "beta") if name in self._parameters]

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return batch_norm(x, self.moving_mean.data, self.moving_variance.data,
                          self._parameters.get("gamma"), self._parameters.get("beta"),
                          training=self.training, momentum=1.0 - self.momentum,
                          eps=self.epsilon)


class LayerNormalization(Layer):
    """Normalise each sample over its last axis, then scale by gamma and shift by beta
    (``F.layer_norm``). Shape: unchanged."""

    supports_masking = True

    def __init__(self, axis: int = -1, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", **kwargs: Any):
        super().__init__(**kwargs)
        _check_axis("LayerNormalization", axis)
        self.epsilon, self.center, self.scale = epsilon, center, scale
        self.gamma_initializer, self.beta_initializer = gamma_initializer, beta_initializer

    def build(self, input_shape: Shape) -> None:
        features = input_shape[-1]
        device = backend.check_device(self._build_device)
        if self.scale:
            self.gamma = nn.Parameter(nn.init.ones((features,), device=device))
            initialise(self.gamma, self.gamma_initializer, "ones")
        if self.center:
            self.beta = nn.Parameter(nn.init.zeros((features,), device=device))
            initialise(self.beta, self.beta_initializer, "zeros")
        self._last_dim = features

    def call(self, x: Tensor, mask: Any = None) -> Tensor:
        return F.layer_norm(x, (x.shape[-1],), self._parameters.get("gamma"),
                            self._parameters.get("beta"), eps=self.epsilon)
