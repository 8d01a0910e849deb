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


# ----------------------------------------------------------------------------- hostile arguments
def _error_lines(stderr):
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.mark.parametrize("steps", ["-5", "0", "many"])
def test_xor_refuses_a_step_count_that_is_not_positive(steps):
    result = run("xor", "--steps", steps)
    assert result.returncode == 2
    assert _error_lines(result.stderr) == [
        f"minidl xor: error: argument --steps: expected a positive whole number, got "
        f"{steps if steps != 'many' else repr(steps)}"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["xor"], ["demo", "--size", "tiny"]])
def test_device_gpu_is_an_error_that_says_to_use_cuda(command, capsys):
    assert main([*command, "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert f"minidl {command[0]}: error: unknown device 'gpu': for a GPU use --device cuda" in err
    assert err.startswith("usage: minidl " + command[0])


def test_an_unknown_device_names_the_choices(capsys):
    assert main(["xor", "--device", "tpu"]) == 2
    assert "unknown device 'tpu': use --device cpu or --device cuda" in capsys.readouterr().err


def test_the_no_gpu_error_speaks_command_line(capsys):
    import minidl as md
    if md.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["xor", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "use --device cpu" in err and "device='cpu'" not in err


def test_version_prints_the_package_version():
    import minidl
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"minidl {minidl.__version__}"


def test_help_has_no_rest_markup_and_a_whole_description():
    result = run("--help")
    assert result.returncode == 0
    assert "`" not in result.stdout
    description = result.stdout.split("\n\n")[1]
    assert description.startswith("minidl:") and description.rstrip().endswith(".")


def _boom(args):
    raise OSError(28, "No space left on device")


def test_a_failure_during_the_work_is_one_line_and_status_1(monkeypatch, capsys):
    import minidl.cli as cli
    monkeypatch.delenv("MINIDL_DEBUG", raising=False)
    monkeypatch.setattr(cli, "xor", _boom)
    assert main(["xor"]) == 1
    err = capsys.readouterr().err
    assert err == ("minidl xor: error: OSError: [Errno 28] No space left on device "
                   "(run with --debug for the traceback)\n")


@pytest.mark.parametrize("argv", [["--debug", "xor"], ["xor", "--debug"]])
def test_debug_shows_the_traceback(argv, monkeypatch):
    import minidl.cli as cli
    monkeypatch.setattr(cli, "xor", _boom)
    with pytest.raises(OSError, match="No space left"):
        main(argv)


def test_the_environment_variable_also_shows_the_traceback(monkeypatch):
    import minidl.cli as cli
    monkeypatch.setattr(cli, "xor", _boom)
    monkeypatch.setenv("MINIDL_DEBUG", "1")
    with pytest.raises(OSError):
        main(["xor"])


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    import minidl.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.delenv("MINIDL_DEBUG", raising=False)
    monkeypatch.setattr(cli, "xor", interrupted)
    assert main(["xor"]) == 130
    assert capsys.readouterr().err.strip() == "minidl xor: interrupted"


@pytest.mark.parametrize("argv", [["lesson", "one"], ["grade"], ["nonsense"], ["xor", "--what"]])
def test_bad_arguments_of_every_command_are_one_error_line_and_status_2(argv):
    result = run(*argv)
    assert result.returncode == 2
    assert len(_error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr
