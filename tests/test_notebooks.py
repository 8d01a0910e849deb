"""One lesson executed as a notebook, as a student opens it in Jupyter: jupytext reads the
percent-format script, nbclient runs it in a fresh IPython kernel, and its figures are in the
outputs (image/png), not only in files."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "lessons" / "03_gradcheck.py"   # fast, and it draws a figure


def test_a_lesson_runs_as_a_notebook_with_its_figures_inline(tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext", reason='pip install "minidl[test]" (jupytext)')
    nbclient = pytest.importorskip("nbclient", reason='pip install "minidl[test]" (nbclient)')
    pytest.importorskip("ipykernel", reason='pip install "minidl[test]" (ipykernel)')
    notebook = jupytext.read(LESSON)
    monkeypatch.setenv("MINIDL_LESSON_OUT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                 "")]))
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, os.environ.get(variable, "1"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(LESSON.parent)}})
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the lesson's figure is not in the notebook's outputs"
    assert (tmp_path / "lesson03_eps.png").exists()  # and still saved as a file
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "sum() check of B for Bᵀ" in text
