"""Exercises generated from minidl's own source, and a local autograder a teacher can trust.

Solution regions in the reference source are marked with ``# BEGIN EXERCISE <id>`` and
``# END EXERCISE``. ``minidl exercises export DIR`` writes a student kit in which every region is
replaced by a stub that raises ``NotImplementedError`` naming the exercise, and each unit's
docstring by its specification from the registry (shapes, what to compute — not the formula);
because the kit is cut from the reference every time, it cannot drift from it. ``minidl grade
PATH`` grades a kit (or a folder of kits, one per student): each kit's code runs in a sandboxed
worker process that only reports what the code returned; the grader judges it against the
reference in its own process (the threat model is in ``grade.py``).

- ``registry``: the list of exercises (id, reference module, kit file, task, spec, hint, weight);
  ``load_extra`` adds a teacher's own from a folder.
- ``export``: finds the marked regions and writes a kit.
- ``view``: the worker's view of minidl, with every solution stubbed.
- ``checks``: per exercise, a probe (runs in the worker) and a judge (runs in the grader),
  written with ``assertions`` (``Recorder``, ``Outputs``, ``CheckFailure``, ``assert_close``,
  ``probe_function``/``judge_function``).
- ``protocol``: the events a worker may send, and their strict decoding.
- ``grade``: sandboxes, workers, judging, reports, the CSV and feedback files.
- ``_worker``: the worker process (its audit hook, the kit import, the probes).
- ``lstm_cell_function``: one LSTM step as a Function with a hand-written backward — the
  reference of the ``lstm_cell_backward`` exercise.
- ``cli``: the ``exercises`` and ``grade`` sub-commands of the ``minidl`` command.
"""
from minidl.exercises.registry import EXERCISES, Exercise

__all__ = ["EXERCISES", "Exercise"]
