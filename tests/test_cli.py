"""The minidl command line: xor trains, lessons are listed and run, bad arguments are errors."""
import subprocess
import sys

import pytest

from minidl.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "minidl", *args], capture_output=True,
                          text=True, timeout=120)


def test_xor_reaches_full_accuracy_and_prints_the_loss():
    result = run("xor", "--steps", "300")
    assert result.returncode == 0, result.stderr
    assert "loss" in result.stdout and "accuracy 1.00" in result.stdout


def test_lesson_without_a_number_lists_the_lessons(capsys):
    assert main(["lesson"]) == 0
    assert "01_tensors.py" in capsys.readouterr().out


def test_lesson_runs_a_lesson():
    result = run("lesson", "1")
    assert result.returncode == 0, result.stderr


def test_unknown_lesson_number_is_an_error(capsys):
    assert main(["lesson", "99"]) == 2
    assert "no lesson 99" in capsys.readouterr().err


def test_demo_with_an_unavailable_device_is_a_clear_error(capsys):
    pytest.importorskip("numpy")
    import minidl as md
    if md.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["demo", "--device", "cuda", "--size", "tiny"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
