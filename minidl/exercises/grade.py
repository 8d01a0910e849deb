"""``minidl grade PATH``: grade a student's kit, one kit file, or a folder of kits.

The grader never runs a student's code in its own process. For each kit it starts one worker
process (``_worker.py``) that imports the kit files and runs every exercise's check in turn,
reporting each result as it goes. The grader watches the results:

- an exercise with no result within ``timeout`` seconds is stopped (the worker's whole process
  group is killed) and fails with "timed out";
- a worker that dies in the middle of an exercise (``os._exit``, a crash in native code, a
  memory limit) fails that exercise with "crashed" and the exit status;
- either way a fresh worker grades the remaining exercises, so one broken exercise never costs
  the others (a file that hangs or crashes on import fails all of its exercises at once).

One worker per kit keeps a class's grading fast (``import minidl`` is paid once per kit, not
once per exercise: the reference kit grades in about a second); the per-exercise watchdog keeps
it robust. The price: the exercises of one kit share a process, so a kit file that changes
minidl's global state could affect the checks after it (each check restores what it patches).

Rights: the worker runs as the user who runs the grader — the same rights as the student's own
``python ex_sigmoid.py`` — with nothing added: no shell, stdin closed, its working directory an
empty temporary folder, lower limits on memory, CPU time and file size, and ``MINIDL_DEVICE=cpu``.
This contains mistakes, not malice: a deliberately hostile kit can still read or write whatever
that user can. Grade untrusted kits as an unprivileged user (or in a container), never as root.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from minidl.exercises.export import MANIFEST, exercises_in, is_kit
from minidl.exercises.registry import EXERCISES, Exercise, by_id

DEFAULT_TIMEOUT = 10.0        # seconds per exercise; the reference's checks take well under 1 s
DEFAULT_MEMORY_MB = 4096      # address-space limit of a worker
STARTUP_LIMIT = 120.0         # seconds for a worker to import minidl before its first exercise
POLL = 0.02


@dataclass
class ExerciseResult:
    """The outcome of one exercise. ``status`` is 'pass', or why it failed: 'fail' (a check
    failed), 'todo' (the stub is still there), 'error' (the code raised), 'timeout', 'crash'."""

    id: str
    status: str
    message: str = ""
    hint: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class KitResult:
    """The grades of one kit, in the kit's exercise order."""

    name: str
    path: Path
    results: List[ExerciseResult]
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def score(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def __getitem__(self, exercise_id: str) -> ExerciseResult:
        for result in self.results:
            if result.id == exercise_id:
                return result
        raise KeyError(exercise_id)


class GradeError(ValueError):
    """PATH is not a kit, a kit file or a folder of kits."""


# ============================================================================= running workers
# The worker imports this very minidl: its folder goes first on sys.path unless already there
# (not via PYTHONPATH, which would put an installed minidl's site-packages before the stdlib).
_BOOT = ("import sys; root = sys.argv.pop(1); "
         "root in sys.path or sys.path.insert(0, root); "
         "from minidl.exercises._worker import main; sys.exit(main())")


def _worker_environment() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(MINIDL_DEVICE="cpu", PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _kill(process: subprocess.Popen) -> None:
    """Stop the worker and anything it started (its own process group)."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass
    process.wait()


def _where_stuck(process: subprocess.Popen, log_path: Path) -> None:
    """Ask a hung worker for its traceback (faulthandler, registered on SIGUSR1 by the worker)
    and give it a moment to write it."""
    if not hasattr(signal, "SIGUSR1"):
        return
    size = log_path.stat().st_size if log_path.exists() else 0
    try:
        process.send_signal(signal.SIGUSR1)
    except OSError:
        return
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(POLL)
        if b"most recent call first" in log_path.read_bytes()[size:]:
            time.sleep(2 * POLL)  # the rest of the traceback follows at once
            break


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        reasons = {"SIGSEGV": "a crash in native code", "SIGKILL": "killed, e.g. out of memory",
                   "SIGXCPU": "the CPU-time limit", "SIGXFSZ": "the file-size limit (endless "
                   "printing?)", "SIGABRT": "an abort in native code"}
        return f"was killed by {name}" + (f" ({reasons[name]})" if name in reasons else "")
    return f"exited with status {code} (os._exit() or a crash; sys.exit() would be reported)"


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<function>\S+)')


def _read_log(path: Path) -> str:
    try:
        return path.read_bytes()[-8000:].decode("utf-8", "replace")
    except OSError:
        return ""


def _fault_location(log: str, kit: Path) -> Optional[str]:
    """Where in the student's files the worker was, from faulthandler's traceback (written on a
    crash, or on request when it hung): 'ex_sum_to.py line 23 (in _sum_to_array)'."""
    dump = log.rfind("most recent call first")
    if dump < 0:
        return None
    for match in _FRAME.finditer(log[dump:]):  # innermost frame first
        if Path(match["file"]).resolve().parent == kit:
            return f"{Path(match['file']).name} line {match['line']} (in {match['function']})"
    return None


def _last_output(log: str, lines: int = 4) -> str:
    kept = [line for line in log.splitlines() if line.strip()][-lines:]
    return ("; its last output:\n" + "\n".join(kept)) if kept else ""


@dataclass
class _Run:
    """What one worker process got through."""

    results: Dict[str, ExerciseResult]
    interrupted: Optional[ExerciseResult] = None  # the exercise that hung or crashed
    importing: Optional[str] = None               # the kit file being imported at that moment
    startup_failure: Optional[str] = None         # the worker died outside any exercise


def _start_worker(kit: Path, ids: Sequence[str], timeout: float, memory_mb: int,
                  work: Path) -> subprocess.Popen:
    root = str(Path(__file__).resolve().parent.parent.parent)  # the folder holding minidl/
    cpu_seconds = int(timeout * len(ids) + STARTUP_LIMIT)
    command = [sys.executable, "-B", "-X", "faulthandler", "-c", _BOOT, root,
               "--kit", str(kit), "--results", str(work / "results.jsonl"),
               "--memory-mb", str(memory_mb), "--cpu-seconds", str(cpu_seconds), *ids]
    extra = {"start_new_session": True} if os.name == "posix" else \
        {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    (work / "results.jsonl").touch()
    (work / "cwd").mkdir()
    with open(work / "output.log", "wb") as log:
        return subprocess.Popen(command, cwd=work / "cwd", stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=_worker_environment(), **extra)


def _run_worker(kit: Path, ids: Sequence[str], timeout: float, memory_mb: int) -> _Run:
    """Grade ``ids`` in one worker until they are done, one hangs, or the worker dies."""
    run = _Run(results={})
    with tempfile.TemporaryDirectory(prefix="minidl-grade-") as work:
        work = Path(work)
        log_path = work / "output.log"
        process = _start_worker(kit, ids, timeout, memory_mb, work)
        launched = started = time.monotonic()
        current: Optional[str] = None
        buffer = ""
        try:
            with open(work / "results.jsonl", encoding="utf-8") as results:
                while True:
                    code = process.poll()
                    buffer += results.read()
                    *lines, buffer = buffer.split("\n")
                    for line in lines:
                        try:
                            event = json.loads(line)
                            kind = event.pop("event")
                        except (ValueError, KeyError, AttributeError):
                            continue
                        if kind == "start":
                            current, started = event.get("id"), time.monotonic()
                        elif kind == "import":
                            run.importing = event.get("file")
                        elif kind == "imported":
                            run.importing = None
                        elif kind == "result" and event.get("id") == current:
                            run.results[current] = ExerciseResult(**event)
                            current = None
                    if code is not None or len(run.results) == len(ids):
                        break  # done (a thread the student left running must not keep us)
                    now = time.monotonic()
                    if current is not None and now - started > timeout:
                        _where_stuck(process, log_path)
                        where = _fault_location(_read_log(log_path), kit)
                        run.interrupted = ExerciseResult(
                            current, "timeout",
                            f"timed out: no result after {timeout:g} s, so it was stopped (an "
                            f"endless loop, or far too slow?)" +
                            (f"; it was at {where}" if where else ""),
                            seconds=round(now - started, 3))
                        break
                    if current is None and not run.results and now - launched > STARTUP_LIMIT:
                        run.startup_failure = (f"the grading process did not start within "
                                               f"{STARTUP_LIMIT:g} s" +
                                               _last_output(_read_log(log_path)))
                        break
                    time.sleep(POLL)
        finally:
            if process.poll() is None:
                _kill(process)
        if run.interrupted is None and current is not None:
            log = _read_log(log_path)
            where = _fault_location(log, kit)
            run.interrupted = ExerciseResult(
                current, "crash",
                f"crashed: the Python process running your code {_exit_text(code)}" +
                (f", at {where}" if where else _last_output(log)),
                seconds=round(time.monotonic() - started, 3))
        elif run.interrupted is None and run.startup_failure is None and \
                len(run.results) < len(ids):
            run.startup_failure = (f"the grading process {_exit_text(process.returncode)} "
                                   f"before checking this exercise" +
                                   _last_output(_read_log(log_path)))
    return run


def grade_kit(kit: os.PathLike, exercises: Optional[Sequence[Exercise]] = None,
              timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB,
              name: Optional[str] = None) -> KitResult:
    """Grade the exercises of one kit folder (all of them unless ``exercises`` is given)."""
    kit = Path(kit).resolve()
    chosen = list(exercises) if exercises is not None else list(EXERCISES)
    files = {e.id: e.file for e in chosen}
    results: Dict[str, ExerciseResult] = {}
    began = time.monotonic()
    pending = [e.id for e in chosen]
    while pending:
        run = _run_worker(kit, pending, timeout, memory_mb)
        results.update(run.results)
        if run.interrupted is not None:
            victim = run.interrupted
            if run.importing is not None:  # the file itself hangs or crashes on import
                victim.message = f"while importing {run.importing}: {victim.message}"
                for other in pending:
                    if other not in results and files[other] == run.importing:
                        results[other] = ExerciseResult(other, victim.status, victim.message)
            results[victim.id] = victim
        elif run.startup_failure is not None:
            for other in pending:
                results.setdefault(other, ExerciseResult(other, "crash", run.startup_failure))
        pending = [i for i in pending if i not in results]
    ordered = [results[e.id] for e in chosen]
    return KitResult(name or kit.name, kit, ordered, round(time.monotonic() - began, 3))


# ============================================================================= what PATH means
def resolve(path: os.PathLike) -> List[Tuple[str, Path, Optional[List[Exercise]]]]:
    """(name, kit folder, exercises or None for all) for a kit file, a kit, or a folder of kits."""
    path = Path(path)
    if path.is_file():
        exercises = exercises_in([path.name])
        if not exercises:
            raise GradeError(f"{path} is not a kit file; kit files are "
                             f"{', '.join(sorted({e.file for e in EXERCISES}))}")
        return [(path.resolve().parent.name, path.resolve().parent, exercises)]
    if not path.is_dir():
        raise GradeError(f"{path}: no such file or folder")
    if is_kit(path):
        return [(path.resolve().name, path, None)]
    kits = sorted(d for d in path.iterdir() if is_kit(d))
    if not kits:
        raise GradeError(f"{path} is neither a kit (no {MANIFEST} or ex_*.py files) nor a folder "
                         f"of kits (one sub-folder per student); make a kit with "
                         f"`minidl exercises export DIR`")
    return [(d.name, d, None) for d in kits]


def grade_path(path: os.PathLike, timeout: float = DEFAULT_TIMEOUT,
               memory_mb: int = DEFAULT_MEMORY_MB, only: Optional[Sequence[str]] = None,
               jobs: int = 1, on_result=None) -> List[KitResult]:
    """Grade whatever ``path`` is (see ``resolve``); kits of a folder run ``jobs`` at a time.
    ``on_result(kit_result)`` is called in order as soon as each kit is graded."""
    if only:
        unknown = set(only) - set(by_id())
        if unknown:
            raise GradeError(f"unknown exercise(s) {', '.join(sorted(unknown))}; the exercises "
                             f"are {', '.join(e.id for e in EXERCISES)}")
    targets = resolve(path)
    graded = []

    def grade(target):
        name, kit, exercises = target
        exercises = exercises if exercises is not None else list(EXERCISES)
        if only:
            exercises = [e for e in exercises if e.id in only]
        return grade_kit(kit, exercises, timeout, memory_mb, name=name)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(grade, targets):
            graded.append(result)
            if on_result is not None:
                on_result(result)
    return graded


# ============================================================================= reports
def _wrap(text: str, indent: str, width: int = 100) -> str:
    lines = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, initial_indent=indent, subsequent_indent=indent,
                               break_long_words=False, break_on_hyphens=False) or [indent]
    return "\n".join(lines)


def format_kit(result: KitResult) -> str:
    """The report of one kit: PASS/FAIL per exercise with what is wrong, then the score."""
    titles = {e.id: e.title for e in EXERCISES}
    width = max([len(r.id) for r in result.results] + [8])
    out = [f"{result.name} ({result.path}): {result.total} exercise"
           f"{'s' if result.total != 1 else ''}"]
    for r in result.results:
        out.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.id:<{width}}  {titles.get(r.id, '')}")
        if not r.passed:
            out.append(_wrap(r.message, " " * 8))
            if r.hint and r.status not in ("todo", "timeout", "crash"):
                out.append(_wrap("hint: " + r.hint, " " * 8))
        for note in r.notes:
            out.append(_wrap("note: " + note, " " * 8))
    out.append(f"  score: {result.passed}/{result.total} ({100 * result.score:.0f}%)")
    return "\n".join(out)


def csv_text(results: Sequence[KitResult]) -> str:
    """One row per kit: the student (kit folder name), 0/1 per exercise, passed, total, score."""
    ids = [e.id for e in EXERCISES if any(r.id == e.id for k in results for r in k.results)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *ids, "passed", "total", "score"])
    for kit in results:
        passed = {r.id: int(r.passed) for r in kit.results}
        writer.writerow([kit.name, *[passed.get(i, "") for i in ids], kit.passed, kit.total,
                         f"{kit.score:.3f}"])
    return buffer.getvalue()


def write_csv(results: Sequence[KitResult], path: os.PathLike) -> Path:
    """Write ``csv_text`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(csv_text(results), encoding="utf-8")
    os.replace(temporary, path)
    return path


# ============================================================================= command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a kit folder, one kit file (ex_*.py), or a folder of kits "
                                     "(one sub-folder per student)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds each exercise may take (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--only", default=None,
                        help="grade only these exercises (comma-separated ids)")
    parser.add_argument("--csv", default=None,
                        help="write the scores here (default for a folder of kits: "
                             "PATH/grades.csv)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="kits graded at the same time (default: up to 4)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                        help=f"address-space limit per worker in MiB, 0 for none "
                             f"(default {DEFAULT_MEMORY_MB})")


def run(args: argparse.Namespace) -> int:
    """Grade, print the reports (and the CSV for a folder); 0 if every exercise passed,
    1 if any failed, 2 if PATH is not gradable."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print("minidl grade: warning: running as root; student code runs with the grader's "
              "rights, so grade as an unprivileged user", file=sys.stderr)
    only = [i.strip() for i in args.only.split(",") if i.strip()] if args.only else None
    printed = []

    def show(result: KitResult) -> None:
        if printed:
            print()
        print(format_kit(result), flush=True)
        printed.append(result)

    try:
        folder = Path(args.path).is_dir() and not is_kit(args.path)
        results = grade_path(args.path, timeout=args.timeout, memory_mb=args.memory_mb,
                             only=only, jobs=args.jobs, on_result=show)
    except GradeError as error:
        print(f"minidl grade: {error}", file=sys.stderr)
        return 2
    target = args.csv or (Path(args.path) / "grades.csv" if folder else None)
    if folder:
        print(f"\n{len(results)} kits: " + ", ".join(
            f"{r.name} {r.passed}/{r.total}" for r in results))
    if target is not None:
        print(f"scores written to {write_csv(results, target)}")
    return 0 if all(r.passed == r.total for r in results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``minidl grade`` on its own (used by ``python ex_sigmoid.py``)."""
    parser = argparse.ArgumentParser(prog="minidl grade", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
