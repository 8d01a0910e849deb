"""``minidl grade PATH``: grade a student's kit, one kit file, or a folder of kits.

How grading works
-----------------
The grader never runs a student's code in its own process, and never trusts what that code
says. For each kit it

1. makes a throw-away **sandbox**: a copy of the kit's files, a scratch folder, and the worker's
   *view of minidl* — minidl's source with every exercise's solution replaced by a stub
   (``view.py``), so no reference solution can be imported next to the student's code;
2. starts a **worker** process (``_worker.py``) in it, in a new session, with a clean
   environment, stdin closed, lower limits on memory, CPU time, file size (and processes), and
   ``MINIDL_DEVICE=cpu``. The worker imports the kit files, plugs them into its view of minidl
   and runs each exercise's *probe*: the student's code on fixed inputs. It sends back only
   what that code returned, over an inherited pipe (no path on disk to reach it by);
3. reads the pipe **strictly** (``protocol.py``): a malformed, unknown or out-of-order event
   fails the exercise it concerns — never the run — and the grader starts a fresh worker for
   the rest. An exercise with no result within ``timeout`` seconds is a hang, a worker that dies
   mid-exercise a crash; either way a fresh worker grades the remaining exercises;
4. **judges** each exercise in its own process: the expected values come from minidl's
   reference, computed here (``checks.py``), compared with the student's outputs;
5. kills every process the worker started — its process group, its session, every process
   carrying the worker's token in its environment and, under a uid of its own, every process of
   that uid — and deletes the sandbox.

``grades.csv`` (and the feedback files) are written only after every worker of the run is gone,
atomically (a temporary file, then a rename), with cells that start like a spreadsheet formula
(``= + - @``) escaped. A kit exported with ``--solutions`` (the answer key) is refused unless
``allow_solutions`` (``--allow-solutions``) is given.

Threat model: what a malicious student can and cannot do
---------------------------------------------------------
A student controls the code of their kit files, which runs in the worker.

They **cannot**: get marks without code that computes the right outputs (the worker holds no
expected value and no verdict, so replacing ``CHECKS``, ``md.gradcheck``, numpy or the worker
itself only changes what their code returned; importing the reference gives the stub); forge
results with another path (the pipe has none; a forged event is judged or rejected); stop the
class's grading (one kit's errors, hangs, crashes, floods and malformed events fail that kit's
exercises only); change the grader's code for this run (it imported the reference before any
worker started); leave a process running after grading (it is killed); rewrite ``grades.csv``
(written after all workers are gone); inject spreadsheet formulas through their name.

What protects the *installed* minidl, the other kits and the grader's files depends on the
operating system, and ``isolation()`` says which applies (``minidl grade`` prints it):

- **the grader runs as root and Python is usable by other users** (e.g. ``/usr/bin/python3``):
  each worker runs as a uid of its own with no other groups (``Popen(user=...)``), so the
  operating system itself keeps it from writing the installed package, other kits (the
  sandboxes are private to their uid) and the grader's files, from signalling or tracing the
  grader, and from starting more than a few processes;
- **otherwise** (the usual case for a teacher's own account, or root with Python in ``/root``):
  the worker runs as the grader's user; an *audit hook* (``_worker._AuditPolicy``) refuses
  writes, renames and deletions outside its sandbox, reading the installed minidl and the class
  folder, starting processes, signalling other processes, sockets and ``ctypes``. An audit
  hook is not a security boundary: native code (a compiled extension the student imports from
  their own folder, a bug in a library) could get around it. For untrusted kits in that case,
  run the grader in a container or as a separate unprivileged user with a system Python.

In every case a student can read files their user can read (other than the installed minidl and
the class folder) and use the CPU and memory up to the limits.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import io
import json
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from minidl.exercises import checks as _checks  # the judges and the references, imported now
from minidl.exercises.assertions import CheckFailure, Judgement, Outputs, StudentError
from minidl.exercises.export import MANIFEST
from minidl.exercises.protocol import MAX_LINE, Malformed, decode_event
from minidl.exercises.registry import (EXERCISES, EXTRA_FILES, Exercise, all_exercises, by_id,
                                       extra_judges, kit_files, load_extra, needed_ids)
from minidl.exercises.view import PACKAGE, build_view, view_sources

DEFAULT_TIMEOUT = 10.0        # seconds per exercise; the reference's probes take well under 1 s
DEFAULT_MEMORY_MB = 4096      # address-space limit of a worker
STARTUP_LIMIT = 120.0         # seconds for a worker to import minidl before its first exercise
POLL = 0.02
KIT_FILE_LIMIT = 2 * 2 ** 20  # bytes: larger files of a kit are not copied into the sandbox
HINTS = ("none", "diagnose", "full")
STATUS_WORDS = {"fail": "wrong result", "todo": "not implemented yet", "error": "error",
                "timeout": "timed out", "crash": "crashed", "invalid": "invalid output",
                "refused": "refused"}
_UID_BASE = 0x5EED0000        # workers' own uids (no passwd entry): _UID_BASE + slot


@dataclass
class ExerciseResult:
    """The outcome of one exercise. ``status`` is 'pass', or why it failed: 'fail' (wrong
    result), 'todo' (a stub is still there), 'error' (the code raised), 'timeout', 'crash',
    'invalid' (the worker sent something the grader cannot accept), 'refused' (an answer key).
    ``message`` says what is wrong and where, ``diagnosis`` names the mistake (no formula),
    ``hint`` gives the formula (shown only with ``--hints full``)."""

    id: str
    status: str
    message: str = ""
    hint: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0
    diagnosis: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class KitResult:
    """The grades of one kit, in the kit's exercise order; ``weights`` gives the points."""

    name: str
    path: Path
    results: List[ExerciseResult]
    seconds: float = 0.0
    warnings: List[str] = field(default_factory=list)
    weights: Dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    def weight(self, exercise_id: str) -> float:
        if exercise_id in self.weights:
            return self.weights[exercise_id]
        exercise = by_id().get(exercise_id)
        return exercise.weight if exercise is not None else 1.0

    @property
    def points(self) -> float:
        return sum(self.weight(r.id) for r in self.results if r.passed)

    @property
    def max_points(self) -> float:
        return sum(self.weight(r.id) for r in self.results)

    @property
    def score(self) -> float:
        return self.points / self.max_points if self.max_points else 0.0

    def __getitem__(self, exercise_id: str) -> ExerciseResult:
        for result in self.results:
            if result.id == exercise_id:
                return result
        raise KeyError(exercise_id)


class GradeError(ValueError):
    """PATH is not a kit, a kit file or a folder of kits (or an option is wrong)."""


# ============================================================================= isolation
@dataclass(frozen=True)
class Isolation:
    """How workers run: under a uid of their own (``uid`` set) or as the grader's user, and
    why (``reason``)."""

    uid: Optional[int]
    reason: str

    def describe(self) -> str:
        common = ("sandbox copy of each kit with minidl's solutions stubbed out, results over a "
                  "pipe and judged here, resource limits, every worker process killed at the "
                  "end")
        if self.uid is not None:
            return (f"each worker runs as an unprivileged uid of its own, so the operating "
                    f"system keeps it from the installed minidl, other kits and the grader's "
                    f"files; {common}")
        return (f"workers run as this user ({self.reason}); an audit hook refuses writes "
                f"outside the sandbox, reading minidl's source, processes, signals, sockets and "
                f"ctypes — no security boundary against native code; {common}")


def _reachable_by_others(path: Path) -> bool:
    """Whether a user that is neither owner nor group could read ``path`` (and run it, for a
    file with an execute bit): every folder above it searchable by others."""
    try:
        path = path.resolve()
        for folder in list(path.parents)[::-1]:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(path).st_mode
        return bool(mode & stat.S_IROTH) and (not mode & stat.S_IXUSR or mode & stat.S_IXOTH)
    except OSError:
        return False


def isolation() -> Isolation:
    """Whether workers can run under a uid of their own (root, and Python, its standard library
    and the site packages usable by other users), and if not, why."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return Isolation(None, "no POSIX user separation on this system")
    if os.geteuid() != 0:
        return Isolation(None, "the grader is not root, so it cannot start a worker as another "
                               "user")
    needed = [Path(sys.executable), Path(os.__file__)] + \
        [Path(p) for p in _worker_paths() if Path(p).is_dir()]
    blocked = [p for p in needed if not _reachable_by_others(p)]
    if blocked:
        return Isolation(None, f"root, but other users cannot reach {blocked[0]} (Python or its "
                               f"packages), so the worker cannot run as an unprivileged user")
    return Isolation(_UID_BASE, "root")


_JUDGING = threading.Lock()
_ISOLATION: Optional[Isolation] = None
_SLOTS = threading.Lock()
_FREE_SLOTS = list(range(64))


def _isolation() -> Isolation:
    global _ISOLATION
    if _ISOLATION is None:
        _ISOLATION = isolation()
    return _ISOLATION


# ============================================================================= processes
def _proc_ids() -> List[int]:
    try:
        return [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []


def _marked(pid: int, token: bytes, uid: Optional[int]) -> bool:
    try:
        if token in Path(f"/proc/{pid}/environ").read_bytes():
            return True
    except OSError:
        pass
    if uid is None:
        return False
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1]) == uid
    except (OSError, ValueError, IndexError):
        pass
    return False


def reap(token: str, uid: Optional[int] = None, patience: float = 5.0) -> bool:
    """Kill every process that carries ``token`` in its environment (the worker and anything it
    started, even in another session) or, with ``uid``, runs as that uid; True when none is
    left. Linux reads /proc; elsewhere the process group kill of ``_stop`` is all there is."""
    if not os.path.isdir("/proc"):
        return True
    needle = f"MINIDL_GRADE_TOKEN={token}".encode()
    me = os.getpid()
    deadline = time.monotonic() + patience
    while True:
        victims = [pid for pid in _proc_ids() if pid != me and _marked(pid, needle, uid)]
        victims = [pid for pid in victims if not _is_zombie(pid)]
        if not victims:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(POLL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def _stop(process: subprocess.Popen) -> None:
    """Kill the worker's process group (and session leader) and collect it."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        process.kill()
    except OSError:
        pass
    process.wait()


def _where_stuck(process: subprocess.Popen, log_path: Path) -> None:
    """Ask a hung worker for its traceback (faulthandler, on SIGUSR1) and wait a moment."""
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
        if b"most recent call first" in _tail(log_path, size):
            time.sleep(2 * POLL)
            break


def _tail(path: Path, start: int = 0, limit: int = 8000) -> bytes:
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(start, size - limit))
            return handle.read(limit)
    except OSError:
        return b""


def _exit_text(code: Optional[int]) -> str:
    if code is None:
        return "stopped"
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


def _fault_location(log: str, kit: Path) -> Optional[str]:
    """Where in the student's files the worker was, from faulthandler's traceback."""
    dump = log.rfind("most recent call first")
    if dump < 0:
        return None
    for match in _FRAME.finditer(log[dump:]):  # innermost frame first
        if Path(match["file"]).parent == kit:
            return f"{Path(match['file']).name} line {match['line']} (in {match['function']})"
    return None


def _last_output(log: str, lines: int = 4) -> str:
    kept = [line[:200] for line in log.splitlines() if line.strip()][-lines:]
    return ("; its last output:\n" + "\n".join(kept)) if kept else ""


# ============================================================================= the sandbox
def _worker_paths() -> List[str]:
    """The grader's import path for the worker, without any way to the installed minidl."""
    paths = []
    for entry in sys.path:
        if not entry or not os.path.exists(entry):
            continue
        if os.path.realpath(entry) == os.path.realpath(PACKAGE.parent) or \
                os.path.isdir(os.path.join(entry, "minidl")):
            continue
        paths.append(entry)
    return paths


_BOOT = ("import os, sys; lib = sys.argv.pop(1); paths = sys.argv.pop(1).split(os.pathsep); "
         "sys.path[:0] = [lib]; sys.path += [p for p in paths if p]; "
         "from minidl.exercises._worker import main; sys.exit(main())")
_VIEW_LOCK = threading.Lock()
_VIEW: Dict[str, Dict[str, str]] = {}


def _view() -> Dict[str, str]:
    with _VIEW_LOCK:
        if "sources" not in _VIEW:
            _VIEW["sources"] = view_sources()
        return _VIEW["sources"]


@dataclass
class _Sandbox:
    root: Path
    kit: Path
    home: Path
    lib: Path
    extra: Optional[Path]
    uid: Optional[int]
    token: str


def _make_sandbox(kit: Path, exercises: Sequence[Exercise], uid: Optional[int]) -> _Sandbox:
    root = Path(tempfile.mkdtemp(prefix="minidl-grade-"))
    lib, sandbox_kit, home = root / "lib", root / "kit", root / "home"
    for folder in (lib, sandbox_kit, home):
        folder.mkdir()
    build_view(lib, _view())
    for entry in sorted(kit.iterdir()) if kit.is_dir() else []:
        if entry.is_file() and not entry.is_symlink() and entry.stat().st_size <= KIT_FILE_LIMIT:
            shutil.copyfile(entry, sandbox_kit / entry.name)
    extra = None
    extras = [e for e in exercises if e.extra]
    if extras:
        extra = root / "extra"
        for exercise in extras:
            (extra / exercise.id).mkdir(parents=True)
            for name in EXTRA_FILES:  # never check.py or the teacher's reference
                shutil.copyfile(Path(exercise.extra) / name, extra / exercise.id / name)
    os.chmod(root, 0o711 if uid is not None else 0o700)
    if uid is not None:
        os.chmod(lib, 0o755)
        for path in [sandbox_kit, home, *sandbox_kit.iterdir()]:
            os.chown(path, uid, uid)
        os.chmod(sandbox_kit, 0o700)
        os.chmod(home, 0o700)
        if extra is not None:
            for path in [extra, *extra.rglob("*")]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return _Sandbox(root, sandbox_kit, home, lib, extra, uid, secrets.token_hex(16))


def _remove_sandbox(sandbox: _Sandbox) -> None:
    for folder, _, _ in os.walk(sandbox.root):
        try:
            os.chmod(folder, 0o700)
        except OSError:
            pass
    shutil.rmtree(sandbox.root, ignore_errors=True)


def _environment(sandbox: _Sandbox) -> Dict[str, str]:
    return {"PATH": os.defpath, "HOME": str(sandbox.home), "TMPDIR": str(sandbox.home),
            "LANG": "C.UTF-8", "MINIDL_DEVICE": "cpu", "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "MINIDL_GRADE_TOKEN": sandbox.token}


# ============================================================================= one worker
@dataclass
class _Run:
    """What one worker process got through."""

    results: Dict[str, ExerciseResult]
    failed_files: List[str] = field(default_factory=list)  # not to be imported again


def _student_error(exercise: Exercise, record: Dict[str, str], case: str) -> ExerciseResult:
    kind, where, stub = record["kind"], record["where"], record["stub"]
    at = f" at {where}" if where else ""
    if record["type"] in ("KitProblem", "MissingFile"):
        return ExerciseResult(exercise.id, "fail", record["message"])
    if record["type"] == "Skipped":
        return ExerciseResult(exercise.id, "error", record["message"])
    if record["type"] == "ImportFailure":
        if record["message"].startswith("SyntaxError"):
            return ExerciseResult(exercise.id, "error", f"{exercise.file} does not compile: "
                                                        f"{record['message']}{at}")
        return ExerciseResult(exercise.id, "error", f"importing {exercise.file} raised "
                                                    f"{record['message']}{at}")
    if kind == "todo":
        if stub == exercise.id and where is None:
            return ExerciseResult(exercise.id, "todo",
                                  f"not implemented: {exercise.file} uses minidl's own "
                                  f"`{exercise.unit}`, and minidl's solutions are stubs while "
                                  f"grading; write your own")
        if stub == exercise.id:
            return ExerciseResult(exercise.id, "todo",
                                  f"not implemented yet: the stub at "
                                  f"{(where or exercise.file).split(':')[0]} still raises "
                                  f"NotImplementedError; replace it with your code")
        if stub is not None and stub in by_id():
            other = by_id()[stub]
            return ExerciseResult(exercise.id, "todo",
                                  f"this check runs your `{other.unit}` (exercise {stub}, in "
                                  f"{other.file}), which is not implemented yet (or does not "
                                  f"import): do {stub} first")
        return ExerciseResult(exercise.id, "todo", f"not implemented yet: NotImplementedError"
                                                   f"{at or ' (' + record['message'] + ')'}")
    if kind == "exit":
        message = (f"your code called sys.exit({record['message']}){at}; return a value (or "
                   f"raise an exception) instead")
    elif kind == "recursion":
        message = f"endless recursion (RecursionError){at}"
    else:
        message = f"your code raised {record['type']}: {record['message']}" + (
            at if where else " (inside minidl, called with your code's result)")
    if case:
        message += f" ({case})"
    return ExerciseResult(exercise.id, "error", message)


def judge_outputs(exercise: Exercise, outputs: dict, error: Optional[dict],
                  earlier: Dict[str, ExerciseResult]) -> ExerciseResult:
    """The verdict on one exercise from what the worker sent (never raises)."""
    judges = dict(_checks.JUDGES, **extra_judges())
    ctx = Judgement(exercise, earlier)
    try:
        with _JUDGING:  # minidl's autograd state is global: one judge at a time
            judges[exercise.id](Outputs(outputs, error), ctx)
        if error is not None:  # the probe stopped early, yet the judge found no gap
            raise StudentError(error)
        result = ExerciseResult(exercise.id, "pass")
    except CheckFailure as failure:
        result = ExerciseResult(exercise.id, "fail", failure.message,
                                hint=failure.hint or exercise.hint,
                                diagnosis=failure.diagnosis)
    except StudentError as problem:
        result = _student_error(exercise, problem.record, ctx.case)
        if result.status == "error":
            result.hint = exercise.hint
    except Malformed as problem:
        result = ExerciseResult(exercise.id, "invalid",
                                f"the grading process sent outputs the grader cannot accept "
                                f"({problem}); code that writes to the grader's channel or "
                                f"changes the probe causes this")
    except Exception as problem:  # noqa: BLE001 - whatever came back, the run goes on
        result = ExerciseResult(exercise.id, "invalid",
                                f"the grader could not judge the outputs of your code "
                                f"({type(problem).__name__}: {str(problem)[:300]})")
    result.notes = list(ctx.notes)
    if result.status in ("fail", "error") and \
            not result.message.startswith(("importing ", f"{exercise.file} ")):
        for need in exercise.needs:
            if need in earlier and not earlier[need].passed:
                result.notes.append(f"this check also runs your code of exercise {need}, which "
                                    f"fails: fix {need} first")
    return result


def _run_worker(sandbox: _Sandbox, exercises: Sequence[Exercise], done: Dict[str, ExerciseResult],
                skip: Sequence[str], timeout: float, memory_mb: int,
                deny: Sequence[str]) -> _Run:
    """Grade ``exercises`` in one worker until they are done, one hangs, the worker dies or
    sends something it should not."""
    run = _Run(results={})
    ids = [e.id for e in exercises]
    table = {e.id: e for e in exercises}
    # the worker also imports the files of the exercises these checks run (``needs``)
    files = {e.file for e in exercises} | {by_id()[i].file for i in needed_ids(ids)}
    cpu_seconds = int(timeout * len(ids) + STARTUP_LIMIT)
    command = [sys.executable, "-I", "-S", "-B", "-X", "faulthandler", "-c", _BOOT,
               str(sandbox.lib), os.pathsep.join(_worker_paths()),
               "--kit", str(sandbox.kit), "--sandbox", str(sandbox.root),
               "--memory-mb", str(memory_mb), "--cpu-seconds", str(cpu_seconds)]
    for path in deny:
        command += ["--deny", path]
    for file in skip:
        command += ["--skip", file]
    if sandbox.extra is not None:
        command += ["--extra", str(sandbox.extra)]
    if sandbox.uid is not None:
        command.append("--own-uid")
    read_end, write_end = os.pipe()
    command += ["--channel", str(write_end), *ids]
    log_path = sandbox.root / f"output-{len(done)}.log"
    extra = {}
    if sandbox.uid is not None:
        extra = {"user": sandbox.uid, "group": sandbox.uid, "extra_groups": []}
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, cwd=sandbox.home, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       env=_environment(sandbox), pass_fds=(write_end,),
                                       start_new_session=os.name == "posix", close_fds=True,
                                       **extra)
    finally:
        os.close(write_end)
    launched = started = time.monotonic()
    state = "booting"            # booting -> ready -> (importing) -> running
    importing: Optional[str] = None
    current: Optional[str] = None
    position = 0                 # the next exercise expected to start
    buffer = b""
    problem: Optional[Tuple[str, str]] = None  # (status, message) that ends this worker
    exit_seen = False            # the worker exited: the pipe is read once more before giving up

    def remaining() -> List[str]:
        return [i for i in ids if i not in run.results]

    def fail_file(file: str, status: str, message: str) -> None:
        run.failed_files.append(file)
        for i in ids:
            if table[i].file == file and i not in run.results:
                run.results[i] = ExerciseResult(i, status, f"while importing {file}: {message}")

    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], POLL)
            chunk = os.read(read_end, 1 << 16) if ready else b""
            eof = bool(ready) and not chunk
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > MAX_LINE:
                lines, problem = [], ("invalid", "an event larger than the grader accepts")
            for line in lines:
                try:
                    event = decode_event(line.decode("utf-8"))
                    kind = event["event"]
                    if kind == "ready" and state == "booting":
                        state = "ready"
                    elif kind == "import" and state == "ready" and importing is None and \
                            current is None and event["file"] in files:
                        importing, started = event["file"], time.monotonic()
                    elif kind == "imported" and importing == event["file"]:
                        importing = None
                    elif kind == "start" and state == "ready" and importing is None and \
                            current is None and position < len(ids) and \
                            event["id"] == ids[position]:
                        current, started = event["id"], time.monotonic()
                        position += 1
                    elif kind == "result" and current is not None and event["id"] == current:
                        result = judge_outputs(table[current], event["outputs"], event["error"],
                                               {**done, **run.results})
                        result.seconds = round(float(event["seconds"]), 3)
                        run.results[current] = result
                        current = None
                    else:
                        raise Malformed(f"a {kind} event out of order")
                except (Malformed, UnicodeDecodeError) as error:
                    problem = ("invalid", f"{error}")
                    break
            if problem is not None:
                break
            if not remaining():
                break  # done (a thread the student left running must not keep us)
            code = process.poll()
            if eof or (code is not None and not ready):
                if not eof and not exit_seen:
                    # it may have written its last events and exited after select() looked:
                    # read the pipe once more, or a result it sent would be lost as a crash
                    exit_seen = True
                    continue
                time.sleep(POLL)
                if process.poll() is not None:
                    break
            now = time.monotonic()
            if (current is not None or importing is not None) and now - started > timeout:
                _where_stuck(process, log_path)
                where = _fault_location(_tail(log_path).decode("utf-8", "replace"), sandbox.kit)
                problem = ("timeout", f"timed out: no result after {timeout:g} s, so it was "
                                      f"stopped (an endless loop, or far too slow?)" +
                           (f"; it was at {where}" if where else ""))
                break
            if state == "booting" and now - launched > STARTUP_LIMIT:
                problem = ("crash", f"the grading process did not start within "
                                    f"{STARTUP_LIMIT:g} s" +
                           _last_output(_tail(log_path).decode("utf-8", "replace")))
                break
    finally:
        _stop(process)  # even after it exited: its process group may live on
        os.close(read_end)
    code = process.returncode
    if problem is None and remaining():
        log = _tail(log_path).decode("utf-8", "replace")
        where = _fault_location(log, sandbox.kit)
        problem = ("crash", f"crashed: the Python process running your code {_exit_text(code)}" +
                   (f", at {where}" if where else _last_output(log)))
        if state == "booting":
            problem = ("crash", f"the grading process {_exit_text(code)} before checking this "
                                f"exercise" + _last_output(log))
    if problem is not None and remaining():
        status, message = problem
        if status == "invalid":
            message = (f"the grading process sent something the grader cannot accept "
                       f"({message}); code that writes to the grader's channel causes this")
        if importing is not None:
            fail_file(importing, status, message)
        elif current is not None:
            run.results[current] = ExerciseResult(current, status, message,
                                                  seconds=round(time.monotonic() - started, 3))
        elif state == "booting" and status == "crash":
            for i in remaining():
                run.results[i] = ExerciseResult(i, status, message)
        else:
            first = remaining()[0]
            run.results[first] = ExerciseResult(first, status, message)
    return run


# ============================================================================= a kit
def _answer_key_reason(kit: Path) -> Optional[str]:
    manifest = kit / MANIFEST
    try:
        if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")).get(
                "solutions") is True:
            return f"its {MANIFEST} says it was exported with --solutions"
    except (ValueError, OSError, AttributeError):
        pass
    for file in kit_files():
        try:
            with open(kit / file, encoding="utf-8", errors="replace") as handle:
                if handle.read(200).startswith('"""Answer key:'):
                    return f"{file} is a file of the answer key"
        except OSError:
            continue
    return None


def grade_kit(kit: os.PathLike, exercises: Optional[Sequence[Exercise]] = None,
              timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB,
              name: Optional[str] = None, allow_solutions: bool = False,
              deny: Sequence[os.PathLike] = ()) -> KitResult:
    """Grade the exercises of one kit folder (all of them unless ``exercises`` is given) in a
    sandbox; ``deny`` adds paths the worker may not open (the class folder)."""
    kit = Path(kit).resolve()
    chosen = list(exercises) if exercises is not None else list(all_exercises())
    began = time.monotonic()
    refused = None if allow_solutions else _answer_key_reason(kit)
    if refused:
        results = [ExerciseResult(e.id, "refused", f"not graded: this kit is the answer key "
                                                   f"({refused}); a teacher checking the key "
                                                   f"passes --allow-solutions")
                   for e in chosen]
        return KitResult(name or kit.name, kit, results, 0.0)
    identity = _isolation()
    slot = None
    if identity.uid is not None:
        with _SLOTS:
            slot = _FREE_SLOTS.pop(0)
    uid = None if slot is None else identity.uid + slot
    sandbox = _make_sandbox(kit, chosen, uid)
    denied = [str(PACKAGE), str(kit), *[str(Path(p).resolve()) for p in deny],
              *[e.extra for e in chosen if e.extra]]  # the teacher's checks and references
    results: Dict[str, ExerciseResult] = {}
    skip: List[str] = []
    try:
        pending = list(chosen)
        while pending:
            run = _run_worker(sandbox, pending, results, skip, timeout, memory_mb, denied)
            results.update(run.results)
            new_skips = [f for f in run.failed_files if f not in skip]
            skip += new_skips
            reap(sandbox.token, uid)
            # no progress: never loop forever (a needed file that failed to import, and is
            # skipped from now on, is progress: the next worker grades without it)
            if not run.results and not new_skips:
                for e in pending:
                    results[e.id] = ExerciseResult(e.id, "crash", "the grading process made no "
                                                                  "progress")
            pending = [e for e in pending if e.id not in results]
    finally:
        reap(sandbox.token, uid)
        _remove_sandbox(sandbox)
        if slot is not None:
            with _SLOTS:
                _FREE_SLOTS.append(slot)
    ordered = [results[e.id] for e in chosen]
    return KitResult(name or kit.name, kit, ordered, round(time.monotonic() - began, 3))


# ============================================================================= what PATH means
_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".7z", ".rar", ".gz")
_OUTPUTS = ("grades.csv", "feedback")


def is_kit(directory: os.PathLike) -> bool:
    """Whether ``directory`` looks like a kit: it has the manifest or any kit file."""
    directory = Path(directory)
    return directory.is_dir() and ((directory / MANIFEST).is_file() or
                                   any((directory / e.file).is_file() for e in all_exercises()))


def kit_warnings(kit: Path, name: str) -> List[str]:
    """Files of a kit the grader will not read, said out loud."""
    warnings = []
    known = {e.file for e in all_exercises()} | {MANIFEST, "README.md"}
    for entry in sorted(kit.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_symlink():
            warnings.append(f"{name}/{entry.name}: a symbolic link, not copied for grading")
        elif entry.is_file() and entry.suffix == ".py" and entry.name not in known:
            similar = [f for f in known if f[:-3] in entry.name]
            warnings.append(f"{name}/{entry.name}: not a file of the kit, not graded" +
                            (f" (the grader reads {similar[0]})" if similar else ""))
        elif entry.is_file() and entry.stat().st_size > KIT_FILE_LIMIT:
            warnings.append(f"{name}/{entry.name}: larger than {KIT_FILE_LIMIT // 2 ** 20} MiB, "
                            f"not copied for grading")
    return warnings


def resolve(path: os.PathLike) -> List[Tuple[str, Path, Optional[List[Exercise]]]]:
    """(name, kit folder, exercises or None for all) for a kit file, a kit, or a folder of kits."""
    return resolve_with_warnings(path)[0]


def resolve_with_warnings(path: os.PathLike) -> Tuple[List[Tuple[str, Path, Optional[List[
        Exercise]]]], List[str]]:
    """``resolve``, and what in PATH is skipped and why (a kit one level too deep, an archive,
    a stray file)."""
    path = Path(path)
    if path.is_file():
        exercises = [e for e in all_exercises() if e.file == path.name]
        if not exercises:
            raise GradeError(f"{path} is not a kit file; kit files are "
                             f"{', '.join(sorted({e.file for e in all_exercises()}))}")
        return [(path.resolve().parent.name, path.resolve().parent, exercises)], []
    if not path.is_dir():
        raise GradeError(f"{path}: no such file or folder")
    if is_kit(path):
        return [(path.resolve().name, path, None)], kit_warnings(path, path.resolve().name)
    kits, warnings = [], []
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or entry.name in _OUTPUTS:
            continue
        if entry.is_dir() and is_kit(entry):
            kits.append(entry)
            warnings += kit_warnings(entry, entry.name)
        elif entry.is_dir():
            nested = sorted(d for d in entry.iterdir() if d.is_dir() and is_kit(d))
            if nested:
                warnings.append(f"{entry.name}/: skipped — no kit at its top, but "
                                f"{entry.name}/{nested[0].name}/ is one: move its files up one "
                                f"level to grade it")
            else:
                warnings.append(f"{entry.name}/: skipped — not a kit (no {MANIFEST} or ex_*.py)")
        elif entry.name.lower().endswith(_ARCHIVES):
            warnings.append(f"{entry.name}: skipped — an archive; unpack it into a folder of "
                            f"its own to grade it")
        else:
            warnings.append(f"{entry.name}: skipped — a file, not a kit folder")
    if not kits:
        raise GradeError(f"{path} is neither a kit (no {MANIFEST} or ex_*.py files) nor a folder "
                         f"of kits (one sub-folder per student); make a kit with "
                         f"`minidl exercises export DIR`" +
                         ("".join(f"\n  {w}" for w in warnings)))
    return [(d.name, d, None) for d in kits], warnings


def _package_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        try:
            digest.update(path.as_posix().encode() + path.read_bytes())
        except OSError:
            pass
    return digest.hexdigest()


def grade_path(path: os.PathLike, timeout: float = DEFAULT_TIMEOUT,
               memory_mb: int = DEFAULT_MEMORY_MB, only: Optional[Sequence[str]] = None,
               jobs: int = 1, on_result=None, allow_solutions: bool = False,
               weights: Optional[Dict[str, float]] = None,
               warnings: Optional[List[str]] = None) -> List[KitResult]:
    """Grade whatever ``path`` is (see ``resolve``); kits of a folder run ``jobs`` at a time.
    ``on_result(kit_result)`` is called in order as soon as each kit is graded; what was
    skipped is appended to ``warnings``. Returns after every worker of the run is gone."""
    if only:
        unknown = set(only) - set(by_id())
        if unknown:
            raise GradeError(f"unknown exercise(s) {', '.join(sorted(unknown))}; the exercises "
                             f"are {', '.join(e.id for e in all_exercises())}")
    targets, skipped = resolve_with_warnings(path)
    if warnings is not None:
        warnings.extend(skipped)
    folder = Path(path).resolve() if len(targets) > 1 or not is_kit(path) and \
        Path(path).is_dir() else None
    before = _package_digest()
    graded = []

    def grade(target):
        name, kit, exercises = target
        exercises = exercises if exercises is not None else list(all_exercises())
        if only:
            exercises = [e for e in exercises if e.id in only]
        result = grade_kit(kit, exercises, timeout, memory_mb, name=name,
                           allow_solutions=allow_solutions,
                           deny=[folder] if folder is not None else [])
        result.warnings = [w for w in skipped if w.startswith(f"{name}/")]
        result.weights = dict(weights or {})
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for result in pool.map(grade, targets):
            graded.append(result)
            if on_result is not None:
                on_result(result)
    if _package_digest() != before and warnings is not None:
        warnings.append(f"the installed minidl ({PACKAGE}) changed while grading; this run's "
                        f"grades are unaffected (the grader loaded it before), but check the "
                        f"installation before the next run")
    return graded


# ============================================================================= reports
def _wrap(text: str, indent: str, width: int = 100) -> str:
    lines = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, initial_indent=indent, subsequent_indent=indent,
                               break_long_words=False, break_on_hyphens=False) or [indent]
    return "\n".join(lines)


def _check_hints(hints: str) -> None:
    if hints not in HINTS:
        raise GradeError(f"hints must be one of {', '.join(HINTS)}, got {hints!r}")


def feedback_lines(result: ExerciseResult, hints: str = "diagnose") -> List[str]:
    """What the student is told about one exercise, by the hint policy: ``none`` — the verdict
    only; ``diagnose`` — what is wrong and where, and the recognised mistake; ``full`` — also
    the hint, which may give the formula."""
    _check_hints(hints)
    if result.passed:
        return [f"note: {n}" for n in result.notes] if hints != "none" else []
    if hints == "none":
        return [STATUS_WORDS.get(result.status, result.status)]
    lines = [result.message]
    if result.diagnosis:
        lines.append(f"diagnosis: {result.diagnosis}")
    lines += [f"note: {n}" for n in result.notes]
    if hints == "full" and result.hint and result.status not in ("todo", "timeout", "crash",
                                                                 "refused"):
        lines.append(f"hint: {result.hint}")
    return lines


def _points(value: float) -> str:
    return f"{value:g}"


def format_kit(result: KitResult, hints: str = "diagnose") -> str:
    """The report of one kit: PASS/FAIL per exercise with what is wrong, then the score."""
    titles = {e.id: e.title for e in all_exercises()}
    width = max([len(r.id) for r in result.results] + [8])
    out = [f"{result.name} ({result.path}): {result.total} exercise"
           f"{'s' if result.total != 1 else ''}"]
    for warning in result.warnings:
        out.append(_wrap(f"warning: {warning}", "  "))
    for r in result.results:
        out.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.id:<{width}}  {titles.get(r.id, '')}")
        for line in feedback_lines(r, hints):
            out.append(_wrap(line, " " * 8))
    share = 100 * result.passed / max(result.total, 1)
    out.append(f"  score: {result.passed}/{result.total} ({share:.0f}%), points "
               f"{_points(result.points)}/{_points(result.max_points)}")
    return "\n".join(out)


def feedback_markdown(result: KitResult, hints: str = "diagnose") -> str:
    """A student's feedback file: each exercise's verdict and message (by the hint policy)."""
    titles = {e.id: e.title for e in all_exercises()}
    lines = [f"# Feedback for {_md(result.name)}", "",
             f"Score: {result.passed}/{result.total} exercises, "
             f"{_points(result.points)}/{_points(result.max_points)} points "
             f"({100 * result.score:.0f} %).", ""]
    if result.warnings:
        lines += ["Warnings:", ""] + [f"- {_md(w)}" for w in result.warnings] + [""]
    lines += ["| exercise | points | verdict |", "|---|---|---|"]
    for r in result.results:
        verdict = "pass" if r.passed else STATUS_WORDS.get(r.status, r.status)
        points = result.weight(r.id) if r.passed else 0
        lines.append(f"| `{r.id}` | {_points(points)}/{_points(result.weight(r.id))} | "
                     f"{verdict} |")
    for r in result.results:
        body = feedback_lines(r, hints)
        if not body and r.passed:
            continue
        lines += ["", f"## {r.id}: {'pass' if r.passed else 'FAIL'}", "",
                  f"{_md(titles.get(r.id, ''))}", ""]
        lines += [f"- {_md(line)}" for line in body]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text for a Markdown file: no raw HTML from a student's name or message."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = str(value)
    if text and (text[0] in "=+-@\t\r" or text.startswith(("\uff1d", "\uff0b", "\uff0d"))):
        return "'" + text
    return text


def csv_text(results: Sequence[KitResult]) -> str:
    """One row per kit: the student (kit folder name), 0/1 per exercise, passed, total, points,
    max_points, score (points / max_points)."""
    ids = [e.id for e in all_exercises() if any(r.id == e.id for k in results
                                                for r in k.results)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *ids, "passed", "total", "points", "max_points", "score"])
    for kit in results:
        passed = {r.id: int(r.passed) for r in kit.results}
        writer.writerow([_cell(kit.name), *[passed.get(i, "") for i in ids], kit.passed,
                         kit.total, _points(kit.points), _points(kit.max_points),
                         f"{kit.score:.3f}"])
    return buffer.getvalue()


def _write_atomically(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def write_csv(results: Sequence[KitResult], path: os.PathLike) -> Path:
    """Write ``csv_text`` atomically (a temporary file, then a rename)."""
    return _write_atomically(Path(path), csv_text(results))


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.\-]", "_", name).lstrip(".") or "kit"


def write_feedback(results: Sequence[KitResult], folder: os.PathLike,
                   hints: str = "diagnose") -> List[Path]:
    """One Markdown file per kit, ``folder/<student>.md``, each written atomically."""
    return [_write_atomically(Path(folder) / f"{_safe_name(r.name)}.md",
                              feedback_markdown(r, hints)) for r in results]


def load_weights(path: os.PathLike) -> Dict[str, float]:
    """A teacher's weights: a JSON object ``{"id": points}`` or lines ``id = points`` (also
    ``id,points`` or ``id: points``; ``#`` starts a comment)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = re.split(r"\s*[=,:]\s*|\s+", line, maxsplit=1)
            if len(parts) != 2:
                raise GradeError(f"{path}:{number}: write `exercise_id = points`")
            data[parts[0]] = parts[1]
    if not isinstance(data, dict):
        raise GradeError(f"{path}: weights must map exercise ids to points")
    weights = {}
    for key, value in data.items():
        if key not in by_id():
            raise GradeError(f"{path}: unknown exercise {key!r}")
        try:
            weights[key] = float(value)
        except (TypeError, ValueError):
            raise GradeError(f"{path}: the weight of {key} is not a number: {value!r}") from None
        if weights[key] < 0:
            raise GradeError(f"{path}: the weight of {key} is negative")
    return weights


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
    parser.add_argument("--feedback", default=None,
                        help="write one Markdown feedback file per student into this folder "
                             "(default for a folder of kits: PATH/feedback)")
    parser.add_argument("--hints", choices=HINTS, default="diagnose",
                        help="what students are told: none (the verdict), diagnose (what is "
                             "wrong, where, and the recognised mistake; the default), full "
                             "(also the formula)")
    parser.add_argument("--weights", default=None,
                        help="a file of points per exercise (`id = points` lines or JSON)")
    parser.add_argument("--extra", default=None,
                        help="a folder of the teacher's own exercises (see docs/teacher.md)")
    parser.add_argument("--allow-solutions", action="store_true",
                        help="grade a kit exported with --solutions (the answer key)")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="kits graded at the same time (default: up to 4)")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                        help=f"address-space limit per worker in MiB, 0 for none "
                             f"(default {DEFAULT_MEMORY_MB})")


def run(args: argparse.Namespace) -> int:
    """Grade, print the reports, then (for a folder) write the CSV and the feedback files;
    0 if every exercise passed, 1 if any failed, 2 if PATH is not gradable."""
    only = [i.strip() for i in args.only.split(",") if i.strip()] if args.only else None
    printed = []
    hints = getattr(args, "hints", "diagnose")

    def show(result: KitResult) -> None:
        if printed:
            print()
        print(format_kit(result, hints), flush=True)
        printed.append(result)

    warnings: List[str] = []
    try:
        if getattr(args, "extra", None):
            load_extra(Path(args.extra))
        weights = load_weights(args.weights) if getattr(args, "weights", None) else None
        folder = Path(args.path).is_dir() and not is_kit(args.path)
        print(f"isolation: {_isolation().describe()}", file=sys.stderr)
        results = grade_path(args.path, timeout=args.timeout, memory_mb=args.memory_mb,
                             only=only, jobs=args.jobs, on_result=show,
                             allow_solutions=getattr(args, "allow_solutions", False),
                             weights=weights, warnings=warnings)
    except (GradeError, ValueError, OSError) as error:
        print(f"minidl grade: {error}", file=sys.stderr)
        return 2
    for warning in warnings:
        if not any(warning.startswith(f"{r.name}/") for r in results):
            print(f"minidl grade: warning: {warning}", file=sys.stderr)
    target = args.csv or (Path(args.path) / "grades.csv" if folder else None)
    feedback = getattr(args, "feedback", None) or (Path(args.path) / "feedback" if folder
                                                   else None)
    if folder:
        print(f"\n{len(results)} kits: " + ", ".join(
            f"{r.name} {_points(r.points)}/{_points(r.max_points)}" for r in results))
        if warnings:
            print(f"{len(warnings)} warning(s): " + "; ".join(warnings))
    # Every worker is gone by now (grade_path returns after reaping them all).
    if target is not None:
        print(f"scores written to {write_csv(results, target)}")
    if feedback is not None:
        written = write_feedback(results, feedback, hints)
        print(f"feedback for {len(written)} student(s) written to {feedback}")
    return 0 if all(r.passed == r.total for r in results) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``minidl grade`` on its own (used by ``python ex_sigmoid.py``)."""
    parser = argparse.ArgumentParser(prog="minidl grade", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
