"""The ``minidl exercises ...`` and ``minidl grade ...`` sub-commands.

``minidl/cli.py`` registers them with ``add_subcommands(sub)``; until then (or without it)
``python -m minidl.exercises export DIR`` and ``python -m minidl.exercises grade PATH`` work too.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _export(args: argparse.Namespace) -> int:
    from minidl.exercises.export import ExerciseMarkerError, export_kit
    try:
        written = export_kit(args.directory, solutions=args.solutions, force=args.force,
                             extra=args.extra)
    except (FileExistsError, ExerciseMarkerError, ValueError) as error:
        print(f"minidl exercises export: {error}", file=sys.stderr)
        return 2
    kind = "answer key" if args.solutions else "student kit"
    print(f"wrote the {kind} to {args.directory}: "
          + ", ".join(p.name for p in written))
    if args.solutions:
        print("this is the answer key: do not hand it out; `minidl grade` refuses it unless "
              "given --allow-solutions")
    else:
        print(f"students: read {args.directory}/README.md, fill in the stubs, then run "
              f"`minidl grade {args.directory}`")
    return 0


def _list(args: argparse.Namespace) -> int:
    from minidl.exercises.registry import EXERCISES
    width = max(len(e.id) for e in EXERCISES)
    for e in EXERCISES:
        lesson = f"lesson {e.lesson:<2}" if e.lesson else " " * 9
        print(f"{e.id:<{width}}  {e.file:<28} {lesson}  {e.weight:>3g} pt  {e.title}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from minidl.exercises.grade import run
    return run(args)


def _add_export_and_list(sub) -> None:
    e = sub.add_parser("export", help="write the student kit (or the answer key) into DIR",
                       description="Write the student kit: minidl's source with each "
                                   "exercise's solution replaced by a stub.")
    e.add_argument("directory", metavar="DIR")
    e.add_argument("--solutions", action="store_true",
                   help="write the answer key (the reference solutions) instead of stubs")
    e.add_argument("--extra", default=None, metavar="TEACHER_DIR",
                   help="add the kit files of a teacher's own exercises (see docs/teacher.md)")
    e.add_argument("--force", action="store_true",
                   help="overwrite kit files already in DIR (work in them is lost)")
    e.set_defaults(run=_export)
    sub.add_parser("list", help="list the exercises").set_defaults(run=_list)


def _add_grade(sub) -> None:
    from minidl.exercises.grade import add_arguments
    g = sub.add_parser("grade", help="grade a kit, a kit file, or a folder of kits",
                       description="Grade exercises: value and gradient checks per exercise, "
                                   "in a separate process with a time limit.")
    add_arguments(g)
    g.set_defaults(run=_grade)


def add_subcommands(subparsers) -> None:
    """Register ``exercises export DIR``, ``exercises list`` and ``grade PATH`` on the
    sub-parsers of the ``minidl`` command (each sets ``run``, a function of the parsed args
    that returns the exit status)."""
    p = subparsers.add_parser("exercises", help="the exercise kit, cut from minidl's own source")
    _add_export_and_list(p.add_subparsers(dest="exercises_command", required=True))
    _add_grade(subparsers)


def build_parser(prog: str = "python -m minidl.exercises") -> argparse.ArgumentParser:
    """The stand-alone command: ``export DIR``, ``list`` and ``grade PATH`` at the top level."""
    parser = argparse.ArgumentParser(prog=prog, description="minidl's exercises and grader")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_export_and_list(sub)
    _add_grade(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
