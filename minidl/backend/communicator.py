"""Communicators: how the processes of a data-parallel job combine their arrays.

A data-parallel job is ``N`` copies of one program (*ranks* ``0 … N−1``), started together by a
launcher (``mpiexec -n N``). Each rank computes gradients on its share of a batch; a
*collective* operation then combines the ranks' arrays. minidl needs three of them:

    ``all_reduce(a, op)``   every rank's ``a`` becomes ``op`` over all ranks (sum, max, min)
                              a₀ = a₁ = … = Σᵣ aᵣ   (in place)
    ``broadcast(a, root)``   every rank's ``a`` becomes the root's (in place)
    ``barrier()``            wait until every rank has arrived

minidl does not implement these itself; it uses the engines clusters already have, chosen by
the device of the array (``choose_engine``):

    ``'local'``  one process: nothing to combine (``LocalCommunicator``; no MPI needed).
    ``'mpi'``    MPI through mpi4py (``pip install "minidl[dist]"``) for host (NumPy) arrays;
                 it also carries device arrays (CuPy, strict) through host copies.
    ``'nccl'``   NVIDIA's NCCL through CuPy for CuPy arrays, GPU to GPU (``nccl.py``); MPI
                 still starts the job and carries the host arrays.

Failure is bounded: every MPI and NCCL wait polls with a deadline (``timeout``, default
``MINIDL_DIST_TIMEOUT`` or 600 s); a rank that waits longer says so and aborts the whole job,
so a dead or stuck peer never leaves the others hanging forever. Polling (a spin of 50 ms,
then sleeps of up to 1 ms) also leaves the CPU to other work while a rank waits for a slow
peer, which MPI's blocking calls do not (they spin).

This module and ``nccl.py`` are the only ones that import mpi4py and CuPy's NCCL, and only when
a job has more than one rank (or asks for them).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

__all__ = ["DistributedError", "INSTALL_HINT", "Launch", "launch_environment", "Communicator",
           "LocalCommunicator", "MPICommunicator", "choose_engine", "import_mpi",
           "REDUCE_OPS", "default_timeout"]

INSTALL_HINT = ('pip install "minidl[dist]"   (mpi4py, and the mpich wheel that brings '
                'mpiexec)')
REDUCE_OPS = ("sum", "max", "min")
DEFAULT_TIMEOUT_S = 600.0


class DistributedError(RuntimeError):
    """A data-parallel job cannot start or continue: a missing package, a wrong setting, ranks
    that disagree, or a peer that stopped answering."""


# ----------------------------------------------------------------------------- the launcher
@dataclass(frozen=True)
class Launch:
    """What the launcher told this process: its rank, the number of ranks, and its rank among
    the ranks of its own machine (which GPU it should take)."""

    rank: int
    world_size: int
    local_rank: int
    launcher: str


# (rank, size, local rank) variables of the launchers minidl knows, most specific first.
_LAUNCHERS = (
    ("Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("MVAPICH", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_LOCAL_RANK"),
    ("MPICH (Hydra)", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("PMIx", "PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK"),
)


def launch_environment(environ: Optional[Dict[str, str]] = None) -> Optional[Launch]:
    """The ``Launch`` that an MPI launcher (``mpiexec``, ``mpirun``) describes in the
    environment, or None for a process started on its own. Reads the variables of Open MPI,
    MVAPICH, MPICH's Hydra (also Intel MPI) and PMIx; never imports MPI."""
    environ = os.environ if environ is None else environ
    for name, rank_key, size_key, local_key in _LAUNCHERS:
        if rank_key in environ and size_key in environ:
            try:
                rank, size = int(environ[rank_key]), int(environ[size_key])
                local = int(environ.get(local_key, rank))
            except ValueError:
                raise DistributedError(f"the launcher's environment is not understood: "
                                       f"{rank_key}={environ[rank_key]!r}, "
                                       f"{size_key}={environ[size_key]!r}") from None
            if not 0 <= rank < size:
                raise DistributedError(f"the launcher says rank {rank} of {size} "
                                       f"({rank_key}, {size_key}); a rank is in 0 … size−1")
            return Launch(rank, size, local, name)
    return None


def default_timeout() -> float:
    """Seconds a rank waits for the others before it aborts the job: ``MINIDL_DIST_TIMEOUT``,
    or 600."""
    value = os.environ.get("MINIDL_DIST_TIMEOUT", "").strip()
    if not value:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        raise DistributedError(f"MINIDL_DIST_TIMEOUT must be a number of seconds, got "
                               f"{value!r}") from None
    if not seconds > 0:
        raise DistributedError(f"MINIDL_DIST_TIMEOUT must be positive, got {value!r}")
    return seconds


# ----------------------------------------------------------------------------- the choice
def choose_engine(device: str, world_size: int, *, nccl_available: bool = False,
                  gpus_on_node: int = 0, ranks_on_node: int = 1,
                  requested: Optional[str] = None) -> str:
    """Which engine carries the arrays of ``device`` in a job of ``world_size`` ranks.

    ``'local'`` for one rank (unless ``requested``); for several, ``'nccl'`` for ``'cuda'``
    arrays when CuPy has NCCL and every rank of the node has a GPU of its own (NCCL refuses two
    ranks on one GPU), else ``'mpi'`` (device arrays through host copies). ``requested``
    (``MINIDL_COMM``: ``'mpi'`` or ``'nccl'``; ``'auto'`` or None to choose) forces an engine
    and raises ``DistributedError`` where it cannot work.
    """
    if requested in (None, "", "auto"):
        if world_size == 1:
            return "local"
        if device == "cuda" and nccl_available and 0 < ranks_on_node <= gpus_on_node:
            return "nccl"
        return "mpi"
    if requested == "mpi":
        return "mpi"
    if requested == "nccl":
        if device != "cuda":
            raise DistributedError(f"NCCL carries only CuPy arrays (device 'cuda'), but these "
                                   f"arrays are on {device!r}; use MINIDL_COMM=mpi or auto")
        if not nccl_available:
            raise DistributedError("NCCL was asked for (MINIDL_COMM=nccl), but CuPy has no "
                                   "NCCL here (cupy.cuda.nccl.available is False); install a "
                                   "CuPy wheel built with NCCL, or use MINIDL_COMM=mpi")
        if ranks_on_node > gpus_on_node:
            raise DistributedError(f"NCCL needs a GPU per rank, but {ranks_on_node} ranks share "
                                   f"{gpus_on_node} GPU(s) on this node; start at most "
                                   f"{gpus_on_node} ranks per node, or use MINIDL_COMM=mpi")
        return "nccl"
    raise DistributedError(f"unknown communication engine {requested!r} (MINIDL_COMM); "
                           f"expected 'auto', 'mpi' or 'nccl'")


def import_mpi() -> Any:
    """mpi4py's ``MPI`` module (initialising MPI), or a ``DistributedError`` saying what to
    install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise DistributedError(f"data-parallel training with more than one process needs "
                               f"mpi4py and an MPI library: {INSTALL_HINT}") from error
    return MPI


def _check_op(op: str) -> None:
    if op not in REDUCE_OPS:
        raise ValueError(f"all_reduce: op must be one of {', '.join(REDUCE_OPS)}, got {op!r}")


# ----------------------------------------------------------------------------- the interface
class Communicator:
    """The ranks of a job, and the collectives between them. This base class is the whole
    interface; ``LocalCommunicator`` (one process), ``MPICommunicator`` (MPI, and NCCL for CuPy
    arrays) implement it.

    Attributes:
        rank: this process, 0 … world_size − 1 (rank 0 prints and writes files).
        world_size: the number of processes.
        local_rank: this process among those of its machine (its GPU).
        local_size: the number of processes on this machine.
        seconds_waiting: time spent inside collectives so far (communication and waiting).
        engine: ``'local'``, ``'mpi'`` (``'mpi+nccl'`` once NCCL carries CuPy arrays).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_size: int = 1
    seconds_waiting: float = 0.0
    engine: str = "local"

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        """Replace ``array`` (NumPy, CuPy or strict; any shape) on every rank by ``op`` (``'sum'``,
        ``'max'``, ``'min'``) over the ranks, in place. Returns ``array``."""
        raise NotImplementedError

    def broadcast(self, array: Any, root: int = 0) -> Any:
        """Replace ``array`` on every rank by rank ``root``'s, in place (same shape and dtype on
        every rank). Returns ``array``."""
        raise NotImplementedError

    def broadcast_bytes(self, payload: Optional[bytes], root: int = 0) -> bytes:
        """Rank ``root``'s ``payload`` on every rank (the others pass None)."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Return when every rank has called ``barrier``."""

    def abort(self, code: int = 1) -> None:
        """End every process of the job now with exit status ``code`` (MPI_Abort)."""
        raise SystemExit(code)

    # -- built on the above
    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s ``obj`` on every rank: nested dicts and lists of numbers, strings,
        booleans, None and host arrays (a state dict, a config). No pickle: the structure
        travels as JSON and each array as its bytes."""
        if self.world_size == 1:
            return obj
        arrays: list = []
        skeleton = _skeleton(obj, arrays) if self.rank == root else None
        text = self.broadcast_bytes(json.dumps(skeleton).encode() if self.rank == root else None,
                                    root)
        skeleton = json.loads(text.decode())
        received = []
        for i, (dtype, shape) in enumerate(skeleton["arrays"]):
            array = arrays[i] if self.rank == root else np.empty(shape, dtype=np.dtype(dtype))
            received.append(self.broadcast(array, root))
        return _rebuild(skeleton["root"], received)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} rank {self.rank} of {self.world_size}, {self.engine}>"


def _skeleton(obj: Any, arrays: list, top: bool = True) -> Any:
    """JSON for ``obj`` with its arrays replaced by references into ``arrays``."""
    if isinstance(obj, np.ndarray):
        arrays.append(np.ascontiguousarray(obj))
        node: Any = {"__array__": len(arrays) - 1}
    elif isinstance(obj, np.generic):
        node = obj.item()
    elif isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("broadcast_object: dict keys must be strings")
        node = {"__dict__": {k: _skeleton(v, arrays, False) for k, v in obj.items()}}
    elif isinstance(obj, (list, tuple)):
        node = {"__list__": [_skeleton(v, arrays, False) for v in obj],
                "tuple": isinstance(obj, tuple)}
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        node = obj
    else:
        raise TypeError(f"broadcast_object: cannot send a {type(obj).__name__}; send dicts, "
                        f"lists, numbers, strings and host NumPy arrays")
    if top:
        return {"root": node, "arrays": [(a.dtype.str, list(a.shape)) for a in arrays]}
    return node


def _rebuild(node: Any, arrays: list) -> Any:
    if isinstance(node, dict):
        if "__array__" in node:
            return arrays[node["__array__"]]
        if "__dict__" in node:
            return {k: _rebuild(v, arrays) for k, v in node["__dict__"].items()}
        items = [_rebuild(v, arrays) for v in node["__list__"]]
        return tuple(items) if node["tuple"] else items
    return node


class LocalCommunicator(Communicator):
    """One process, no launcher: every collective is the identity (the sum over one rank is
    the rank's own array). Needs no MPI."""

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        _check_op(op)
        return array

    def broadcast(self, array: Any, root: int = 0) -> Any:
        _check_root(root, 1)
        return array

    def broadcast_bytes(self, payload: Optional[bytes], root: int = 0) -> bytes:
        _check_root(root, 1)
        return bytes(payload or b"")


def _check_root(root: int, world_size: int) -> None:
    if not 0 <= root < world_size:
        raise ValueError(f"broadcast: root must be a rank in 0 … {world_size - 1}, got {root}")


# ----------------------------------------------------------------------------- MPI
# Dtypes every MPI library reduces natively; others (float16, bool ...) travel as float64.
_MPI_DTYPES = {np.dtype(t) for t in ("float32", "float64", "int32", "int64", "uint8")}


class MPICommunicator(Communicator):
    """The ranks of an MPI job (mpi4py's ``COMM_WORLD``). Host arrays travel as they are;
    arrays of another device go through a host copy, or through NCCL for CuPy arrays where
    ``choose_engine`` says so (``MINIDL_COMM`` forces an engine).

    Args:
        timeout: seconds a collective may wait for the other ranks before this rank reports
            it and aborts the job (default ``default_timeout()``).
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``).
    """

    engine = "mpi"
    SPIN_S = 0.05   # a 25 MB bucket between the ranks of one machine takes ~ 10-30 ms
    ABORT_GRACE_S = 0.5   # for mpiexec to forward a dying rank's last words

    def __init__(self, timeout: Optional[float] = None, comm: Any = None):
        self._MPI = import_mpi()
        self._comm = comm if comm is not None else self._MPI.COMM_WORLD
        self.rank, self.world_size = self._comm.Get_rank(), self._comm.Get_size()
        node = self._comm.Split_type(self._MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self._ops = {"sum": self._MPI.SUM, "max": self._MPI.MAX, "min": self._MPI.MIN}
        self._device_engines: Dict[str, Any] = {}   # device name -> None (MPI) or NCCL
        self.seconds_waiting = 0.0                   # time spent inside collectives

    # -- which engine carries a device's arrays
    def _engine_for(self, device: Any) -> Any:
        """None where MPI carries the arrays of ``device``, else the communicator that does."""
        if device.name not in self._device_engines:
            requested = os.environ.get("MINIDL_COMM", "").strip().lower() or None
            nccl_available, gpus = False, 0
            if device.name == "cuda":
                from minidl.backend import nccl
                nccl_available, gpus = nccl.probe()
            engine = choose_engine(device.name, self.world_size, nccl_available=nccl_available,
                                   gpus_on_node=gpus, ranks_on_node=self.local_size,
                                   requested=requested)
            if engine == "nccl":
                from minidl.backend import nccl
                self._device_engines[device.name] = nccl.NCCLCommunicator(self)
                self.engine = "mpi+nccl"
            else:
                self._device_engines[device.name] = None
        return self._device_engines[device.name]

    # -- collectives
    def _in_place(self, array: Any, on_engine: Any, on_host: Any,
                  write_back: bool = True) -> Any:
        """Run a collective on ``array`` in place: ``on_engine(engine)`` where another engine
        carries this device's arrays (NCCL), else ``on_host(host array)`` on the array itself
        (CPU) or on a host copy that is written back (``write_back``) afterwards."""
        from minidl.backend import array_device
        device = array_device(array)
        if device.name == "cpu":
            on_host(array)
            return array
        engine = self._engine_for(device)
        if engine is not None:
            return on_engine(engine)
        host = device.to_host(array)
        on_host(host)
        if write_back:
            array[...] = device.from_host(host)
        return array

    def all_reduce(self, array: Any, op: str = "sum") -> Any:
        _check_op(op)
        return self._in_place(array, lambda engine: engine.all_reduce(array, op),
                              lambda host: self._all_reduce_host(host, op))

    def _all_reduce_host(self, host: np.ndarray, op: str) -> None:
        if not host.flags.writeable:
            raise ValueError("all_reduce works in place, but this array is read-only")
        wire = host.dtype if host.dtype in _MPI_DTYPES else np.dtype(np.float64)
        buffer = host if host.flags.c_contiguous and wire == host.dtype else \
            np.ascontiguousarray(host, dtype=wire)
        request = self._comm.Iallreduce(self._MPI.IN_PLACE, buffer, op=self._ops[op])
        self._wait(request, f"all_reduce of {buffer.size} × {buffer.dtype}")
        if buffer is not host:
            host[...] = buffer

    def broadcast(self, array: Any, root: int = 0) -> Any:
        _check_root(root, self.world_size)
        return self._in_place(array, lambda engine: engine.broadcast(array, root),
                              lambda host: self._broadcast_host(host, root),
                              write_back=self.rank != root)

    def _broadcast_host(self, host: np.ndarray, root: int) -> None:
        buffer = host if host.flags.c_contiguous else np.ascontiguousarray(host)
        request = self._comm.Ibcast(buffer.reshape(-1).view(np.uint8), root=root)
        self._wait(request, f"broadcast of {buffer.size} × {buffer.dtype} from rank {root}")
        if buffer is not host:
            host[...] = buffer

    def broadcast_bytes(self, payload: Optional[bytes], root: int = 0) -> bytes:
        _check_root(root, self.world_size)
        size = np.array([len(payload) if self.rank == root else 0], dtype=np.int64)
        self._broadcast_host(size, root)
        data = np.frombuffer(payload, dtype=np.uint8).copy() if self.rank == root else \
            np.empty(int(size[0]), dtype=np.uint8)
        self._broadcast_host(data, root)
        return data.tobytes()

    def barrier(self) -> None:
        self._wait(self._comm.Ibarrier(), "barrier")

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # mpiexec forwards a rank's output asynchronously and MPI_Abort tears the job down at
        # once: without a pause, the last lines said before aborting (the reason) can be lost
        time.sleep(self.ABORT_GRACE_S)
        self._comm.Abort(code)

    # -- waiting, with a deadline
    def _wait(self, request: Any, what: str) -> None:
        """Wait for ``request``, testing it (which is also what moves a nonblocking collective
        forward) without pause for ``SPIN_S``, then between sleeps of up to 1 ms, so that a
        rank waiting for a slow peer leaves the CPU to others. After ``timeout`` seconds,
        report and abort the job."""
        started = time.monotonic()
        pause = 0.0
        while not request.Test():
            waited = time.monotonic() - started
            if waited > self.SPIN_S:
                time.sleep(pause)
                pause = min(1e-3, pause * 2 or 1e-5)
                if waited > self.timeout:
                    self.timed_out(what)
        self.seconds_waiting += time.monotonic() - started

    def timed_out(self, what: str) -> None:
        """Say that this rank waited too long in ``what``, and abort the job."""
        print(f"\nminidl.distributed: rank {self.rank} of {self.world_size} waited "
              f"{self.timeout:g} s in {what} without hearing from every other rank: one of "
              f"them has died or is stuck (see its own message above). Aborting the whole job. "
              f"(MINIDL_DIST_TIMEOUT sets this limit.)", file=sys.stderr, flush=True)
        self.abort(1)
