"""NCCL between GPUs, through CuPy (``cupy.cuda.nccl``): the engine for CuPy arrays.

NVIDIA's NCCL runs all-reduce and broadcast GPU to GPU (NVLink, PCIe, InfiniBand) without a
copy to host memory. One process drives one GPU: ``cuda.py`` gives local rank k the GPU
k mod (number of GPUs), and NCCL refuses two ranks on one GPU, so ``choose_engine`` picks NCCL
only when every rank of a node has a GPU of its own.

Starting NCCL takes a shared secret: rank 0 asks NCCL for a unique id, MPI broadcasts it, and
every rank joins with it (``ncclCommInitRank``) — MPI starts the job, NCCL moves the data.
Collectives are queued on CuPy's current stream; the wait polls an event with the same
deadline as MPI's waits (``MPICommunicator.timeout``) and aborts the NCCL communicator and the
job when a peer does not answer.

Untested in minidl's CI (no GPU there); the choice of engine (``choose_engine``) is tested.
"""
from __future__ import annotations

import json
import time
from typing import Any, Tuple

import numpy as np

__all__ = ["probe", "NCCLCommunicator"]


def probe() -> Tuple[bool, int]:
    """(whether CuPy has a working NCCL, the number of GPUs this process sees); (False, 0)
    without CuPy or a GPU."""
    try:
        import cupy
        from cupy.cuda import nccl
        return bool(nccl.available), int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # no CuPy, no driver, no NCCL: all mean "not here"
        return False, 0


def _encode_id(unique_id: Any) -> bytes:
    """NCCL's unique id as bytes for MPI: CuPy 13+ gives bytes, older CuPy a tuple of ints."""
    if isinstance(unique_id, (bytes, bytearray)):
        return b"B" + bytes(unique_id)
    return b"T" + json.dumps([int(v) for v in unique_id]).encode()


def _decode_id(payload: bytes) -> Any:
    if payload[:1] == b"B":
        return payload[1:]
    return tuple(json.loads(payload[1:].decode()))


class NCCLCommunicator:
    """All-reduce and broadcast of CuPy arrays between the GPUs of the job's ranks.

    Args:
        mpi: the job's ``MPICommunicator`` (rank, size, the broadcast of the unique id, the
            deadline, and the abort).
    """

    def __init__(self, mpi: Any):
        import cupy
        from cupy.cuda import nccl
        self._cupy, self._nccl, self._mpi = cupy, nccl, mpi
        unique_id = nccl.get_unique_id() if mpi.rank == 0 else None
        payload = mpi.broadcast_bytes(_encode_id(unique_id) if mpi.rank == 0 else None, 0)
        # ncclCommInitRank blocks until every rank has joined
        self._comm = nccl.NcclCommunicator(mpi.world_size, _decode_id(payload), mpi.rank)
        self._ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}
        # CuPy arrays' dtypes are NumPy's dtypes
        self._dtypes = {np.dtype(name): code for name, code in (
            ("float16", nccl.NCCL_FLOAT16), ("float32", nccl.NCCL_FLOAT32),
            ("float64", nccl.NCCL_FLOAT64), ("int32", nccl.NCCL_INT32),
            ("int64", nccl.NCCL_INT64), ("uint8", nccl.NCCL_UINT8))}

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        cupy = self._cupy
        wire = array.dtype if array.dtype in self._dtypes else np.dtype("float64")
        buffer = array if array.flags.c_contiguous and wire == array.dtype else \
            cupy.ascontiguousarray(array, dtype=wire)
        stream = cupy.cuda.get_current_stream()
        self._comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size, self._dtypes[wire],
                             self._ops[op], stream.ptr)
        self._wait(stream, f"NCCL all_reduce of {buffer.size} × {buffer.dtype}")
        if buffer is not array:
            array[...] = buffer
        return array

    def broadcast(self, array: Any, root: int = 0) -> Any:
        cupy = self._cupy
        buffer = array if array.flags.c_contiguous else cupy.ascontiguousarray(array)
        data = buffer.reshape(-1).view(cupy.uint8)
        stream = cupy.cuda.get_current_stream()
        self._comm.bcast(data.data.ptr, data.size, self._nccl.NCCL_UINT8, root, stream.ptr)
        self._wait(stream, f"NCCL broadcast of {buffer.size} × {buffer.dtype} from rank {root}")
        if buffer is not array:
            array[...] = buffer
        return array

    def _wait(self, stream: Any, what: str) -> None:
        """Wait for the queued collective: poll an event recorded after it, and NCCL's own
        error state, until the MPI communicator's deadline."""
        event = stream.record()
        started = time.monotonic()
        pause = 0.0
        while not event.done:
            self._comm.check_async_error()   # raises NcclError when a peer failed
            time.sleep(pause)
            pause = min(1e-3, pause * 2 or 1e-5)
            if time.monotonic() - started > self._mpi.timeout:
                self._comm.abort()            # frees the GPU from the stuck kernel
                self._mpi.timed_out(what)
        self._mpi.seconds_waiting += time.monotonic() - started
