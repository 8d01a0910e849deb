"""The CPU: NumPy arrays in host memory. The default device.

Memory: a training step allocates and frees hundreds of megabytes of arrays (the GPT of the
benchmarks keeps 235 MB of activations for backward). With glibc's default settings the freed
heap is handed back to the operating system between steps, and every page of it faults in again
on the next touch: about a tenth of a GPT step on the 2-core machine (293 → 261 ms, LSTM B=64
21.9 → 20.4 ms, measured with the setting below against the default). So on import minidl asks
glibc to keep 256 MB of freed heap for reuse (``mallopt(M_TOP_PAD)``), as PyTorch's caching
allocators keep freed GPU memory. ``MINIDL_KEEP_FREED_MB`` changes the amount (0 leaves glibc's
default); other C libraries are left alone.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any, Optional

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

_M_TOP_PAD = -2  # glibc's mallopt parameter: extra heap kept (and asked for) at the top


def keep_freed_memory(megabytes: Optional[float] = None) -> bool:
    """Ask glibc to keep ``megabytes`` of freed heap for reuse instead of returning it to the
    operating system (default: ``MINIDL_KEEP_FREED_MB``, else 256). True if glibc took it;
    False elsewhere (macOS, musl) or for 0."""
    if megabytes is None:
        text = os.environ.get("MINIDL_KEEP_FREED_MB", "256").strip()
        try:
            megabytes = float(text)
        except ValueError:
            raise ValueError(f"MINIDL_KEEP_FREED_MB={text!r}: expected a number of megabytes "
                             f"(0 keeps the C library's default)") from None
    if megabytes <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return mallopt(_M_TOP_PAD, int(min(megabytes * 2**20, 2**31 - 1))) == 1


keep_freed_memory()
