"""Independent jobs on every core: the demo's (budget, subset, method) training runs.

NumPy runs its elementwise work on one core and OpenBLAS spreads only the matrix products, so
on a small machine two processes with one BLAS thread each finish two independent training
runs much sooner than one process with two BLAS threads runs them one after the other.
``run_jobs`` forks worker processes (they share the parent's data copy-on-write: the
pretrained weights, the encoded texts), runs ``fn(job)`` in each, and returns the results in
the jobs' order. Every job seeds its own random streams, so its result does not depend on
which process ran it or on what ran before: one worker and many give the same numbers.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, List, Optional, Sequence


def default_workers(device: str = "cpu") -> int:
    """One worker per core on the CPU (at most 8); one on a GPU (the device does the work)."""
    if device != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _one_blas_thread() -> None:
    """Worker start-up: one BLAS thread per process (the processes are the parallelism)."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:  # without threadpoolctl the BLAS threads just compete a little
        pass


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int = 1,
             on_done: Optional[Callable[[int, Any], None]] = None,
             order: Optional[Sequence[int]] = None) -> List[Any]:
    """``[fn(job) for job in jobs]``, in ``workers`` forked processes when ``workers`` > 1.

    ``fn`` must be a module-level function (it is sent to the workers by name) and what it
    needs besides ``job`` must be in module globals before the call (the fork copies them).
    ``on_done(i, result)`` runs in this process as each job finishes (progress lines).
    ``order``: the order to start the jobs in (longest first balances the workers); results
    are returned in the order of ``jobs`` whatever it is. An exception in a job is raised here.
    """
    order = list(range(len(jobs))) if order is None else list(order)
    results: List[Any] = [None] * len(jobs)
    if workers <= 1 or len(jobs) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for i in order:
            results[i] = fn(jobs[i])
            if on_done is not None:
                on_done(i, results[i])
        return results
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context,
                             initializer=_one_blas_thread) as pool:
        futures = {pool.submit(fn, jobs[i]): i for i in order}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                if on_done is not None:
                    on_done(i, results[i])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results
