"""Exercises generated from minidl's own source, and a local autograder.

Solution regions in the reference source are marked with ``# BEGIN EXERCISE <id>`` and
``# END EXERCISE``. ``minidl exercises export DIR`` writes a student kit in which every region is
replaced by a stub that raises ``NotImplementedError`` naming the exercise, while the docstrings
(shapes, formula) stay as the specification; because the kit is cut from the reference every
time, it cannot drift from it. ``minidl grade PATH`` grades a kit (or a folder of kits, one per
student): each exercise's code is plugged into minidl in a separate Python process, with a time
limit, and checked against the reference (values) and numerically (``md.gradcheck``).

- ``registry``: the list of exercises (id, reference module, kit file, hint).
- ``export``: finds the marked regions and writes a kit.
- ``checks``: one check per exercise (runs in the grading process, next to the student's code),
  written with ``assertions`` (``CheckFailure``, ``Context``, ``assert_close``,
  ``check_backward``, ``run_gradcheck``).
- ``grade``: runs the checks in worker processes and reports, with a CSV for a class.
- ``lstm_cell_function``: one LSTM step as a Function with a hand-written backward — the
  reference of the ``lstm_cell_backward`` exercise.
- ``cli``: the ``exercises`` and ``grade`` sub-commands of the ``minidl`` command.
"""
from minidl.exercises.registry import EXERCISES, Exercise

__all__ = ["EXERCISES", "Exercise"]
