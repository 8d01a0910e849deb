"""The grading worker: runs a student's code and sends back what it returned — nothing more.

``grade.py`` starts it in a throw-away sandbox (never runs student code itself), as

    python -I -S -B -X faulthandler -c BOOT SANDBOX/lib PATHS --kit SANDBOX/kit --channel FD
        [--deny PATH ...] [--skip FILE ...] ID [ID ...]

``SANDBOX/lib`` holds the worker's view of minidl: minidl's source with every exercise's
solution replaced by a stub (``view.py``), so the reference solutions cannot be imported here;
the boot code puts it first on ``sys.path`` and drops any other way to find minidl. The worker
then

1. lowers its resource limits (memory, CPU time, file size, processes);
2. imports minidl (the view) and the probes of ``checks.py``;
3. installs an audit hook (``_AuditPolicy``): from now on, no file may be written, removed or
   renamed outside the sandbox, nothing under a ``--deny`` path may be opened (the installed
   minidl, the class folder), and no process, signal to another process, socket or ``ctypes``
   call may be made;
4. imports each kit file of the exercises — and of the exercises they ``need``, whose code
   their checks run too (the student's code runs for the first time here) — and plugs its
   classes and functions into the view, in place of the stubs — the worker's minidl is then
   minidl as the student completed it;
5. for each exercise, runs its probe: calls the student's code on fixed inputs and records the
   outputs (values, gradients, the inputs after the call), and sends them over the inherited
   pipe ``FD`` (see ``protocol.py`` for the events). The grader judges them.

The worker holds no expected value and no verdict, so code that rewrites this module, the
probes, numpy or the events it sends can only change *what the student's code returned* —
which the grader then judges like any other answer.
"""
from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.util
import json
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

FILE_SIZE_LIMIT = 64 * 2 ** 20
PROCESS_LIMIT = 64


def _limit_resources(memory_mb: int, cpu_seconds: int, processes: bool) -> None:
    """Lower this process's limits (never raise them). Skipped where unsupported."""
    try:
        import resource
    except ImportError:  # Windows: the parent's time limit still applies
        return
    limits = [(getattr(resource, "RLIMIT_CPU", None), cpu_seconds),
              (getattr(resource, "RLIMIT_FSIZE", None), FILE_SIZE_LIMIT),
              (getattr(resource, "RLIMIT_CORE", None), 0)]
    if memory_mb > 0:
        limits.append((getattr(resource, "RLIMIT_AS", None), memory_mb * 2 ** 20))
    if processes:  # only under a uid of its own: RLIMIT_NPROC counts all of a user's processes
        limits.append((getattr(resource, "RLIMIT_NPROC", None), PROCESS_LIMIT))
    for limit, value in limits:
        if limit is None:
            continue
        try:
            soft, hard = resource.getrlimit(limit)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            if soft != resource.RLIM_INFINITY:
                value = min(value, soft)
            resource.setrlimit(limit, (value, value))  # hard too: student code cannot raise it
        except (ValueError, OSError):
            pass


# ============================================================================= the audit hook
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FORBIDDEN_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                     "os.forkpty", "subprocess.Popen", "pty.spawn", "os.startfile", "os.killpg",
                     "os.setuid", "os.setgid", "socket.connect", "socket.bind", "socket.sendto",
                     "socket.sendmsg", "os.chroot", "resource.setrlimit", "resource.prlimit",
                     "signal.pthread_kill", "os.pidfd_open")
_PATH_EVENTS = {"os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.mkdir": (0,),
                "os.chmod": (0,), "os.chown": (0,), "os.link": (0, 1), "os.symlink": (0, 1),
                "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,),
                "shutil.copyfile": (1,), "shutil.copytree": (1,), "shutil.move": (0, 1),
                "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,)}
_LIST_EVENTS = ("os.listdir", "os.scandir", "glob.glob")


class _AuditPolicy:
    """What student code may do in the worker (see the module docstring). An audit hook cannot
    be removed from Python; it is no security boundary against native code, which is why
    ``ctypes`` is refused too."""

    def __init__(self, sandbox: Path, deny: Sequence[str]):
        self.sandbox = os.path.realpath(sandbox)
        self.deny = [os.path.realpath(p) for p in deny]

    def _inside(self, path: Any, roots: Sequence[str]) -> bool:
        if isinstance(path, int):
            return False
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)

    def _writable(self, path: Any) -> bool:
        if isinstance(path, int) or path is None:
            return True  # an fd the process already holds
        return self._inside(path, [self.sandbox]) or os.fsdecode(path) == os.devnull

    def __call__(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if self._inside(path, self.deny):
                raise PermissionError(f"the grader does not let student code open {path}")
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writing and not self._writable(path):
                raise PermissionError(f"the grader does not let student code write {path} "
                                      f"(only files in its own scratch folder)")
        elif event in _PATH_EVENTS:
            for k in _PATH_EVENTS[event]:
                if k < len(args) and not self._writable(args[k]):
                    raise PermissionError(f"the grader does not let student code change "
                                          f"{args[k]} ({event})")
        elif event in _LIST_EVENTS:
            if args and self._inside(args[0], self.deny):
                raise PermissionError(f"the grader does not let student code list {args[0]}")
        elif event == "os.kill":
            if args and args[0] not in (0, os.getpid()):
                raise PermissionError("the grader does not let student code signal other "
                                      "processes")
        elif event.startswith("ctypes.") or event in _FORBIDDEN_EVENTS or \
                event.startswith(_FORBIDDEN_EVENTS):
            raise PermissionError(f"the grader does not let student code do {event}")


# ============================================================================= the worker
def _where(error: BaseException, kit: Path) -> Optional[str]:
    """'ex_matmul.py line 31: `ga = gy @ b`' — the last place in the student's files."""
    if isinstance(error, SyntaxError) and error.filename:
        text = f": `{error.text.strip()}`" if error.text and error.text.strip() else ""
        return f"{Path(error.filename).name} line {error.lineno}{text}"
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if Path(f.filename).resolve().parent == kit]
    if not frames:
        return None
    frame = frames[-1]
    code = f": `{frame.line.strip()}`" if frame.line and frame.line.strip() else ""
    return f"{Path(frame.filename).name} line {frame.lineno}{code}"


_STUB = re.compile(r"^exercise ([a-z][a-z0-9_]*) is not implemented yet")


def _error_record(error: BaseException, kit: Path) -> Dict[str, Any]:
    kind = "error"
    stub = None
    if isinstance(error, NotImplementedError):
        match = _STUB.match(str(error))
        stub = match.group(1) if match else None
        kind = "todo"
    elif isinstance(error, SystemExit):
        kind = "exit"
    elif isinstance(error, RecursionError):
        kind = "recursion"
    message = str(error.code if isinstance(error, SystemExit) else error)
    return {"kind": kind, "type": type(error).__name__[:80], "message": message[:2000],
            "where": _where(error, kit), "stub": stub}


class Worker:
    def __init__(self, kit: Path, channel: int):
        self.kit, self.channel = kit, channel
        self.modules: Dict[str, Any] = {}

    def emit(self, **event: Any) -> None:
        data = (json.dumps(event, ensure_ascii=False, allow_nan=True) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self.channel, view)
            view = view[written:]

    def load(self, file: str) -> None:
        """Import one kit file (the student's code runs here); a failure is remembered."""
        path = self.kit / file
        if not path.is_file():
            self.modules[file] = {"kind": "error", "type": "MissingFile", "where": None,
                                  "stub": None,
                                  "message": f"{file} is missing from the kit; export a fresh kit "
                                             f"to get it back"}
            return
        name = "minidl_kit_" + re.sub(r"\W", "_", path.stem)
        self.emit(event="import", file=file)
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except BaseException as error:  # noqa: BLE001 - the student's module may raise anything
            if isinstance(error, KeyboardInterrupt):
                raise
            record = _error_record(error, self.kit)
            record["type"] = "ImportFailure"
            record["message"] = f"{type(error).__name__}: {record['message']}"[:2000]
            if isinstance(error, SyntaxError):
                record["message"] = f"SyntaxError ({error.msg})"
            record["kind"] = "error"
            self.modules[file] = record
        else:
            self.modules[file] = module
        self.emit(event="imported", file=file)

    def plug(self, exercises: Sequence[Any]) -> None:
        """Put the student's classes and functions into the view of minidl, in place of the
        stubs, wherever minidl's modules refer to them."""
        from minidl.exercises.registry import plug_unit
        for exercise in exercises:
            module = self.modules.get(exercise.file)
            if isinstance(module, dict) or module is None:
                continue
            student = getattr(module, exercise.unit, None)
            if student is not None:
                plug_unit(exercise, student)

    def run(self, exercise: Any) -> Dict[str, Any]:
        from minidl.exercises.assertions import KitProblem, Recorder
        from minidl.exercises.checks import PROBES
        recorder = Recorder()
        error = None
        module = self.modules.get(exercise.file)
        if isinstance(module, dict):
            error = module
        else:
            try:
                PROBES[exercise.id](_Kit(module, exercise), recorder)
            except KitProblem as problem:
                error = {"kind": "error", "type": "KitProblem", "message": problem.message,
                         "where": None, "stub": None}
            except BaseException as caught:  # noqa: BLE001 - report anything the code does
                if isinstance(caught, KeyboardInterrupt):
                    raise
                error = _error_record(caught, self.kit)
        return {"outputs": recorder.outputs, "error": error}


class _Kit:
    """The student's kit module, as the probes see it."""

    def __init__(self, module: Any, exercise: Any):
        self.module, self.exercise = module, exercise

    def get(self, name: str) -> Any:
        from minidl.exercises.assertions import KitProblem
        try:
            return getattr(self.module, name)
        except AttributeError:
            raise KitProblem(f"{self.exercise.file} does not define `{name}` any more; keep the "
                             f"names of the kit (the grader imports `{name}` from this "
                             f"file)") from None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="minidl-grade-worker")
    parser.add_argument("--kit", required=True)
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=600)
    parser.add_argument("--own-uid", action="store_true")
    parser.add_argument("--deny", action="append", default=[])
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--extra", default=None)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    _limit_resources(args.memory_mb, args.cpu_seconds, args.own_uid)
    if hasattr(signal, "SIGUSR1"):  # on a hang the grader asks where this process is stuck
        faulthandler.register(signal.SIGUSR1, all_threads=False)
    kit = Path(args.kit).resolve()
    sys.path.append(str(kit))  # as when the student runs a kit file: it may import its siblings
    import numpy  # noqa: F401 - imported before the audit hook: it reads files as it starts
    import minidl  # noqa: F401
    from minidl.exercises import checks, registry
    if args.extra:
        registry.load_extra(Path(args.extra), with_judges=False)
    checks.PROBES.update(registry.extra_probes())
    exercises = [registry.by_id()[i] for i in args.ids]
    # the exercises whose code these checks run too: their files are imported and plugged even
    # when a fresh worker grades only the rest of a kit, or one kit file is graded
    needed = [registry.by_id()[i] for i in registry.needed_ids(args.ids)]
    worker = Worker(kit, args.channel)
    worker.emit(event="ready")
    sys.addaudithook(_AuditPolicy(Path(args.sandbox), args.deny))
    for file in dict.fromkeys(e.file for e in exercises + needed):
        if file not in args.skip:
            worker.load(file)
    for file in args.skip:
        worker.modules[file] = {"kind": "error", "type": "Skipped", "where": None, "stub": None,
                                "message": f"{file} was not imported again (it failed before)"}
    worker.plug(needed + exercises)
    for exercise in exercises:
        worker.emit(event="start", id=exercise.id)
        began = time.perf_counter()
        result = worker.run(exercise)
        worker.emit(event="result", id=exercise.id, seconds=round(time.perf_counter() - began, 3),
                    **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
