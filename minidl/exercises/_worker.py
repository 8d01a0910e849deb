"""The grading worker: runs the checks of some exercises next to a student's code.

``grade.py`` starts it as its own process (never runs student code itself), as

    python -B -X faulthandler -c "...main()" MINIDL_ROOT --kit KIT --results FILE ID [ID ...]

It lowers its own resource limits (memory, CPU time, file size), imports each kit file when an
exercise needs it, runs the exercise's check and appends one JSON object per line to FILE:

    {"event": "start", "id": ...}          before an exercise's check
    {"event": "import", "file": ...}       before importing a kit file, and
    {"event": "imported", "file": ...}     after it (a crash or hang in between fails every
                                           exercise of that file)
    {"event": "result", "id": ..., "status": ..., "message": ..., "hint": ..., "notes": [...],
     "seconds": ...}

The parent watches FILE: an exercise that started without a result within its time limit is a
hang (the parent kills the process group), a process that dies mid-exercise a crash; either way
the parent records that exercise as failed and starts a fresh worker for the rest.
"""
from __future__ import annotations

import argparse
import faulthandler
import importlib.util
import json
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

FILE_SIZE_LIMIT = 64 * 2 ** 20


def _limit_resources(memory_mb: int, cpu_seconds: int) -> None:
    """Lower this process's limits (never raise them): a runaway allocation, loop or print
    fails the exercise instead of taking the machine down. Skipped where unsupported."""
    try:
        import resource
    except ImportError:  # Windows: the parent's time limit still applies
        return
    limits = [(getattr(resource, "RLIMIT_CPU", None), cpu_seconds),
              (getattr(resource, "RLIMIT_FSIZE", None), FILE_SIZE_LIMIT),
              (getattr(resource, "RLIMIT_CORE", None), 0)]  # a crash leaves no core file
    if memory_mb > 0:
        limits.append((getattr(resource, "RLIMIT_AS", None), memory_mb * 2 ** 20))
    for limit, value in limits:
        if limit is None:
            continue
        try:
            soft, hard = resource.getrlimit(limit)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            if soft == resource.RLIM_INFINITY or value < soft:
                resource.setrlimit(limit, (value, hard))
        except (ValueError, OSError):
            pass


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


class _KitImportError(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Worker:
    def __init__(self, kit: Path, results: Any):
        self.kit, self.results = kit, results
        self.modules: Dict[str, Any] = {}

    def emit(self, **event: Any) -> None:
        self.results.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.results.flush()

    def load(self, file: str) -> Any:
        """The student's kit file as a module (imported once; a failure is remembered)."""
        if file in self.modules:
            cached = self.modules[file]
            if isinstance(cached, _KitImportError):
                raise cached
            return cached
        path = self.kit / file
        if not path.is_file():
            error = _KitImportError("fail", f"{file} is missing from the kit ({self.kit}); "
                                            f"export a fresh kit to get it back")
            self.modules[file] = error
            raise error
        name = "minidl_kit_" + re.sub(r"\W", "_", path.stem)
        self.emit(event="import", file=file)
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except SyntaxError as error:
            result = _KitImportError("error", f"{file} does not compile: SyntaxError "
                                              f"({error.msg}) at {_where(error, self.kit)}")
        except NotImplementedError as error:
            result = _KitImportError("error", f"importing {file} raised NotImplementedError at "
                                              f"{_where(error, self.kit)}; stubs belong inside "
                                              f"functions")
        except SystemExit as error:
            result = _KitImportError("error", f"importing {file} called sys.exit({error.code}) "
                                              f"at {_where(error, self.kit)}")
        except Exception as error:  # noqa: BLE001 - the student's module may raise anything
            result = _KitImportError("error", f"importing {file} raised "
                                              f"{type(error).__name__}: {error} at "
                                              f"{_where(error, self.kit)}")
        else:
            result = module
        self.emit(event="imported", file=file)
        self.modules[file] = result
        if isinstance(result, _KitImportError):
            raise result
        return result

    def run(self, exercise_id: str) -> Dict[str, Any]:
        from minidl.exercises.assertions import CheckFailure, Context
        from minidl.exercises.checks import CHECKS
        from minidl.exercises.registry import by_id
        exercise = by_id()[exercise_id]
        context = None
        status, message, hint = "pass", "", None
        try:
            context = Context(self.load(exercise.file), exercise)
            CHECKS[exercise_id](context)
        except _KitImportError as error:
            status, message = error.status, error.message
        except CheckFailure as failure:
            status, message, hint = "fail", failure.message, failure.hint or exercise.hint
        except NotImplementedError as error:
            where = _where(error, self.kit)
            status = "todo"
            if where and f'"exercise {exercise_id} is not implemented yet"' in where:
                message = (f"not implemented yet: the stub at {where.split(':')[0]} still "
                           f"raises NotImplementedError; replace it with your code")
            else:
                message = ("not implemented yet: NotImplementedError " +
                           (f"at {where}" if where else f"({error})"))
        except SystemExit as error:
            status, hint = "error", exercise.hint
            message = (f"your code called sys.exit({error.code}) at {_where(error, self.kit)}; "
                       f"return a value (or raise an exception) instead")
        except RecursionError as error:
            status, hint = "error", exercise.hint
            message = f"endless recursion (RecursionError) at {_where(error, self.kit)}"
        except BaseException as error:  # noqa: BLE001 - report anything the student's code does
            if isinstance(error, KeyboardInterrupt):
                raise
            where = _where(error, self.kit)
            status, hint = "error", exercise.hint
            message = f"your code raised {type(error).__name__}: {error}" + (
                f" at {where}" if where else " (inside minidl, called with your code's result)")
        if context is not None and context.case and status == "error":
            message += f" ({context.case})"
        notes = context.notes if context is not None and status != "todo" else []
        return {"id": exercise_id, "status": status, "message": message, "hint": hint,
                "notes": notes}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="minidl-grade-worker")
    parser.add_argument("--kit", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=600)
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args(argv)
    _limit_resources(args.memory_mb, args.cpu_seconds)
    if hasattr(signal, "SIGUSR1"):  # on a hang the grader asks where this process is stuck
        faulthandler.register(signal.SIGUSR1, all_threads=False)
    kit = Path(args.kit).resolve()
    sys.path.append(str(kit))  # as when the student runs a kit file: it may import its siblings
    # Import minidl and the checks before the first "start": startup is no exercise's time.
    importlib.import_module("minidl.exercises.checks")
    with open(args.results, "a", encoding="utf-8") as results:
        worker = Worker(kit, results)
        for exercise_id in args.ids:
            worker.emit(event="start", id=exercise_id)
            began = time.perf_counter()
            result = worker.run(exercise_id)
            worker.emit(event="result", seconds=round(time.perf_counter() - began, 3), **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
