"""Helpers shared by the benchmarks: the two BLAS environments, optional references, timing
statistics and plain-text tables.

The BLAS environment. Some machines set ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (for
older OpenBLAS builds); they make OpenBLAS pick a different, often slower, kernel than a user's
machine gets. OpenBLAS reads them once, when it is loaded, so the only way to see both is a
second process: each benchmark measures in the environment as set, then re-runs itself with
``--child`` and both variables removed, and prints the BLAS kernel that threadpoolctl reports
for each run. Nothing here changes the variables of the calling process (tests and CI keep
whatever they were given).
"""
from __future__ import annotations

import argparse

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Optional, Sequence

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ----------------------------------------------------------------------------- optional references
def optional_import(name: str, install_hint: str) -> tuple[Any, Optional[str]]:
    """``(module, None)``, or ``(None, reason)`` when ``name`` cannot be imported.

    Any exception counts (not only ImportError): an old package can fail on import for other
    reasons, e.g. DeZero 0.0.13 uses ``np.int``, which NumPy 1.24 removed.
    """
    try:
        module = __import__(name)
    except ImportError as error:
        return None, f"not installed ({install_hint}): {error}"
    except Exception as error:  # imports, then fails on its own code
        return None, f"fails to import: {type(error).__name__}: {_first_line(error)}"
    return module, None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""


# ----------------------------------------------------------------------------- the environment
def environment_lines(extra: Sequence[str] = ()) -> list[str]:
    """What a reader needs to interpret the numbers: Python, NumPy, the BLAS variables and the
    BLAS libraries loaded in this process (as threadpoolctl sees them)."""
    import numpy as np

    lines = [f"python {platform.python_version()}, numpy {np.__version__}, "
             f"{os.cpu_count()} CPUs ({platform.machine()})"]
    set_vars = [f"{name}={os.environ[name]}" for name in OPENBLAS_VARS if name in os.environ]
    lines.append("BLAS variables: " + (", ".join(set_vars) if set_vars else
                                       "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE both unset"))
    lines.extend(blas_lines())
    lines.extend(extra)
    lines.extend(load_lines())
    return lines


def _cpu_ticks() -> Optional[tuple[int, int]]:
    """(busy, total) CPU ticks of the whole machine so far (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)
    except (OSError, ValueError, IndexError):
        return None


class OthersCpu:
    """The share of the machine's CPU time that *other* processes used since ``start()``: the
    machine's busy time minus this process' own CPU time (all its threads). Rows measured
    while others were busy are marked, since their times (and even the ratios, as PyTorch's
    OpenMP threads suffer more than NumPy from a stolen core) are not reliable."""

    def __init__(self) -> None:
        self.start()

    def start(self) -> None:
        self._ticks, self._own = _cpu_ticks(), time.process_time()

    def share(self) -> Optional[float]:
        now = _cpu_ticks()
        if now is None or self._ticks is None:
            return None
        busy, total = now[0] - self._ticks[0], now[1] - self._ticks[1]
        own = (time.process_time() - self._own) * os.sysconf("SC_CLK_TCK")
        return max(0.0, busy - own) / total if total > 0 else None

    def cell(self) -> str:
        share = self.share()
        if share is None:
            return "?"
        return f"{share:.0%}" + (" BUSY" if share > BUSY_SHARE else "")


BUSY_SHARE = 0.15  # others using more than this share of all CPUs: the row is marked BUSY


def busy_fraction(seconds: float = 0.5) -> Optional[float]:
    """Share of all CPUs busy during ``seconds`` (Linux /proc/stat), before we start measuring:
    another process using the CPUs inflates multi-threaded figures (BLAS, OpenMP) most."""
    watch = OthersCpu()
    time.sleep(seconds)
    return watch.share()


def load_lines() -> list[str]:
    """The machine's load just before measuring, with a warning when others are busy."""
    busy = busy_fraction()
    if busy is None:
        return []
    cpus = os.cpu_count() or 1
    line = f"CPU use by other processes just before measuring: {busy:.0%} of {cpus} CPUs"
    if busy > BUSY_SHARE:
        line += (" -- WARNING: the machine is busy; times are inflated and noisy, and so are "
                 "ratios (see the 'others' column)")
    return [line]


def limit_threads(threads: Optional[int]) -> list[str]:
    """With ``--threads N``: cap NumPy's BLAS (threadpoolctl) and PyTorch (set_num_threads) at
    N threads, for diagnosis on a busy machine. Default: leave every library as it is."""
    if not threads:
        return []
    lines = [f"--threads {threads}: BLAS and torch capped at {threads} thread(s) (not the "
             f"libraries' defaults)"]
    try:
        import threadpoolctl
        _limits.append(threadpoolctl.threadpool_limits(threads))
    except ImportError:
        lines.append("threadpoolctl is not installed: NumPy's BLAS threads are not capped")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return lines


_limits: list = []  # keeps the threadpoolctl limits alive for the whole run


def blas_lines() -> list[str]:
    """One line per BLAS/OpenMP library loaded in this process: internal_api, version,
    architecture (OpenBLAS' core type), threads."""
    try:
        import threadpoolctl
    except ImportError:
        return ["BLAS kernel: unknown (pip install threadpoolctl to see it)"]
    lines = []
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") != "blas":
            continue
        lines.append(
            f"BLAS kernel: {info.get('internal_api')} {info.get('version')}, "
            f"architecture={info.get('architecture', '?')}, "
            f"threads={info.get('num_threads')}, library={os.path.basename(info['filepath'])}")
    return lines or ["BLAS kernel: threadpoolctl found no BLAS library loaded"]


def blas_architecture() -> str:
    """The OpenBLAS core type of NumPy's BLAS (``'Haswell'``, ``'Prescott'`` ...) or ``'?'``."""
    try:
        import threadpoolctl
    except ImportError:
        return "?"
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") == "blas":
            return str(info.get("architecture", "?"))
    return "?"


def without_blas_vars(environ: Optional[dict] = None) -> dict:
    """A copy of the environment with both OpenBLAS variables removed."""
    env = dict(os.environ if environ is None else environ)
    for name in OPENBLAS_VARS:
        env.pop(name, None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def blas_vars_set() -> bool:
    return any(name in os.environ for name in OPENBLAS_VARS)


def run_both_environments(
    argv: Sequence[str],
    measure: Callable[[], dict],
    compare: Callable[[dict, dict], None],
    always_both: bool = False,
) -> None:
    """Measure in this process (the environment as set), then re-run this script with
    ``--child`` and the OpenBLAS variables removed, then print ``compare(as_set, unset)``.

    ``measure()`` prints its own tables and returns a JSON-able summary. When neither variable
    is set the two environments are the same, so the re-run is skipped (``always_both`` forces
    it, which shows the run-to-run noise).
    """
    banner("run 1 of 2: environment as set")
    as_set = measure()
    if not blas_vars_set() and not always_both:
        banner("run 2 of 2: both OpenBLAS variables unset")
        print("Skipped: neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE is set here, so this "
              "run would repeat run 1 in the same environment (pass --both to run it anyway).")
        return
    banner("run 2 of 2: both OpenBLAS variables unset (fresh process, --child)")
    sys.stdout.flush()
    with tempfile.TemporaryDirectory() as tmp:
        results_path = os.path.join(tmp, "results.json")
        command = [sys.executable, sys.argv[0], *argv, "--child", "--results-json", results_path]
        completed = subprocess.run(command, env=without_blas_vars())
        if completed.returncode != 0:
            print(f"The re-run without the OpenBLAS variables failed (exit code "
                  f"{completed.returncode}); see its output above.")
            return
        with open(results_path, encoding="utf-8") as f:
            unset = json.load(f)
    banner("as set vs unset")
    compare(as_set, unset)


def add_environment_arguments(parser: "argparse.ArgumentParser") -> None:
    """The options every benchmark shares: thread cap, the two-environment run and the flags
    the parent process passes to its child run."""
    parser.add_argument("--threads", type=int, default=None,
                        help="cap BLAS and torch threads (diagnosis on a busy machine; "
                             "default: the libraries' own settings)")
    parser.add_argument("--both", action="store_true",
                        help="run the unset-environment pass even when nothing is set")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--results-json", default=None, help=argparse.SUPPRESS)


def write_results(path: Optional[str], results: dict) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f)


def banner(title: str) -> None:
    print()
    print("=" * 100)
    print(title)
    print("=" * 100, flush=True)


# ----------------------------------------------------------------------------- statistics
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def format_ratio(value: Optional[float], target: Optional[str] = None) -> str:
    """``'1.42×'`` or, with a target such as ``'≤ 1.3×'``, ``'1.42× (target ≤ 1.3×) MISSED'``."""
    if value is None:
        return "n/a"
    text = f"{value:.2f}×"
    if target is None:
        return text
    return f"{text} (target {target}) {'ok' if meets(value, target) else 'MISSED'}"


def meets(value: float, target: str) -> bool:
    """Whether ``value`` meets a target written as ``'≤ 1.3×'`` or ``'≥ 3×'``."""
    bound = float(target.strip("≤≥× "))
    return value <= bound if target.startswith("≤") else value >= bound


def format_time(seconds: Optional[float], unit: str = "ms") -> str:
    if seconds is None:
        return "n/a"
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    value = seconds * scale
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


# ----------------------------------------------------------------------------- tables
def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                align_left: int = 1) -> None:
    """A plain-text table; the first ``align_left`` columns are left-aligned, the rest right."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i < align_left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()
