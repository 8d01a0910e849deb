"""Every lesson in lessons/ runs as a plain script and exits 0, and is a jupytext notebook.

Each lesson runs in a subprocess (``python lessons/NN_name.py``) with its default settings, as a
reader would run it, with ``MINIDL_LESSON_OUT`` pointing at a temporary folder for its plots and
files. All lessons share that folder, in order, so Lesson 11 finds the language model Lesson 10
saved (run alone, Lesson 11 pretrains a small one itself).

BLAS threads are limited to one unless the caller sets them: on a small machine shared with
other work (a CI runner, a teaching server), OpenBLAS threads competing for two cores make the
small matrix products of these lessons several times slower, and the lessons' default settings
are sized to run in seconds.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
TIMEOUT_S = 120  # per lesson; each is designed to run in well under a minute


def test_there_are_at_least_twelve_lessons_numbered_in_order():
    numbers = [int(path.name[:2]) for path in LESSONS]
    assert len(numbers) >= 12
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.stem)
def test_lesson_is_a_percent_format_notebook(lesson):
    source = lesson.read_text(encoding="utf-8")
    assert source.startswith("# %% [markdown]\n# # Lesson "), "must open with a markdown title cell"
    assert re.search(r"^# %%$", source, re.MULTILINE), "has no code cell"
    assert "关键术语" in source, "the first cell lists the key terms with their Chinese names"
    assert re.search(r"^SIZE = ", source, re.MULTILINE), "has no SIZE setting at the top"
    assert "plt.show(" not in source


@pytest.fixture(scope="module")
def lesson_out(tmp_path_factory):
    return tmp_path_factory.mktemp("lessons")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.stem)
def test_lesson_runs_as_a_script(lesson, lesson_out):
    env = dict(os.environ, MINIDL_LESSON_OUT=str(lesson_out), MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("MINIDL_LESSON_SIZE", None)  # the default ("small") settings
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(variable, "1")
    result = subprocess.run([sys.executable, str(lesson)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, (
        f"{lesson.name} exited with {result.returncode}\n--- stdout (end)\n"
        f"{result.stdout[-3000:]}\n--- stderr (end)\n{result.stderr[-3000:]}")
    if lesson.name.startswith("16_") and _has_mpi():
        # the data-parallel lesson ran its two processes (mpiexec -n 2), not only the rest
        assert "max |w(1 process) − w(2 ranks)|" in result.stdout, result.stdout[-3000:]


def _has_mpi() -> bool:
    """mpi4py and an mpiexec beside this Python or on PATH (``pip install ".[dist]"``)."""
    import importlib.util
    import shutil
    beside = Path(sys.executable).with_name("mpiexec")
    return importlib.util.find_spec("mpi4py") is not None and \
        (beside.exists() or shutil.which("mpiexec") is not None)
