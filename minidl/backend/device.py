"""What a device is, to minidl: the small description each device file fills in.

A device says where arrays live and what it offers for them — the array module (``xp``), how
to copy a host array in and out, its random generator, scatter-add, and whether it can compile
fused elementwise kernels — the way Chainer's ``backends/`` describe NumPy, CuPy and others.
Each device is one file in this package that defines ``DEVICE = SomeDevice()``; the package
finds it there, so adding a device means adding one file.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np


class DeviceError(TypeError):
    """A tensor is on the wrong device, or a device cannot be used."""


class Device:
    """One device. Subclasses set ``name`` and override what differs from NumPy on the host.

    Attributes:
        name: what users write (``tensor.to(name)``, ``MINIDL_DEVICE=name``).
        fused_kernels: whether ``elementwise_kernel`` compiles fused kernels on this device.
    """

    name: str = ""
    fused_kernels: bool = False

    # -- the array module
    def is_available(self) -> bool:
        """Whether arrays can be made on this device here (a library and hardware present)."""
        return True

    def unavailable_reason(self) -> str:
        """Why ``is_available()`` is False, in words a user can act on."""
        return f"device {self.name!r} is not available here"

    @property
    def xp(self) -> Any:
        """The array module of this device (``numpy``, ``cupy`` ...): ``xp.exp``, ``xp.matmul``."""
        raise NotImplementedError

    def owns(self, array_type: type) -> bool:
        """Whether arrays of this Python type live on this device. Called once per type (the
        answer is cached), so it may be slow, but it must not import anything heavy."""
        raise NotImplementedError

    # -- copies
    def from_host(self, host: np.ndarray) -> Any:
        """``host`` (a NumPy array) on this device: an upload, or ``host`` itself on the CPU."""
        return self.xp.asarray(host)

    def to_host(self, array: Any) -> np.ndarray:
        """A host NumPy array with the values of one of this device's arrays (a download)."""
        return array.get()

    # -- what some devices spell differently
    def new_generator(self, seed: Optional[int]) -> Any:
        """A random generator whose ``uniform``/``normal``/``permutation`` give this device's
        arrays (fresh entropy when ``seed`` is None)."""
        return self.xp.random.default_rng(seed)

    def uniform(self, generator: Any, shape: Any, low: float, high: float, dtype: Any) -> Any:
        """Samples of U(low, high) from ``generator`` (this device's), drawn in ``dtype``
        itself when it is float32 or float64 (a float32 draw costs a third of a float64 draw
        and its cast)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            return generator.uniform(low, high, size=shape).astype(dtype, copy=False)
        u = generator.random(shape, dtype=dtype)
        if (low, high) != (0.0, 1.0):
            u *= high - low
            u += low
        return u

    def scatter_add(self, target: Any, indices: Any, values: Any) -> None:
        """``target[indices] += values`` in place, repeated indices adding up (``add.at``)."""
        self.xp.add.at(target, indices, values)

    def elementwise_kernel(self, in_params: str, out_params: str, body: str, name: str) -> Any:
        """A fused elementwise kernel compiled from C-like ``body`` (CuPy's ``ElementwiseKernel``
        signature), on devices whose ``fused_kernels`` is True."""
        raise DeviceError(f"device {self.name!r} has no fused kernels; use the ufunc path")

    def erf(self, x: Any) -> Any:
        """The error function erf(x) = 2/√π ∫₀ˣ e^(−t²) dt, elementwise (NumPy has none).

        This generic version is Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7, float32
        round-off); devices with a library erf (SciPy, CuPy) override it with a full-precision
        one.
        """
        xp = self.xp
        sign = xp.sign(x)
        a = xp.abs(x)
        t = 1.0 / (1.0 + 0.3275911 * a)
        poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (
            -1.453152027 + t * 1.061405429))))
        return sign * (1.0 - poly * xp.exp(-a * a))

    # -- housekeeping
    def synchronize(self) -> None:
        """Wait for queued work (asynchronous devices); nothing to do on the CPU."""

    def empty_cache(self) -> None:
        """Hand cached free memory back to the system, where the device keeps a pool."""

    def __repr__(self) -> str:
        return f"<minidl device {self.name!r}>"
