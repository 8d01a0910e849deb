"""The exercise kit and its grader: the kit is cut from the reference source, the reference
solutions score full marks, the blank kit scores zero, planted bugs are caught and named, and a
student's crash, hang or exit fails one exercise instead of the grader."""
import csv
import json
import os
import shutil
import sys
import textwrap

import numpy as np
import pytest

import minidl as md
from minidl.exercises import EXERCISES
from minidl.exercises.assertions import CheckFailure, reword_gradcheck, to_numeric_array
from minidl.exercises.checks import CHECKS
from minidl.exercises.cli import add_subcommands, build_parser, main as exercises_main
from minidl.exercises.export import (ExerciseMarkerError, check_markers, export_kit,
                                     find_regions, kit_file_text, package_regions)
from minidl.exercises.grade import (GradeError, csv_text, format_kit, grade_kit, grade_path,
                                    resolve)
from minidl.exercises.registry import by_id, kit_files

IDS = [e.id for e in EXERCISES]


@pytest.fixture(scope="module")
def answer_key(tmp_path_factory):
    directory = tmp_path_factory.mktemp("answer_key")
    export_kit(directory, solutions=True, force=True)
    return directory


@pytest.fixture(scope="module")
def blank_kit(tmp_path_factory):
    directory = tmp_path_factory.mktemp("blank_kit")
    export_kit(directory, force=True)
    return directory


def replace(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not (exactly once) in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def copy_kit(source, target):
    shutil.copytree(source, target)
    return target


# ============================================================================= the kit
def test_every_marked_region_is_a_registered_exercise_with_a_check():
    check_markers()
    assert set(package_regions()) == set(IDS)
    assert set(CHECKS) == set(IDS)


def test_the_issue_s_exercises_are_all_covered():
    assert {"sigmoid_forward", "sigmoid_backward", "matmul_backward", "sum_to",
            "softmax_cross_entropy_backward", "linear_forward", "lstm_cell_forward",
            "lstm_cell_backward", "adam_step", "pad_sequences"} <= set(IDS)


def test_blank_kit_replaces_each_region_by_a_stub_naming_the_exercise(blank_kit):
    for file, exercises in kit_files().items():
        text = (blank_kit / file).read_text(encoding="utf-8")
        for exercise in exercises:
            assert f'raise NotImplementedError("exercise {exercise.id} is not implemented yet")' \
                in text
            assert f"# EXERCISE {exercise.id}:" in text
        assert "BEGIN EXERCISE" not in text and "END EXERCISE" not in text


def test_blank_kit_keeps_the_docstrings_and_drops_the_solutions(blank_kit):
    matmul = (blank_kit / "ex_matmul.py").read_text(encoding="utf-8")
    assert "Shape: A (..., n, k), B (..., k, m) -> Y (..., n, m)." in matmul
    assert "def backward(self, gy):" in matmul
    assert "swapaxes" not in matmul.split("def backward")[1]
    sigmoid = (blank_kit / "ex_sigmoid.py").read_text(encoding="utf-8")
    assert "dy/dx = y(1 - y)" in sigmoid and "Stability:" in sigmoid
    solution = sigmoid.split("def sigmoid_array")[1].split('"""')[2].split("class Sigmoid")[0]
    assert "xp." not in solution and "NotImplementedError" in solution


def test_a_kit_file_holds_the_units_of_one_module_in_its_order(blank_kit):
    """sigmoid_array (sigmoid_forward) and Sigmoid (sigmoid_backward) share ex_sigmoid.py, and
    the kit's Sigmoid calls the kit's sigmoid_array, not minidl's."""
    sigmoid = (blank_kit / "ex_sigmoid.py").read_text(encoding="utf-8")
    assert sigmoid.index("def sigmoid_array(") < sigmoid.index("class Sigmoid(Function):")
    assert "import sigmoid_array" not in sigmoid
    assert "`sigmoid_array` and `Sigmoid`" in sigmoid


def test_kit_files_compile_and_import_only_what_they_use(blank_kit):
    for file in kit_files():
        compile((blank_kit / file).read_text(encoding="utf-8"), file, "exec")
    adam = (blank_kit / "ex_adam.py").read_text(encoding="utf-8")
    assert "from minidl.optim.optimizer import Optimizer" in adam and "import math" in adam


def test_kit_has_a_readme_and_a_manifest(blank_kit):
    manifest = json.loads((blank_kit / "kit.json").read_text(encoding="utf-8"))
    assert [e["id"] for e in manifest["exercises"]] == IDS and not manifest["solutions"]
    readme = (blank_kit / "README.md").read_text(encoding="utf-8")
    assert all(f"`{i}`" in readme for i in IDS) and "minidl grade" in readme


def test_export_refuses_to_overwrite_a_student_s_work(tmp_path):
    export_kit(tmp_path)
    (tmp_path / "ex_sigmoid.py").write_text("# my work", encoding="utf-8")
    with pytest.raises(FileExistsError, match="force"):
        export_kit(tmp_path)
    assert (tmp_path / "ex_sigmoid.py").read_text(encoding="utf-8") == "# my work"
    export_kit(tmp_path, force=True)
    assert "class Sigmoid" in (tmp_path / "ex_sigmoid.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("source, message", [
    ("def f():\n    # BEGIN EXERCISE a\n    # BEGIN EXERCISE b\n    pass\n", "cannot nest"),
    ("def f():\n    # BEGIN EXERCISE a\n    pass\n", "never closed"),
    ("def f():\n    pass\n    # END EXERCISE\n", "without a BEGIN"),
    ("def f():\n    # BEGIN EXERCISE a\n    pass\n# END EXERCISE\n", "indented differently"),
])
def test_malformed_markers_are_reported_with_their_line(source, message):
    with pytest.raises(ExerciseMarkerError, match=message) as error:
        find_regions(source, "example.py")
    assert "example.py:" in str(error.value)


def test_kit_files_are_cut_from_the_current_reference_source():
    path = "minidl/functions/matmul.py"
    text = kit_file_text("ex_matmul.py", solutions=True)
    assert "gb = sum_to(a.swapaxes(-1, -2) @ gy, b.shape)" in text
    assert path in text


# ============================================================================= grading
def test_reference_solutions_score_full_marks(answer_key):
    result = grade_kit(answer_key)
    assert [r.id for r in result.results] == IDS
    failures = {r.id: r.message for r in result.results if not r.passed}
    assert not failures
    assert (result.passed, result.total, result.score) == (len(IDS), len(IDS), 1.0)
    assert "score: 10/10 (100%)" in format_kit(result)


def test_blank_kit_scores_zero_with_a_clear_message_per_exercise(blank_kit):
    result = grade_kit(blank_kit)
    assert result.passed == 0
    for r in result.results:
        assert r.status == "todo"
        assert r.message.startswith("not implemented yet")
        assert by_id()[r.id].file in r.message
    report = format_kit(result)
    assert report.count("FAIL") == len(IDS) and "score: 0/10 (0%)" in report


# Planted bugs: (exercise, kit file, correct code, buggy code, words the report must contain).
# Each planted kit holds bugs in different files, so one grading run checks several of them.
PLANTED = {
    "matmul_transposed_gradient": (
        "matmul_backward", "ex_matmul.py",
        "gb = sum_to(a.swapaxes(-1, -2) @ gy, b.shape)", "gb = gy.swapaxes(-1, -2) @ a",
        ["gradient of shape (5, 4) for B", "transposed"]),
    "matmul_missing_sum_to": (
        "matmul_backward", "ex_matmul.py",
        "ga = sum_to(gy @ b.swapaxes(-1, -2), a.shape)", "ga = gy @ b.swapaxes(-1, -2)",
        ["gradient of shape (2, 3, 4) for A", "broadcast", "sum_to"]),
    "lstm_forget_gate_tanh": (
        "lstm_cell_forward", "ex_lstm_cell.py",
        "f = F.sigmoid(z[:, H:2 * H])", "f = F.tanh(z[:, H:2 * H])",
        ["h' is wrong at element", "forget gate f uses tanh instead of σ"]),
    "sigmoid_overflows": (
        "sigmoid_forward", "ex_sigmoid.py",
        "xp = backend.get_array_module(x)\n",
        "xp = backend.get_array_module(x)\n    return 1 / (1 + xp.exp(-x))\n",
        ["not stable", "overflow"]),
    "sigmoid_backward_sign": (
        "sigmoid_backward", "ex_sigmoid.py",
        "return gy * y * (1 - y)", "return gy * y * (1 + y)",
        ["gradient of x", "is wrong at element", "expected", "yours"]),
    "sum_to_forgets_stretched_axes": (
        "sum_to", "ex_sum_to.py",
        "lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)",
        "lead + i for i, n in enumerate(shape) if False)",
        ["sum_to(g of shape (2, 3), (1, 3))", "ValueError"]),
    "softmax_ce_ignores_keep": (
        "softmax_cross_entropy_backward", "ex_softmax_cross_entropy.py",
        "grad *= (gy * self.keep)[:, None]", "grad *= gy[:, None]",
        ["row 2 has an ignored target", "expected 0 vs yours"]),
    "linear_breaks_without_bias": (
        "linear_forward", "ex_linear.py",
        "return F.linear(x, self.W, self.b)", "return x @ self.W + self.b",
        ["TypeError", "ex_linear.py line", "bias=False"]),
    "lstm_backward_misses_the_path_through_h": (
        "lstm_cell_backward", "ex_lstm_cell_function.py",
        "dc_new = grad_c + grad_h * o * (1 - tanh_c * tanh_c)", "dc_new = grad_c",
        ["is wrong at element", "dz is wrong in the block(s) of the input gate i, forget gate f, "
                                "candidate g (right: output gate o)"]),
    "adam_without_bias_correction": (
        "adam_step", "ex_adam.py",
        "bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t", "bias1, bias2 = 1.0, 1.0",
        ["after step 1 of Adam", "without bias correction"]),
    "pad_sequences_pads_the_wrong_side": (
        "pad_sequences", "ex_pad_sequences.py",
        "if padding == 'pre':", "if padding == 'post':",
        ["returned [[1, 2, 3], [4, 0, 0], [5, 6, 0]], "
         "expected [[1, 2, 3], [0, 0, 4], [0, 5, 6]]"]),
}


def _planted_groups():
    """Split the bugs into kits with at most one bug per file."""
    groups = []
    for name, (_, file, *_rest) in PLANTED.items():
        for group in groups:
            if file not in {PLANTED[n][1] for n in group}:
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


@pytest.fixture(scope="module")
def planted_results(answer_key, tmp_path_factory):
    results = {}
    for number, group in enumerate(_planted_groups()):
        kit = copy_kit(answer_key, tmp_path_factory.mktemp("planted") / f"kit{number}")
        for name in group:
            _, file, correct, buggy, _ = PLANTED[name]
            replace(kit / file, correct, buggy)
        graded = grade_kit(kit)
        for name in group:
            results[name] = graded
    return results


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_caught_and_named(bug, planted_results):
    exercise, file, _, _, words = PLANTED[bug]
    graded = planted_results[bug]
    result = graded[exercise]
    assert not result.passed and result.status in ("fail", "error")
    for word in words:
        assert word in result.message, result.message
    assert result.hint
    report = format_kit(graded)
    assert f"FAIL  {exercise}" in report
    planted_here = {PLANTED[b][0] for b, g in planted_results.items() if g is graded}
    for other in graded.results:  # the other exercises of that kit are not blamed
        assert other.passed == (other.id not in planted_here), (other.id, other.message)


# ============================================================================= containment
@pytest.fixture(scope="module")
def chaos(answer_key, tmp_path_factory):
    """A kit whose code hangs, exits, crashes, or does not compile — one way per file — and
    whose softmax file records where and as whom it runs."""
    root = tmp_path_factory.mktemp("chaos")
    kit = copy_kit(answer_key, root / "kit")
    replace(kit / "ex_sum_to.py", "    if g.shape == shape:\n", "    while True:\n        pass\n"
            "    if g.shape == shape:\n")
    replace(kit / "ex_sigmoid.py", "class Sigmoid(Function):",
            "while True:\n    pass\n\n\nclass Sigmoid(Function):")
    replace(kit / "ex_matmul.py", "a, b = self.saved_tensors", "import os; os._exit(3)")
    replace(kit / "ex_adam.py", "bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t",
            "import sys; sys.exit(2)")
    replace(kit / "ex_pad_sequences.py", "x = np.full(", "x = = np.full(")
    if os.name == "posix":
        replace(kit / "ex_linear.py", "return F.linear(x, self.W, self.b)",
                "import ctypes; return ctypes.string_at(0)")
    spy = root / "spy.json"
    replace(kit / "ex_softmax_cross_entropy.py", "class SoftmaxCrossEntropy(Function):",
            textwrap.dedent(f"""\
                import json as _json, os as _os
                with open({str(spy)!r}, "w") as _spy:
                    _json.dump({{"pid": _os.getpid(), "cwd": _os.getcwd(),
                                 "device": _os.environ.get("MINIDL_DEVICE")}}, _spy)
                print("students print things " * 100)


                class SoftmaxCrossEntropy(Function):"""))
    chosen = [e for e in EXERCISES if e.id != "lstm_cell_forward" and e.id != "adam_step"] + \
        [by_id()["adam_step"]]
    return grade_kit(kit, chosen, timeout=2.0), kit, spy


def test_an_endless_loop_times_out_and_says_where(chaos):
    result = chaos[0]["sum_to"]
    assert result.status == "timeout"
    assert "timed out" in result.message and "ex_sum_to.py line" in result.message


def test_a_file_that_hangs_on_import_fails_all_its_exercises_with_one_wait(chaos):
    graded = chaos[0]
    for exercise in ("sigmoid_forward", "sigmoid_backward"):
        assert graded[exercise].status == "timeout"
        assert "while importing ex_sigmoid.py" in graded[exercise].message


def test_a_hard_exit_is_a_crash_of_that_exercise_only(chaos):
    result = chaos[0]["matmul_backward"]
    assert result.status == "crash" and "exited with status 3" in result.message


@pytest.mark.skipif(os.name != "posix", reason="a segfault through ctypes is POSIX-specific")
def test_a_segfault_is_a_crash_of_that_exercise_only(chaos):
    result = chaos[0]["linear_forward"]
    assert result.status == "crash" and "SIGSEGV" in result.message
    assert "ex_linear.py line" in result.message


def test_sys_exit_is_reported_not_obeyed(chaos):
    result = chaos[0]["adam_step"]
    assert result.status == "error" and "sys.exit(2)" in result.message


def test_a_syntax_error_names_the_line(chaos):
    result = chaos[0]["pad_sequences"]
    assert result.status == "error" and "does not compile" in result.message
    assert "ex_pad_sequences.py line" in result.message


def test_the_other_exercises_still_pass_after_crashes_and_hangs(chaos):
    graded = chaos[0]
    assert graded["softmax_cross_entropy_backward"].passed
    assert graded["lstm_cell_backward"].passed
    assert [r.id for r in graded.results][-1] == "adam_step"  # the kit's order is kept


def test_student_code_runs_in_another_process_in_a_scratch_folder_on_the_cpu(chaos):
    graded, kit, spy = chaos
    seen = json.loads(spy.read_text())
    assert seen["pid"] != os.getpid()
    assert os.path.realpath(seen["cwd"]) not in (os.path.realpath(kit), os.path.realpath(
        os.getcwd()))
    assert not os.path.exists(seen["cwd"])  # removed after grading
    assert seen["device"] == "cpu"
    assert not (kit / "__pycache__").exists()  # the student's folder is left as it was


# ============================================================================= a class
def test_a_folder_of_kits_gives_a_report_per_kit_and_a_csv(answer_key, blank_kit, tmp_path,
                                                             capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    copy_kit(answer_key, folder / "alice")
    copy_kit(blank_kit, folder / "bob")
    (folder / "notes").mkdir()  # not a kit: ignored
    status = exercises_main(["grade", str(folder), "--only", "sigmoid_forward,sum_to",
                             "--jobs", "2"])
    assert status == 1  # bob has failures
    out = capsys.readouterr().out
    assert "alice" in out and "bob" in out and "score: 2/2 (100%)" in out
    rows = list(csv.reader((folder / "grades.csv").open(encoding="utf-8")))
    assert rows[0] == ["student", "sigmoid_forward", "sum_to", "passed", "total", "score"]
    assert rows[1] == ["alice", "1", "1", "2", "2", "1.000"]
    assert rows[2] == ["bob", "0", "0", "0", "2", "0.000"]


def test_grading_one_kit_file_grades_its_exercises_only(answer_key, capsys):
    status = exercises_main(["grade", str(answer_key / "ex_sigmoid.py")])
    out = capsys.readouterr().out
    assert status == 0 and "sigmoid_forward" in out and "sigmoid_backward" in out
    assert "matmul_backward" not in out


def test_a_path_that_is_no_kit_is_a_clear_error(tmp_path):
    with pytest.raises(GradeError, match="exercises export"):
        resolve(tmp_path)
    with pytest.raises(GradeError, match="no such file"):
        resolve(tmp_path / "missing")
    (tmp_path / "homework.py").write_text("x = 1\n")
    with pytest.raises(GradeError, match="not a kit file"):
        resolve(tmp_path / "homework.py")
    with pytest.raises(GradeError, match="unknown exercise"):
        grade_path(tmp_path / "homework.py", only=["nope"])


def test_a_missing_kit_file_fails_its_exercises(answer_key, tmp_path):
    kit = copy_kit(answer_key, tmp_path / "kit")
    (kit / "ex_adam.py").unlink()
    result = grade_kit(kit, [by_id()["adam_step"]])
    assert result["adam_step"].status == "fail"
    assert "ex_adam.py is missing" in result["adam_step"].message


def test_csv_lists_each_exercise_as_0_or_1(answer_key):
    text = csv_text([grade_kit(answer_key, [by_id()["pad_sequences"]])])
    assert text.splitlines() == ["student,pad_sequences,passed,total,score",
                                 f"{answer_key.name},1,1,1,1.000"]


# ============================================================================= pieces
def test_gradcheck_messages_are_reworded_for_students():
    class Wrong(md.Function):
        def forward(self, a, b):
            return a @ b

        def backward(self, gy):
            return gy @ self.inputs[1].data, self.inputs[0].data.T @ gy  # dA misses a ᵀ

    A = md.tensor(np.arange(9.0).reshape(3, 3) / 7, requires_grad=True, dtype="float64",
                  device="cpu")
    A.name = "A"
    B = md.tensor(np.arange(9.0).reshape(3, 3) % 4 - 1.5, requires_grad=True, dtype="float64",
                  device="cpu")
    B.name = "B"
    with pytest.raises(md.GradcheckError) as error:
        md.gradcheck(lambda a, b: Wrong()(a, b), A, B, mode="elementwise")
    message = reword_gradcheck(error.value)
    assert message.startswith("the gradient of A (input 0, shape (3, 3)) is wrong at element (")
    assert f"numerical {error.value.numerical:.6g} vs yours {error.value.analytical:.6g}" \
        in message


def test_gradcheck_rewording_reads_the_fields_not_the_message():
    error = md.GradcheckError(input_index=None, input_name="W_x", shape=(3, 8),
                              mode="elementwise", index=(2, 5), numerical=0.25,
                              analytical=-0.75, atol=1e-5, rtol=1e-3)
    assert reword_gradcheck(error) == ("the gradient of W_x (shape (3, 8)) is wrong at element "
                                       "(2, 5): numerical 0.25 vs yours -0.75")
    error = md.GradcheckError(1, None, (4,), "directional", None, 1.5, 2.0, 1e-5, 1e-3)
    assert reword_gradcheck(error) == ("the gradient of input 1 (shape (4,)) is wrong along a "
                                       "random direction: numerical 1.5 vs yours 2")


def test_returned_values_are_converted_to_numeric_arrays_or_fail_by_name():
    np.testing.assert_array_equal(to_numeric_array(md.tensor([1.0, 2.0]), "y"), [1.0, 2.0])
    assert to_numeric_array([[1, 2]], "y").shape == (1, 2)
    with pytest.raises(CheckFailure, match="y: your code returned None"):
        to_numeric_array(None, "y")
    with pytest.raises(CheckFailure, match="expected an array of numbers"):
        to_numeric_array("0.5", "y")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_lstm_step_reference_agrees_with_nn_lstm_cell(device, dtype):
    from minidl.exercises.lstm_cell_function import lstm_cell
    rng = np.random.default_rng(0)

    def leaf(*shape):
        return md.tensor(rng.standard_normal(shape), dtype=dtype, device=device,
                         requires_grad=True)

    cell = md.nn.LSTMCell(3, 4, dtype=dtype, device=device)
    for p in cell.parameters():
        p.data = leaf(*p.shape).data
    x, h, c = leaf(2, 3), leaf(2, 4), leaf(2, 4)
    expected = cell(x, (h, c))
    got = lstm_cell(cell, x, (h, c))
    for e, g in zip(expected, got):
        assert g.dtype == e.dtype and g.device == e.device
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-12 if dtype == "float64"
                                   else 1e-5, atol=0 if dtype == "float64" else 1e-6)
    md.gradcheck(lambda x, h, c: lstm_cell(cell, x, (h, c)), x, h, c,
                 wrt=dict(cell.named_parameters()), mode="elementwise")


def test_the_lstm_step_reference_runs_the_fused_path_s_forward_step():
    """One forward step for the exercise and nn.LSTM(fast=True): a one-step sequence through
    LSTMFunction gives the same (h', c') up to float32 rounding."""
    from minidl.exercises.lstm_cell_function import lstm_cell
    lstm = md.nn.LSTM(3, 4)
    rng = np.random.default_rng(1)
    x = md.tensor(rng.standard_normal((2, 1, 3)), dtype="float32")
    h0 = md.tensor(rng.standard_normal((2, 4)), dtype="float32")
    c0 = md.tensor(rng.standard_normal((2, 4)), dtype="float32")
    _, (h_fused, c_fused) = lstm(x, (h0, c0))
    h, c = lstm_cell(lstm.cell, x[:, 0], (h0, c0))
    np.testing.assert_allclose(h.numpy(), h_fused.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), c_fused.numpy(), rtol=1e-6, atol=1e-6)


def test_cli_registers_exercises_export_and_grade():
    import argparse
    parser = argparse.ArgumentParser(prog="minidl")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["exercises", "export", "kit", "--solutions"])
    assert args.directory == "kit" and args.solutions and callable(args.run)
    args = parser.parse_args(["grade", "kits", "--timeout", "3", "--csv", "out.csv"])
    assert (args.path, args.timeout, args.csv) == ("kits", 3.0, "out.csv") and callable(args.run)
    assert build_parser().parse_args(["export", "kit"]).directory == "kit"


def test_export_from_the_command_line(tmp_path, capsys):
    assert exercises_main(["export", str(tmp_path / "kit")]) == 0
    assert (tmp_path / "kit" / "ex_sigmoid.py").exists()
    assert exercises_main(["export", str(tmp_path / "kit")]) == 2  # would overwrite
    assert "--force" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="runs a kit file as a script")
def test_running_a_kit_file_grades_it(answer_key):
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(md.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    done = subprocess.run([sys.executable, str(answer_key / "ex_sum_to.py")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=answer_key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  sum_to" in done.stdout


def test_the_minidl_command_offers_exercises_and_grade():
    from minidl import cli
    parser = cli.build_parser()
    try:
        args = parser.parse_args(["grade", "kit"])
    except SystemExit:
        pytest.skip("minidl/cli.py does not register the sub-commands yet: build_parser() needs "
                    "`from minidl.exercises.cli import add_subcommands; add_subcommands(sub)`")
    assert args.path == "kit" and callable(args.run)
    assert parser.parse_args(["exercises", "export", "kit"]).directory == "kit"
