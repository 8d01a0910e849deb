"""The CPU: NumPy arrays in host memory. The default device."""
from __future__ import annotations

from typing import Any

import numpy as np

from minidl.backend.device import Device


class CPUDevice(Device):
    """NumPy on the host. Host copies are free: ``from_host`` and ``to_host`` pass arrays
    through (NumPy scalars such as ``np.float32(2)`` count as host arrays too)."""

    name = "cpu"

    @property
    def xp(self) -> Any:
        return np

    def owns(self, array_type: type) -> bool:
        return issubclass(array_type, (np.ndarray, np.generic))

    def from_host(self, host: np.ndarray) -> np.ndarray:
        return host

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def erf(self, x: Any) -> Any:
        """SciPy's erf (full precision) where SciPy is installed, else the generic one."""
        try:
            from scipy.special import erf
        except ImportError:
            return super().erf(x)
        return erf(x)


DEVICE = CPUDevice()
