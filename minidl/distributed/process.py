"""This process's place in a data-parallel job, and the collectives on Tensors and arrays.

    comm = distributed.init()          # rank and size from the launcher (mpiexec -n N)
    distributed.get_rank(), distributed.get_world_size(), distributed.is_main_process()
    distributed.all_reduce(x, op="mean")
    distributed.broadcast(x, root=0)

A process started without a launcher is a job of one rank: every call works, and nothing needs
MPI. Under ``mpiexec -n N`` (N > 1), ``init()`` joins the job through MPI (``pip install
"minidl[dist]"``) and installs an exception hook that aborts the whole job when any rank dies
of an exception, so the others do not wait for it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import traceback
from typing import Any, Iterator, Optional

from minidl.autograd import Tensor
from minidl.backend.communicator import (INSTALL_HINT, Communicator, DistributedError,
                                         LocalCommunicator, MPICommunicator, launch_environment)

__all__ = ["init", "get_comm", "is_available", "is_launched", "is_initialized", "get_rank",
           "get_world_size", "is_main_process", "all_reduce", "broadcast", "broadcast_object",
           "barrier", "abort_on_error", "requirement"]

_comm: Optional[Communicator] = None


def requirement() -> str:
    """What to install for jobs of more than one process."""
    return INSTALL_HINT


def is_available() -> bool:
    """Whether mpi4py is installed, so that jobs of several processes can run."""
    return importlib.util.find_spec("mpi4py") is not None


def is_launched() -> bool:
    """Whether a launcher started this process as one of several (``mpiexec -n N``, N > 1)."""
    launch = launch_environment()
    return launch is not None and launch.world_size > 1


def is_initialized() -> bool:
    return _comm is not None


def init(timeout: Optional[float] = None, engine: Optional[str] = None) -> Communicator:
    """This process's ``Communicator`` (created on the first call, the same one afterwards).

    Under ``mpiexec -n N`` it is an MPI communicator of N ranks; a process started on its own
    gets a ``LocalCommunicator`` (one rank, no MPI). ``engine='mpi'`` (or ``MINIDL_COMM=mpi``)
    asks for MPI even for one process. ``timeout``: seconds a collective may wait for the
    other ranks before the job is aborted (default ``MINIDL_DIST_TIMEOUT``, else 600).

    Raises ``DistributedError`` when the job needs MPI and mpi4py is missing (naming what to
    install), or when MPI and the launcher disagree on the number of processes.
    """
    global _comm
    if _comm is not None:
        return _comm
    launch = launch_environment()
    requested = engine or os.environ.get("MINIDL_COMM", "").strip().lower() or None
    if requested not in (None, "auto", "mpi", "nccl"):
        raise DistributedError(f"unknown communication engine {requested!r}; expected 'auto', "
                               f"'mpi' or 'nccl'")
    if (launch is None or launch.world_size == 1) and requested in (None, "auto"):
        _comm = LocalCommunicator()
        return _comm
    comm = MPICommunicator(timeout)
    if launch is not None and comm.world_size != launch.world_size:
        raise DistributedError(
            f"{launch.launcher} started {launch.world_size} processes, but MPI sees a job of "
            f"{comm.world_size}: the mpiexec that started them belongs to another MPI library "
            f"than the one mpi4py uses. Start the job with the mpiexec installed beside mpi4py "
            f"({INSTALL_HINT}), or build mpi4py against your MPI.")
    if comm.world_size > 1:
        _abort_job_on_uncaught_exceptions(comm)
    _comm = comm
    return _comm


def get_comm() -> Communicator:
    """The process's communicator (``init()`` on first use)."""
    return init()


def get_rank() -> int:
    """This process's rank (0 for a process started on its own); does not start MPI."""
    if _comm is not None:
        return _comm.rank
    launch = launch_environment()
    return launch.rank if launch is not None else 0


def get_world_size() -> int:
    """The number of processes in the job (1 for a process started on its own)."""
    if _comm is not None:
        return _comm.world_size
    launch = launch_environment()
    return launch.world_size if launch is not None else 1


def is_main_process() -> bool:
    """Whether this is rank 0: the rank that prints progress and writes files."""
    return get_rank() == 0


# ----------------------------------------------------------------------------- collectives
def all_reduce(x: Any, op: str = "sum") -> Any:
    """Combine ``x`` over all ranks: ``op`` is ``'sum'``, ``'mean'``, ``'max'`` or ``'min'``.

    A Tensor or an array is changed in place (its data on every rank becomes the result) and
    returned; a Python number gives back a float. Shape: any, the same on every rank.
    """
    comm = get_comm()
    if isinstance(x, (int, float)):
        values = [float(x)]
        from minidl.backend import host_array
        array = comm.all_reduce(host_array(values, dtype="float64"),
                                "sum" if op == "mean" else op)
        return float(array[0]) / (comm.world_size if op == "mean" else 1)
    data = x.data if isinstance(x, Tensor) else x
    if op == "mean":
        if data.dtype.kind != "f":
            raise TypeError(f"all_reduce(op='mean') needs floating-point data, got {data.dtype}")
        comm.all_reduce(data, "sum")
        if comm.world_size > 1:
            data *= 1.0 / comm.world_size
    else:
        comm.all_reduce(data, op)
    return x


def broadcast(x: Any, root: int = 0) -> Any:
    """Rank ``root``'s values of ``x`` (a Tensor or an array) on every rank, in place."""
    get_comm().broadcast(x.data if isinstance(x, Tensor) else x, root)
    return x


def broadcast_object(obj: Any, root: int = 0) -> Any:
    """Rank ``root``'s ``obj`` (nested dicts and lists of numbers, strings and host arrays:
    a config, a state dict) on every rank; the others pass anything, e.g. None."""
    return get_comm().broadcast_object(obj, root)


def barrier() -> None:
    """Wait until every rank has reached this line."""
    get_comm().barrier()


# ----------------------------------------------------------------------------- failing ranks
def _abort_job_on_uncaught_exceptions(comm: Communicator) -> None:
    """An uncaught exception prints its traceback as usual, then aborts every rank (MPI_Abort):
    without this, the dying rank would wait in MPI_Finalize and the others in their next
    collective, for ever. (A rank killed outright, by SIGKILL, is noticed by mpiexec, which
    ends the job; a rank that stops answering trips the others' timeout.)"""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        _say_aborting(comm, kind.__name__)
        comm.abort(1)

    sys.excepthook = hook


def _say_aborting(comm: Communicator, what: str) -> None:
    print(f"minidl.distributed: rank {comm.rank} of {comm.world_size} stopped with {what}; "
          f"aborting the whole job so that the other ranks do not wait for it",
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def abort_on_error(prefix: str = "") -> Iterator[None]:
    """Inside, an exception on any rank of a job of several ends the whole job at once: the
    rank prints ``prefix`` and the error (the traceback with ``MINIDL_DEBUG=1``) and aborts.
    For code whose caller would otherwise turn the error into an exit status (the command
    line), which leaves the other ranks waiting. In a job of one rank it changes nothing."""
    try:
        yield
    except BaseException as error:
        comm = _comm
        if comm is None or comm.world_size == 1 or \
                (isinstance(error, SystemExit) and error.code in (0, None)):
            raise
        if os.environ.get("MINIDL_DEBUG", "").strip() not in ("", "0"):
            traceback.print_exc()
        print(f"[rank {comm.rank}] {prefix}error: {type(error).__name__}: {error}",
              file=sys.stderr, flush=True)
        _say_aborting(comm, type(error).__name__)
        comm.abort(1)
        raise
