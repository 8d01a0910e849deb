"""Keras' optimizers (``tensorflow.keras.optimizers``) with Keras' names and defaults, running
``minidl.optim`` underneath.

    Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
        → optim.Adam(lr, betas=(β₁, β₂), eps=ε, epsilon_hat=True): Keras adds ε to √v, outside
          the bias correction: θ ← θ − lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε)
    AdamW(learning_rate=0.001, weight_decay=0.004, ...) → optim.AdamW (decoupled decay, as Keras)
    SGD(learning_rate=0.01, momentum=0.0, nesterov=False) → optim.SGD: Keras' v ← μv − lr·g is
          PyTorch's u ← μu + g with v = −lr·u, the same steps for a constant learning rate
    RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7)
        → optim.RMSprop(alpha=ρ, eps_inside_sqrt=True): Keras divides by √(v + ε).
    Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7) → optim.Adagrad
    Adadelta(learning_rate=0.001, rho=0.95, epsilon=1e-7)                   → optim.Adadelta
    Adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)      → optim.Adamax
    Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7)       → optim.NAdam
    (Keras 2's rules, as in tf_keras ≥ 2.11; the names work as strings: compile('nadam')).

Keras 2 arguments: ``lr`` (the old name of ``learning_rate``) is accepted with a warning;
``decay`` is Keras 2's time-based decay, lr_t = lr / (1 + decay·t) at step t (from 0), accepted
with a warning because Keras ≥ 2.11 keeps it only in ``optimizers.legacy``.

A Keras optimizer is created before the model has weights (``compile`` comes before the lazy
build), so the ``minidl.optim`` optimizer is made on the first ``fit``; it keeps its state over
later ``fit`` calls. ``clipnorm`` (per weight), ``clipvalue`` and ``global_clipnorm`` clip the
gradients before each step.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Iterable, List, Optional

from minidl import optim

# Keras optimizer options minidl accepts only at their default values.
_KERAS_ONLY = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
               "loss_scale_factor": None, "gradient_accumulation_steps": None,
               "amsgrad": False, "centered": False, "weight_decay": None}


class Optimizer:
    """Base class: Keras-side settings plus the ``minidl.optim`` optimizer (``self.core``) they
    make. The training loop calls ``zero_grad()`` and ``step()``."""

    def __init__(self, learning_rate: float, name: str, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None,
                 lr: Optional[float] = None, decay: float = 0.0, **kwargs: Any):
        if lr is not None:
            warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.",
                          UserWarning, stacklevel=3)
            learning_rate = lr
        if decay:
            if decay < 0:
                raise ValueError(f"decay must be >= 0, got {decay}")
            warnings.warn(f"{type(self).__name__}: `decay` is Keras 2's time-based decay (lr / "
                          f"(1 + decay·iterations)); Keras >= 2.11 has it only in "
                          f"tf.keras.optimizers.legacy, and minidl follows that legacy rule.",
                          UserWarning, stacklevel=3)
        self.decay = float(decay)
        for option, value in kwargs.items():
            if option not in _KERAS_ONLY:
                raise TypeError(f"{type(self).__name__} got an unexpected keyword argument "
                                f"{option!r}")
            if value != _KERAS_ONLY[option]:
                raise NotImplementedError(f"{type(self).__name__}: minidl does not implement "
                                          f"{option}={value!r}")
        if not isinstance(learning_rate, (int, float)):
            raise NotImplementedError("learning-rate schedules are not supported by "
                                      "minidl.keras; pass a number, or use minidl.optim's "
                                      "schedules with minidl.training.fit")
        if learning_rate < 0:
            raise ValueError(f"learning_rate must be >= 0, got {learning_rate}")
        self.name = name
        self._learning_rate = float(learning_rate)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.core: Optional[optim.Optimizer] = None
        self._params: List[Any] = []

    def _make(self, params: List[Any]) -> optim.Optimizer:
        raise NotImplementedError

    def build(self, params: Iterable[Any]) -> None:
        """Make the ``minidl.optim`` optimizer for ``params`` (kept if the parameters are the
        same as last time, so its moments survive between ``fit`` calls)."""
        params = list(params)
        if self.core is not None and [id(p) for p in params] == [id(p) for p in self._params]:
            return
        self._params = params
        self.core = self._make(params)

    @property
    def learning_rate(self) -> "LearningRate":
        """The (base) learning rate; ``K.set_value(optimizer.lr, 0.01)`` or assigning changes
        it. With ``decay``, each step uses lr / (1 + decay·iterations)."""
        return LearningRate(self._learning_rate, self)

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(value)
        self._set_core_lr(self._learning_rate)

    lr = learning_rate  # Keras 2's name

    def _set_core_lr(self, value: float) -> None:
        if self.core is not None:
            for group in self.core.param_groups:
                group["lr"] = value

    @property
    def iterations(self) -> int:
        """How many steps have been taken."""
        return self.core.steps if self.core is not None else 0

    def _built(self) -> optim.Optimizer:
        if self.core is None:
            raise RuntimeError(f"{type(self).__name__} has no weights yet: it is built by "
                               f"model.fit (or optimizer.build(model.parameters()))")
        return self.core

    def zero_grad(self) -> None:
        self._built().zero_grad()

    def step(self) -> None:
        """Clip the gradients (if asked), then update the weights."""
        core = self._built()
        if self.clipvalue is not None:
            optim.clip_grad_value(self._params, self.clipvalue)
        if self.clipnorm is not None:
            for p in self._params:
                optim.clip_grad_norm([p], self.clipnorm)
        if self.global_clipnorm is not None:
            optim.clip_grad_norm(self._params, self.global_clipnorm)
        if self.decay:
            self._set_core_lr(self._learning_rate / (1.0 + self.decay * core.steps))
        core.step()

    def state_dict(self) -> Dict[str, Any]:
        return self._built().state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._built().load_state_dict(state)

    def get_config(self) -> Dict[str, Any]:
        config = {"name": self.name, "learning_rate": self._learning_rate}
        for option in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, option) is not None:
                config[option] = getattr(self, option)
        if self.decay:
            config["decay"] = self.decay
        return config

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Optimizer":
        return cls(**config)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({settings})"


class LearningRate(float):
    """A learning rate read from an optimizer: a float that Keras 2 code can also change in place,
    ``K.set_value(model.optimizer.lr, 0.01)`` (Keras 2 holds it in a variable)."""

    def __new__(cls, value: float, optimizer: Optimizer) -> "LearningRate":
        rate = super().__new__(cls, value)
        rate.optimizer = optimizer
        return rate

    def assign(self, value: float) -> None:
        self.optimizer.learning_rate = float(value)

    def numpy(self) -> float:
        return float(self)


class Adam(Optimizer):
    """Adam with Keras' defaults and Keras' ε placement (see the module docstring).
    ``weight_decay`` (decoupled, as Keras) switches to ``optim.AdamW``."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False,
                 weight_decay: Optional[float] = None, name: str = "adam", **kwargs: Any):
        super().__init__(learning_rate, name, amsgrad=amsgrad, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.weight_decay = weight_decay

    def _make(self, params):
        betas = (self.beta_1, self.beta_2)
        if self.weight_decay:
            return optim.AdamW(params, lr=self._learning_rate, betas=betas, eps=self.epsilon,
                               weight_decay=self.weight_decay, epsilon_hat=True)
        return optim.Adam(params, lr=self._learning_rate, betas=betas, eps=self.epsilon,
                          epsilon_hat=True)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "weight_decay": self.weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay; Keras' default decay 0.004."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, name: str = "adamw", **kwargs: Any):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, name,
                         **kwargs)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, name: str = "SGD", **kwargs: Any):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        super().__init__(learning_rate, name, **kwargs)
        self.momentum, self.nesterov = momentum, nesterov

    def _make(self, params):
        return optim.SGD(params, lr=self._learning_rate, momentum=self.momentum,
                         nesterov=self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """RMSprop with Keras' defaults (ρ = 0.9, ε = 1e-7); see the module docstring for ε."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, name: str = "rmsprop",
                 **kwargs: Any):
        super().__init__(learning_rate, name, centered=centered, **kwargs)
        self.rho, self.momentum, self.epsilon = rho, momentum, epsilon

    def _make(self, params):
        return optim.RMSprop(params, lr=self._learning_rate, alpha=self.rho, eps=self.epsilon,
                             momentum=self.momentum, eps_inside_sqrt=True)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """Adagrad with Keras' defaults: s₀ = 0.1, θ ← θ − lr·g/√(s + ε) (``optim.Adagrad`` with
    ``eps_inside_sqrt``)."""

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, name: str = "adagrad", **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def _make(self, params):
        return optim.Adagrad(params, lr=self._learning_rate, eps=self.epsilon,
                             initial_accumulator_value=self.initial_accumulator_value,
                             eps_inside_sqrt=True)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


class Adadelta(Optimizer):
    """Adadelta with Keras' defaults (lr = 0.001, ρ = 0.95, ε = 1e-7); ``optim.Adadelta``."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.95, epsilon: float = 1e-7,
                 name: str = "adadelta", **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        self.rho, self.epsilon = rho, epsilon

    def _make(self, params):
        return optim.Adadelta(params, lr=self._learning_rate, rho=self.rho, eps=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adamax with Keras' defaults and ε outside the max (``optim.Adamax(eps_outside_max=True)``):
    u ← max(β₂u, |g|), θ ← θ − lr/(1−β₁ᵗ)·m/(u + ε)."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, name: str = "adamax", **kwargs: Any):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _make(self, params):
        return optim.Adamax(params, lr=self._learning_rate, betas=(self.beta_1, self.beta_2),
                            eps=self.epsilon, eps_outside_max=True)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Nadam(Adamax):
    """NAdam with Keras' defaults (lr = 0.001, ε = 1e-7); Keras 2's momentum schedule is
    PyTorch's (``optim.NAdam``, ψ = 0.004)."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, name: str = "nadam", **kwargs: Any):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)

    def _make(self, params):
        return optim.NAdam(params, lr=self._learning_rate, betas=(self.beta_1, self.beta_2),
                           eps=self.epsilon)


_BY_NAME = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop, "adagrad": Adagrad,
            "adadelta": Adadelta, "adamax": Adamax, "nadam": Nadam}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name (``'adam'``, ``'sgd'``, ``'rmsprop'``, ``'adamw'``,
    ``'adagrad'``, ``'adadelta'``, ``'adamax'``, ``'nadam'``; Keras' defaults) or an
    ``Optimizer`` object (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier.lower()]()
        except KeyError:
            raise ValueError(f"unknown optimizer {identifier!r}; expected one of "
                             f"{sorted(_BY_NAME)} or an Optimizer object") from None
    if isinstance(identifier, optim.Optimizer):
        raise TypeError("compile() takes a minidl.keras.optimizers optimizer (e.g. Adam()); a "
                        "minidl.optim optimizer is for minidl.training.fit")
    raise TypeError(f"optimizer must be a name or an Optimizer, got {type(identifier).__name__}")
