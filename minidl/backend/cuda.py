"""A CUDA GPU: CuPy arrays in GPU memory (``pip install "minidl[gpu]"``).

The only file of minidl that imports CuPy. CuPy is imported on first use, and importing it
never touches the GPU, so everything here is safe on a machine without one;
``is_available()`` is the real test.
"""
from __future__ import annotations

from typing import Any, Optional

from minidl.backend.device import Device, DeviceError


class CUDADevice(Device):
    """CuPy on the current GPU. Fused elementwise kernels compile with CuPy's
    ``ElementwiseKernel`` (NVRTC, on first use)."""

    name = "cuda"
    fused_kernels = True
    _cupy: Any = None

    @property
    def xp(self) -> Any:
        if self._cupy is None:
            try:
                import cupy
            except ImportError as error:
                raise DeviceError(
                    "device 'cuda' needs CuPy: pip install \"minidl[gpu]\" (cupy-cuda12x) "
                    "on a machine with an NVIDIA GPU") from error
            CUDADevice._cupy = cupy
            _use_the_local_gpu(cupy)
        return self._cupy

    def is_available(self) -> bool:
        try:
            return bool(self.xp.cuda.is_available())
        except Exception:  # no CuPy, no driver, no device: all mean "not available"
            return False

    def unavailable_reason(self) -> str:
        return "no CUDA device is available (md.cuda.is_available() is False)"

    def owns(self, array_type: type) -> bool:
        return array_type.__module__.startswith("cupy")

    def new_generator(self, seed: Optional[int]) -> Any:
        return self.xp.random.RandomState(seed)

    def uniform(self, generator: Any, shape: Any, low: float, high: float, dtype: Any) -> Any:
        return generator.uniform(low, high, size=shape, dtype=dtype)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> None:
        if hasattr(self.xp.add, "at"):  # CuPy 12+
            self.xp.add.at(target, indices, values)
        else:
            import cupyx
            cupyx.scatter_add(target, indices, values)

    def erf(self, x: Any) -> Any:
        from cupyx.scipy.special import erf
        return erf(x)

    def elementwise_kernel(self, in_params: str, out_params: str, body: str, name: str) -> Any:
        return self.xp.ElementwiseKernel(in_params, out_params, body, name)

    def synchronize(self) -> None:
        if self.is_available():
            self.xp.cuda.get_current_stream().synchronize()

    def empty_cache(self) -> None:
        # CuPy keeps freed GPU memory in a pool for reuse, so nvidia-smi shows it as used
        if self.is_available():
            self.xp.get_default_memory_pool().free_all_blocks()
            self.xp.get_default_pinned_memory_pool().free_all_blocks()


def _use_the_local_gpu(cupy: Any) -> None:
    """In a job of several ranks (``mpiexec -n N``), local rank k uses GPU k mod (number of
    GPUs), so that the ranks of a machine spread over its GPUs (NCCL needs one each). A process
    started on its own keeps CuPy's current GPU."""
    from minidl.backend.communicator import launch_environment
    launch = launch_environment()
    if launch is None or launch.world_size == 1:
        return
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver or no GPU: is_available() says so
        return
    if count:
        cupy.cuda.Device(launch.local_rank % count).use()


DEVICE = CUDADevice()
