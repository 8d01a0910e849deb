"""The seed example (examples/seed_text_classification.py) runs end to end on minidl."""
import contextlib
import io
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

import minidl as md

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed_text_classification.py"


@pytest.fixture(scope="module")
def seed_run():
    """Run the example once (seeded) and keep its globals and printed output."""
    md.manual_seed(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = runpy.run_path(str(EXAMPLE), run_name="__main__")
    return namespace, out.getvalue()


def test_example_imports_minidl_keras_not_tensorflow():
    source = EXAMPLE.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import)\s+tensorflow", source, re.MULTILINE)
    assert "from minidl.keras.models import Sequential" in source


def test_tokenizer_yields_character_tokens(seed_run):
    namespace, _ = seed_run
    word_index = namespace["tokenizer"].word_index
    assert all(len(token) == 1 for token in word_index)
    assert set(word_index) == set("我喜欢编程热爱让快乐")


def test_loss_falls_during_training(seed_run):
    namespace, output = seed_run
    losses = namespace["model"].history.history["loss"]
    assert len(losses) == 10 and losses[-1] < losses[0]
    printed = [float(v) for v in re.findall(r"3/3 \[=+\] - .* - loss: ([0-9.]+)", output)]
    assert printed == pytest.approx(losses, abs=1e-4)


def test_predict_gives_three_probabilities(seed_run):
    namespace, output = seed_run
    predictions = namespace["model"].predict(namespace["padded"], verbose=0)
    assert predictions.shape == (3, 1)
    assert np.all((predictions > 0) & (predictions < 1))
    assert output.rstrip().endswith("]]")  # the printed prediction array ends the output
