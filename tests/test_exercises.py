"""The exercise kit and its grader: the kit is cut from the reference source, the answer key
scores full marks, the blank kit scores zero, planted mistakes are caught and named, and a
student's crash, hang or exit fails one exercise instead of the grader.

The hostile kits — code that delegates to the reference, patches the grader, forges events,
vandalises files or leaves processes behind — are in tests/test_grader_security.py.
"""
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
from minidl.exercises.assertions import CheckFailure, numeric
from minidl.exercises.checks import JUDGES, PROBES
from minidl.exercises.cli import add_subcommands, build_parser, main as exercises_main
from minidl.exercises.export import (ExerciseMarkerError, check_markers, export_kit,
                                     find_regions, kit_file_text, package_regions)
from minidl.exercises.grade import (GradeError, csv_text, feedback_lines, format_kit,
                                    grade_kit, grade_path, resolve)
from minidl.exercises.protocol import Returned
from minidl.exercises.registry import by_id, kit_files

IDS = [e.id for e in EXERCISES]
N = len(IDS)


@pytest.fixture(scope="module")
def answer_key(tmp_path_factory):
    directory = tmp_path_factory.mktemp("answer_key")
    export_kit(directory, solutions=True, force=True)
    return directory


@pytest.fixture(scope="module")
def honest_kit(answer_key, tmp_path_factory):
    """The answer key as a student would hand it in: a student kit with every stub solved."""
    return as_student_kit(answer_key, tmp_path_factory.mktemp("honest") / "kit")


@pytest.fixture(scope="module")
def blank_kit(tmp_path_factory):
    directory = tmp_path_factory.mktemp("blank_kit")
    export_kit(directory, force=True)
    return directory


def replace(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not (exactly once) in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def as_student_kit(answer_key, target):
    """A copy of the answer key that does not say it is one (a student's solved kit)."""
    shutil.copytree(answer_key, target)
    manifest = json.loads((target / "kit.json").read_text(encoding="utf-8"))
    manifest["solutions"] = False
    (target / "kit.json").write_text(json.dumps(manifest), encoding="utf-8")
    for file in kit_files():
        replace(target / file, '"""Answer key:', '"""Exercise:')
    return target


def copy_kit(source, target):
    shutil.copytree(source, target)
    return target


# ============================================================================= the kit
def test_every_marked_region_is_a_registered_exercise_with_a_probe_and_a_judge():
    check_markers()
    assert set(package_regions()) == set(IDS)
    assert set(PROBES) == set(IDS) and set(JUDGES) == set(IDS)


def test_the_issue_s_exercises_are_all_covered():
    assert {"sigmoid_forward", "sigmoid_backward", "matmul_backward", "sum_to",
            "softmax_cross_entropy_backward", "linear_forward", "lstm_cell_forward",
            "lstm_cell_backward", "adam_step", "pad_sequences"} <= set(IDS)
    assert {"attention_backward", "layer_norm_backward", "lora_forward"} <= set(IDS)


def test_blank_kit_replaces_each_region_by_a_stub_naming_the_exercise(blank_kit):
    for file, exercises in kit_files().items():
        text = (blank_kit / file).read_text(encoding="utf-8")
        for exercise in exercises:
            assert f'raise NotImplementedError("exercise {exercise.id} is not implemented yet")' \
                in text
            assert f"# EXERCISE {exercise.id}:" in text
        assert "BEGIN EXERCISE" not in text and "END EXERCISE" not in text


def test_stub_docstrings_specify_without_giving_the_answer(blank_kit):
    matmul = (blank_kit / "ex_matmul.py").read_text(encoding="utf-8")
    assert "Shape: A (..., n, k), B (..., k, m) -> Y (..., n, m)." in matmul
    assert "def backward(self, gy):" in matmul
    assert "Bᵀ" not in matmul and "swapaxes" not in matmul
    sigmoid = (blank_kit / "ex_sigmoid.py").read_text(encoding="utf-8")
    assert "Stability:" in sigmoid and "tanh" not in sigmoid
    assert "y(1 - y)" not in sigmoid and "y(1 − y)" not in sigmoid
    lstm = (blank_kit / "ex_lstm_cell_function.py").read_text(encoding="utf-8")
    assert "1 − tanh²" not in lstm and "σ(1 − σ)" not in lstm and "Shape:" in lstm
    attention = (blank_kit / "ex_attention.py").read_text(encoding="utf-8")
    assert "Shape: q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv)" in attention
    assert "def backward(self, g_out):" in attention and "rowsum" not in attention
    assert "g_out @ v" not in attention and "dS = P" not in attention
    layer_norm = (blank_kit / "ex_layer_norm.py").read_text(encoding="utf-8")
    assert "Shape: x (..., *normalized_shape)" in layer_norm
    assert "mean(g" not in layer_norm and "mean_g" not in layer_norm
    lora = (blank_kit / "ex_lora.py").read_text(encoding="utf-8")
    assert "Shape: x (..., in_features) -> (..., out_features)." in lora
    assert "def merge(self) -> Linear:" in lora  # given: the merged case is part of forward
    assert "self.scaling) @ self.B" not in lora and "F.dropout(x" not in lora
    for exercise in EXERCISES:  # the hint (formula) never reaches the kit
        assert exercise.hint not in (blank_kit / exercise.file).read_text(encoding="utf-8")


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
def test_a_result_sent_just_before_the_worker_exits_is_not_lost(honest_kit, monkeypatch):
    """The race of a loaded machine, made certain: select() sees nothing until the worker has
    exited, so its last result is still unread in the pipe when the exit is noticed."""
    import select
    import subprocess
    from minidl.exercises import grade
    exited, real_poll, real_select = [], subprocess.Popen.poll, select.select

    def poll(process):
        code = real_poll(process)
        if code is not None:
            exited.append(code)
        return code

    def late_select(readers, writers, errors, timeout=None):
        if not exited:                       # the worker is still running: "nothing yet"
            grade.time.sleep(timeout or 0)
            return [], [], []
        return real_select(readers, writers, errors, timeout)
    monkeypatch.setattr(subprocess.Popen, "poll", poll)
    monkeypatch.setattr(grade.select, "select", late_select)
    result = grade_kit(honest_kit, exercises=[by_id()["sigmoid_forward"]])
    assert [(r.id, r.passed) for r in result.results] == [("sigmoid_forward", True)], \
        result.results[0].message


def test_an_honest_complete_kit_scores_full_marks(honest_kit):
    result = grade_kit(honest_kit)
    assert [r.id for r in result.results] == IDS
    failures = {r.id: r.message for r in result.results if not r.passed}
    assert not failures
    assert (result.passed, result.total, result.score) == (N, N, 1.0)
    assert f"score: {N}/{N} (100%)" in format_kit(result)


def test_the_answer_key_is_refused_unless_the_teacher_allows_it(answer_key):
    refused = grade_kit(answer_key, [by_id()["pad_sequences"]])
    assert refused["pad_sequences"].status == "refused"
    assert "--allow-solutions" in refused["pad_sequences"].message
    allowed = grade_kit(answer_key, [by_id()["pad_sequences"]], allow_solutions=True)
    assert allowed["pad_sequences"].passed


def test_blank_kit_scores_zero_with_a_clear_message_per_exercise(blank_kit):
    result = grade_kit(blank_kit)
    assert result.passed == 0
    for r in result.results:
        assert r.status == "todo", (r.id, r.message)
        assert r.message.startswith(("not implemented yet", "this check runs your"))
        assert by_id()[r.id].file in r.message or r.message.endswith(" first")
    report = format_kit(result)
    assert report.count("FAIL") == N and f"score: 0/{N} (0%)" in report


# Planted mistakes: (exercise, kit file, correct code, buggy code, words the message must
# contain, words the diagnosis must contain). Each planted kit holds mistakes in different
# files, so one grading run checks several of them.
PLANTED = {
    "matmul_transposed_gradient": (
        "matmul_backward", "ex_matmul.py",
        "gb = sum_to(a.swapaxes(-1, -2) @ gy, b.shape)", "gb = gy.swapaxes(-1, -2) @ a",
        ["gradient of shape (5, 4) for B"], ["transposed"]),
    "matmul_missing_sum_to": (
        "matmul_backward", "ex_matmul.py",
        "ga = sum_to(gy @ b.swapaxes(-1, -2), a.shape)", "ga = gy @ b.swapaxes(-1, -2)",
        ["gradient of shape (2, 3, 4) for A"], ["broadcast", "not summed back"]),
    "lstm_forget_gate_tanh": (
        "lstm_cell_forward", "ex_lstm_cell.py",
        "f = F.sigmoid(z[:, H:2 * H])", "f = F.tanh(z[:, H:2 * H])",
        ["h' is wrong at element"], ["forget gate f uses tanh instead of σ"]),
    "lstm_gate_slice_off_by_one": (
        "lstm_cell_forward", "ex_lstm_cell.py",
        "f = F.sigmoid(z[:, H:2 * H])", "f = F.sigmoid(z[:, H + 1:2 * H + 1])",
        ["is wrong at element"], ["slice of the forget gate f is off by one column"]),
    "sigmoid_overflows": (
        "sigmoid_forward", "ex_sigmoid.py",
        "xp = backend.get_array_module(x)\n",
        "xp = backend.get_array_module(x)\n    return 1 / (1 + xp.exp(-x))\n",
        ["not stable", "FloatingPointError"], ["overflows"]),
    "sigmoid_forward_overwrites_x": (
        "sigmoid_forward", "ex_sigmoid.py",
        "y = xp.empty_like(x) if out is None else out", "y = x if out is None else out",
        ["changed x itself"], ["overwritten in place"]),
    "sigmoid_backward_sign": (
        "sigmoid_backward", "ex_sigmoid.py",
        "return gy * y * (1 - y)", "return gy * y * (1 + y)",
        ["gradient of x", "is wrong at element", "expected", "yours"], []),
    "sigmoid_backward_uses_sigma_for_its_derivative": (
        "sigmoid_backward", "ex_sigmoid.py",
        "return gy * y * (1 - y)", "return gy * y",
        ["gradient of x", "is wrong at element"], ["σ itself, not by σ's derivative"]),
    "sum_to_forgets_stretched_axes": (
        "sum_to", "ex_sum_to.py",
        "lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)",
        "lead + i for i, n in enumerate(shape) if False)",
        ["sum_to(g of shape (2, 3), (1, 3))", "ValueError"], []),
    "softmax_ce_ignores_keep": (
        "softmax_cross_entropy_backward", "ex_softmax_cross_entropy.py",
        "grad *= (gy * self.keep)[:, None]", "grad *= gy[:, None]",
        ["row 2 has an ignored target", "expected 0 vs yours"], ["ignored target"]),
    "linear_breaks_without_bias": (
        "linear_forward", "ex_linear.py",
        "return F.linear(x, self.W, self.b)", "return x @ self.W + self.b",
        ["TypeError", "ex_linear.py line", "bias=False"], []),
    "lstm_backward_misses_the_path_through_h": (
        "lstm_cell_backward", "ex_lstm_cell_function.py",
        "dc_new = grad_c + grad_h * o * (1 - tanh_c * tanh_c)", "dc_new = grad_c",
        ["is wrong at element"], ["misses the path through h'"]),
    "lstm_backward_db_is_the_batch_mean": (
        "lstm_cell_backward", "ex_lstm_cell_function.py",
        "db = dz.sum(axis=0)", "db = dz.mean(axis=0)",
        ["the gradient of b", "column"], ["your dz is right, but db is the mean over the batch"]),
    "lstm_backward_uses_sigma_for_its_derivative": (
        "lstm_cell_backward", "ex_lstm_cell_function.py",
        "dz = xp.concatenate([d_i * i * (1 - i),", "dz = xp.concatenate([d_i * i,",
        ["is wrong at element"],
        ["block of the input gate i you multiplied by the gate's value where its derivative"]),
    "adam_without_bias_correction": (
        "adam_step", "ex_adam.py",
        "bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t", "bias1, bias2 = 1.0, 1.0",
        ["after step 1 of Adam"], ["without bias correction"]),
    "adam_scales_the_gradient_in_place": (
        "adam_step", "ex_adam.py",
        "xp.multiply(grad, 1 - beta1, out=scratch)",
        "grad *= 1 - beta1\n        scratch[...] = grad",
        ["changed p.grad of parameter 0 in place"], ["overwritten in place"]),
    "softmax_overflows": (
        "softmax_forward", "ex_softmax.py",
        "y = xp.exp(x - x.max(axis=self.axis, keepdims=True))", "y = xp.exp(x)",
        ["not stable", "FloatingPointError"], ["overflows"]),
    "softmax_normalises_along_the_last_axis": (
        "softmax_forward", "ex_softmax.py",
        "y = xp.exp(x - x.max(axis=self.axis, keepdims=True))\n"
        "        y /= y.sum(axis=self.axis, keepdims=True)",
        "y = xp.exp(x - x.max(axis=-1, keepdims=True))\n"
        "        y /= y.sum(axis=-1, keepdims=True)",
        ["softmax(x) is wrong at element", "along axis 1"], ["normalises along axis 2"]),
    "log_softmax_takes_the_log_of_a_softmax": (
        "log_softmax_forward", "ex_softmax.py",
        "y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))",
        "y = xp.log(xp.exp(shifted) / xp.exp(shifted).sum(axis=self.axis, keepdims=True))",
        ["not stable", "divide by zero"], ["never take the log of a softmax"]),
    "engine_overwrites_instead_of_adding": (
        "engine_backward", "ex_engine.py",
        "slots[x.index] = g if slots[x.index] is None else slots[x.index] + g",
        "slots[x.index] = g",
        ["the gradient of leaf", "a·b is used twice"], ["must be added up"]),
    "engine_replaces_the_leaf_gradient": (
        "engine_backward", "ex_engine.py",
        "                    accumulate(x, g)\n",
        "                    x.grad = Tensor(g)\n",
        ["the gradient of leaf"], ["replaced instead of added to"]),
    "rnn_gradient_does_not_flow_back_through_time": (
        "rnn_bptt", "ex_rnn.py",
        "dh = grad_hs[:, t] + dh_next", "dh = grad_hs[:, t]",
        ["is wrong at element"], ["does not flow back through time"]),
    "rnn_dW_h_is_not_summed_over_time": (
        "rnn_bptt", "ex_rnn.py",
        "dW_h += h_prev.T @ dz", "dW_h = h_prev.T @ dz",
        ["the gradient of W_h"], ["dW_h must add up the contributions of every step"]),
    "rnn_dW_h_uses_h_t": (
        "rnn_bptt", "ex_rnn.py",
        "dW_h += h_prev.T @ dz", "dW_h += hs[:, t].T @ dz",
        ["the gradient of W_h"], ["belongs with the state that went into step t"]),
    "pad_sequences_pads_the_wrong_side": (
        "pad_sequences", "ex_pad_sequences.py",
        "if padding == 'pre':", "if padding == 'post':",
        ["returned [[1, 2, 3], [4, 0, 0], [5, 6, 0]], "
         "expected [[1, 2, 3], [0, 0, 4], [0, 5, 6]]"], ["padding is on the wrong side"]),
    "pad_sequences_mutates_the_caller_s_lists": (
        "pad_sequences", "ex_pad_sequences.py",
        "kept = s[-maxlen:] if truncating == 'pre' else s[:maxlen]",
        "if truncating == 'pre' and isinstance(s, list):\n            del s[:-maxlen]\n"
        "        kept = s[-maxlen:] if truncating == 'pre' else s[:maxlen]",
        ["changed the caller's sequences"], ["changed in place"]),
    "attention_backward_forgets_the_softmax_row_sum": (
        "attention_backward", "ex_attention.py",
        "        ds -= (dp * p).sum(axis=-1, keepdims=True)\n", "",
        ["the gradient of q", "is wrong at element", "scale 0.5"],
        ["treats it as elementwise", "the row's sum is missing"]),
    "attention_backward_dv_with_p_untransposed": (
        "attention_backward", "ex_attention.py",
        "dv = sum_to(p_used.swapaxes(-1, -2) @ g_out, v.shape)",
        "dv = sum_to(p_used @ g_out, v.shape)",
        ["the gradient of v", "is wrong at element"], ["dV uses P where P's transpose belongs"]),
    "attention_backward_without_the_scale": (
        "attention_backward", "ex_attention.py",
        "        ds *= self.scale\n", "",
        ["the gradient of q", "is wrong at element"], ["the scale s is missing from dQ and dK"]),
    "attention_backward_ignores_dropout_in_dp": (
        "attention_backward", "ex_attention.py",
        "            dp *= keep\n", "            pass\n",
        ["the gradient of q", "dropout (p = 0.3)"],
        ["the gradient of P must go back through the dropout mask"]),
    "layer_norm_backward_misses_the_mean_term": (
        "layer_norm_backward", "ex_layer_norm.py",
        "dx = (g - mean_g - x_hat * mean_gx) * rstd", "dx = (g - x_hat * mean_gx) * rstd",
        ["the gradient of x", "is wrong at element"], ["misses the share of the mean μ"]),
    "layer_norm_backward_misses_the_x_hat_term": (
        "layer_norm_backward", "ex_layer_norm.py",
        "dx = (g - mean_g - x_hat * mean_gx) * rstd", "dx = (g - mean_g) * rstd",
        ["the gradient of x", "is wrong at element"], ["misses the share of the variance σ²"]),
    "layer_norm_backward_sums_dw_db_over_the_first_axis_only": (
        "layer_norm_backward", "ex_layer_norm.py",
        "sample_axes = tuple(range(gy.ndim - len(axes)))", "sample_axes = 0",
        ["gradient of shape (3, 5) for weight", "two sample axes"],
        ["must add up the contributions over all the sample axes"]),
    "layer_norm_backward_averages_dw_db": (
        "layer_norm_backward", "ex_layer_norm.py",
        "dw = (gy * x_hat).sum(axis=sample_axes) if self.inputs[1].requires_grad else None\n"
        "        db = gy.sum(axis=sample_axes)",
        "dw = (gy * x_hat).mean(axis=sample_axes) if self.inputs[1].requires_grad else None\n"
        "        db = gy.mean(axis=sample_axes)",
        ["the gradient of weight", "is wrong at element"], ["means over the samples"]),
    "lora_forward_without_the_scaling": (
        "lora_forward", "ex_lora.py",
        "return y + ((h @ self.A) * self.scaling) @ self.B", "return y + (h @ self.A) @ self.B",
        ["y is wrong at element", "with a trained adapter"],
        ["not scaled by self.scaling (α / r)"]),
    "lora_forward_with_a_and_b_swapped": (
        "lora_forward", "ex_lora.py",
        "return y + ((h @ self.A) * self.scaling) @ self.B",
        "return y + ((h @ self.B) * self.scaling) @ self.A",
        ["y is wrong at element", "LoRALinear(Linear(3, 3), r=3"],
        ["A and B are applied in the wrong order"]),
    "lora_forward_skips_dropout_in_training": (
        "lora_forward", "ex_lora.py",
        "h = F.dropout(x, self.dropout, self.training) if self.dropout else x", "h = x",
        ["y is wrong at element", "in training"],
        ["the update's input must go through dropout", "uses x itself"]),
    "lora_forward_adds_the_update_again_after_merge": (
        "lora_forward", "ex_lora.py",
        "        if self.merged:\n            return y\n", "",
        ["y is wrong at element", "after merge()"], ["adds it a second time"]),
}


def _planted_groups():
    """Split the mistakes into kits with at most one mistake per file; a mistake in an
    exercise that others need (whose code their checks run) gets a kit of its own."""
    needed = {need for e in EXERCISES for need in e.needs}
    groups = []
    for name, (exercise, file, *_rest) in PLANTED.items():
        if exercise in needed:
            groups.append([name])
            continue
        for group in groups:
            if file not in {PLANTED[n][1] for n in group} and \
                    not {PLANTED[n][0] for n in group} & needed:
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


@pytest.fixture(scope="module")
def planted_results(honest_kit, tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    groups = _planted_groups()
    for number, group in enumerate(groups):
        kit = copy_kit(honest_kit, folder / f"kit{number}")
        for name in group:
            _, file, correct, buggy, _, _ = PLANTED[name]
            replace(kit / file, correct, buggy)
    graded = {r.name: r for r in grade_path(folder, jobs=2)}
    return {name: graded[f"kit{number}"] for number, group in enumerate(groups)
            for name in group}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_mistake_is_caught_and_named(bug, planted_results):
    exercise, file, _, _, words, diagnosis = PLANTED[bug]
    graded = planted_results[bug]
    result = graded[exercise]
    assert not result.passed and result.status in ("fail", "error")
    for word in words:
        assert word in result.message, result.message
    for word in diagnosis:
        assert result.diagnosis and word in result.diagnosis, (result.message, result.diagnosis)
    assert result.hint
    report = format_kit(graded)
    assert f"FAIL  {exercise}" in report
    planted_here = {PLANTED[b][0] for b, g in planted_results.items() if g is graded}
    for other in graded.results:  # the other exercises of that kit are not blamed ...
        if other.id in planted_here:
            continue
        if set(by_id()[other.id].needs) & planted_here:  # ... unless their checks run it
            assert other.passed or any("fix" in note for note in other.notes), other.message
            continue
        assert other.passed, (other.id, other.message)


def test_diagnose_mode_never_shows_the_formula_and_full_mode_does(planted_results):
    graded = planted_results["lstm_backward_db_is_the_batch_mean"]
    result = graded["lstm_cell_backward"]
    diagnose = "\n".join(feedback_lines(result, "diagnose"))
    assert "your dz is right, but db is the mean" in diagnose
    assert result.hint not in diagnose and "hint:" not in diagnose
    assert "W_xᵀ" not in diagnose and "xp." not in diagnose
    full = "\n".join(feedback_lines(result, "full"))
    assert "hint: " + result.hint in full
    assert feedback_lines(result, "none") == ["wrong result"]
    assert "hint:" not in format_kit(graded) and "hint:" in format_kit(graded, hints="full")
    none = format_kit(graded, hints="none")
    assert "expected" not in none and "diagnosis" not in none and "FAIL  lstm_cell_backward" \
        in none


# ============================================================================= containment
@pytest.fixture(scope="module")
def chaos(honest_kit, tmp_path_factory):
    """A kit whose code hangs, exits, crashes, or does not compile — one way per file — and
    whose softmax file reports where and as whom it runs."""
    root = tmp_path_factory.mktemp("chaos")
    kit = copy_kit(honest_kit, root / "kit")
    replace(kit / "ex_sum_to.py", "    if g.shape == shape:\n", "    while True:\n        pass\n"
            "    if g.shape == shape:\n")
    replace(kit / "ex_sigmoid.py", "class Sigmoid(Function):",
            "while True:\n    pass\n\n\nclass Sigmoid(Function):")
    replace(kit / "ex_matmul.py", "a, b = self.saved_tensors", "import os; os._exit(3)")
    replace(kit / "ex_adam.py", "bias1, bias2 = 1 - beta1 ** t, 1 - beta2 ** t",
            "import sys; sys.exit(2)")
    replace(kit / "ex_pad_sequences.py", "x = np.full(", "x = = np.full(")
    replace(kit / "ex_linear.py", "return F.linear(x, self.W, self.b)",
            "import faulthandler; faulthandler._sigsegv()")
    replace(kit / "ex_softmax_cross_entropy.py", "class SoftmaxCrossEntropy(Function):",
            textwrap.dedent("""\
                import json as _json, os as _os
                print("students print things " * 100)
                raise RuntimeError("SPY" + _json.dumps({"pid": _os.getpid(), "cwd": _os.getcwd(),
                                   "device": _os.environ.get("MINIDL_DEVICE"),
                                   "file": __file__}) + "YPS")


                class SoftmaxCrossEntropy(Function):"""))
    chosen = [e for e in EXERCISES if e.id not in ("lstm_cell_forward", "adam_step")] + \
        [by_id()["adam_step"]]
    return grade_kit(kit, chosen, timeout=2.0), kit


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


@pytest.mark.skipif(os.name != "posix", reason="a segfault signal is POSIX-specific")
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
    assert graded["lstm_cell_backward"].status == "todo"  # it needs the hanging ex_sigmoid.py
    assert "sigmoid_forward" in graded["lstm_cell_backward"].message
    assert [r.id for r in graded.results][-1] == "adam_step"  # the kit's order is kept


def test_student_code_runs_in_another_process_in_a_scratch_copy_on_the_cpu(chaos):
    graded, kit = chaos
    message = graded["softmax_cross_entropy_backward"].message
    seen = json.loads(message.split("SPY", 1)[1].split("YPS", 1)[0])
    assert seen["pid"] != os.getpid()
    assert os.path.realpath(seen["cwd"]) not in (os.path.realpath(kit), os.path.realpath(
        os.getcwd()))
    assert not os.path.exists(seen["cwd"])  # the sandbox is removed after grading
    assert os.path.dirname(seen["file"]) != str(kit)  # a copy of the kit, not the kit
    assert seen["device"] == "cpu"
    assert not (kit / "__pycache__").exists()  # the student's folder is left as it was


# ============================================================================= a class
def test_a_folder_of_kits_gives_a_report_per_kit_a_csv_and_feedback(honest_kit, blank_kit,
                                                                       tmp_path, capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    copy_kit(honest_kit, folder / "alice")
    copy_kit(blank_kit, folder / "bob")
    (folder / "notes").mkdir()  # not a kit: skipped, with a warning
    status = exercises_main(["grade", str(folder), "--only", "sigmoid_forward,sum_to",
                             "--jobs", "2"])
    assert status == 1  # bob has failures
    out = capsys.readouterr().out
    assert "alice" in out and "bob" in out and "score: 2/2 (100%)" in out
    assert "notes/: skipped" in out
    rows = list(csv.reader((folder / "grades.csv").open(encoding="utf-8")))
    assert rows[0] == ["student", "sigmoid_forward", "sum_to", "passed", "total", "points",
                       "max_points", "score"]
    assert rows[1] == ["alice", "1", "1", "2", "2", "2", "2", "1.000"]
    assert rows[2] == ["bob", "0", "0", "0", "2", "0", "2", "0.000"]
    feedback = (folder / "feedback" / "bob.md").read_text(encoding="utf-8")
    assert "# Feedback for bob" in feedback and "## sum_to: FAIL" in feedback
    assert "not implemented yet" in feedback
    assert "| `sigmoid_forward` | 0/1 | not implemented yet |" in feedback


def test_weights_from_a_teacher_file_set_the_points(honest_kit, blank_kit, tmp_path, capsys):
    folder = tmp_path / "class"
    folder.mkdir()
    copy_kit(honest_kit, folder / "alice")
    weights = tmp_path / "weights.txt"
    weights.write_text("# points per exercise\nsum_to = 3\npad_sequences: 0.5\n",
                       encoding="utf-8")
    exercises_main(["grade", str(folder), "--only", "sum_to,pad_sequences", "--weights",
                    str(weights)])
    rows = list(csv.reader((folder / "grades.csv").open(encoding="utf-8")))
    assert rows[1][-3:] == ["3.5", "3.5", "1.000"]
    weights.write_text("nope = 1\n", encoding="utf-8")
    assert exercises_main(["grade", str(folder), "--weights", str(weights)]) == 2
    assert "unknown exercise" in capsys.readouterr().err


def test_lstm_backward_weighs_more_than_linear_forward():
    assert by_id()["lstm_cell_backward"].weight > by_id()["linear_forward"].weight


def test_skipped_folders_and_files_are_named(honest_kit, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    copy_kit(honest_kit, folder / "alice")
    copy_kit(honest_kit, folder / "carol" / "homework")          # one level too deep
    (folder / "dave.zip").write_bytes(b"PK")
    (folder / "alice" / "ex_sigmoid (1).py").write_text("x = 1\n", encoding="utf-8")
    warnings = []
    targets = resolve(folder)
    assert [name for name, _, _ in targets] == ["alice"]
    from minidl.exercises.grade import resolve_with_warnings
    _, warnings = resolve_with_warnings(folder)
    text = "\n".join(warnings)
    assert "carol/: skipped" in text and "carol/homework/ is one" in text
    assert "dave.zip: skipped" in text and "unpack" in text
    assert "alice/ex_sigmoid (1).py: not a file of the kit" in text


def test_grading_one_kit_file_grades_its_exercises_only(honest_kit, capsys):
    status = exercises_main(["grade", str(honest_kit / "ex_sigmoid.py")])
    out = capsys.readouterr().out
    assert status == 0 and "sigmoid_forward" in out and "sigmoid_backward" in out
    assert "matmul_backward" not in out


def test_one_kit_file_is_graded_with_the_student_s_code_it_needs(honest_kit, capsys):
    """attention_backward's check runs the student's sum_to (ex_sum_to.py) and
    lstm_cell_forward's their sigmoid_array: grading one file imports those files too."""
    for file, exercise in (("ex_attention.py", "attention_backward"),
                           ("ex_lstm_cell.py", "lstm_cell_forward")):
        status = exercises_main(["grade", str(honest_kit / file)])
        out = capsys.readouterr().out
        assert status == 0 and f"PASS  {exercise}" in out, out


def test_a_needed_file_that_hangs_on_import_is_skipped_not_a_crash(honest_kit, tmp_path):
    kit = copy_kit(honest_kit, tmp_path / "kit")
    replace(kit / "ex_sum_to.py", "def _sum_to_array(", "while True:\n    pass\n\n\n"
            "def _sum_to_array(")
    result = grade_kit(kit, [by_id()["attention_backward"]], timeout=2.0)
    assert result["attention_backward"].status == "todo"
    assert "do sum_to first" in result["attention_backward"].message


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


def test_a_missing_kit_file_fails_its_exercises(honest_kit, tmp_path):
    kit = copy_kit(honest_kit, tmp_path / "kit")
    (kit / "ex_adam.py").unlink()
    result = grade_kit(kit, [by_id()["adam_step"]])
    assert result["adam_step"].status == "fail"
    assert "ex_adam.py is missing" in result["adam_step"].message


def test_csv_lists_each_exercise_as_0_or_1(honest_kit):
    text = csv_text([grade_kit(honest_kit, [by_id()["pad_sequences"]])])
    assert text.splitlines() == ["student,pad_sequences,passed,total,points,max_points,score",
                                 f"{honest_kit.name},1,1,1,1,1,1.000"]


# ============================================================================= pieces
def test_returned_values_are_numeric_arrays_or_fail_by_name():
    np.testing.assert_array_equal(numeric(Returned("ndarray", array=np.array([1.0, 2.0])), "y"),
                                  [1.0, 2.0])
    with pytest.raises(CheckFailure, match="y: your code returned None"):
        numeric(Returned("NoneType"), "y")
    with pytest.raises(CheckFailure, match="expected an array of numbers"):
        numeric(Returned("str", bad="<U3"), "y")


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
    args = parser.parse_args(["grade", "kits", "--timeout", "3", "--csv", "out.csv",
                              "--hints", "none", "--allow-solutions"])
    assert (args.path, args.timeout, args.csv, args.hints) == ("kits", 3.0, "out.csv", "none")
    assert args.allow_solutions and callable(args.run)
    assert build_parser().parse_args(["export", "kit"]).directory == "kit"


def test_export_from_the_command_line(tmp_path, capsys):
    assert exercises_main(["export", str(tmp_path / "kit")]) == 0
    assert (tmp_path / "kit" / "ex_sigmoid.py").exists()
    assert exercises_main(["export", str(tmp_path / "kit")]) == 2  # would overwrite
    assert "--force" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="runs a kit file as a script")
def test_running_a_kit_file_grades_it(honest_kit):
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(md.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    done = subprocess.run([sys.executable, str(honest_kit / "ex_sum_to.py")], env=env,
                          capture_output=True, text=True, timeout=120, cwd=honest_kit)
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


# ============================================================================= a teacher's own
TEACHER_PROBE = '''\
import numpy as np


def probe(kit, rec):
    relu = kit.get("relu")
    x = np.linspace(-2.0, 2.0, 9)
    rec.call("y", relu, x.copy())
'''
TEACHER_CHECK = '''\
import numpy as np

from minidl.exercises.assertions import CheckFailure, assert_close
from reference import relu  # beside this file; it never reaches the worker


def judge(out, ctx):
    x = np.linspace(-2.0, 2.0, 9)
    y = out.array("y", "relu(x)")
    if (y < 0).any():
        raise CheckFailure("relu(x) has negative values", "negative inputs must give 0")
    assert_close("relu(x)", y, relu(x))
'''


@pytest.fixture
def teacher_folder(tmp_path):
    from minidl.exercises.registry import clear_extra
    folder = tmp_path / "teacher" / "relu"
    folder.mkdir(parents=True)
    (folder / "exercise.json").write_text(json.dumps({
        "id": "relu_forward", "title": "ReLU on an array", "file": "ex_relu.py",
        "unit": "relu", "task": "return max(x, 0) elementwise", "hint": "np.maximum",
        "weight": 2}), encoding="utf-8")
    (folder / "probe.py").write_text(TEACHER_PROBE, encoding="utf-8")
    (folder / "check.py").write_text(TEACHER_CHECK, encoding="utf-8")
    (folder / "reference.py").write_text("import numpy as np\n\n\ndef relu(x):\n"
                                         "    return np.maximum(x, 0)\n", encoding="utf-8")
    (folder / "ex_relu.py").write_text('def relu(x):\n    """max(x, 0) elementwise."""\n'
                                       '    raise NotImplementedError("exercise relu_forward is '
                                       'not implemented yet")\n', encoding="utf-8")
    yield folder.parent
    clear_extra()


def test_a_teacher_adds_an_exercise_from_a_folder(teacher_folder, tmp_path, capsys):
    classroom = tmp_path / "class"
    export_kit(classroom / "alice", extra=teacher_folder)
    export_kit(classroom / "bob", extra=teacher_folder)
    assert "relu_forward" in (classroom / "alice" / "kit.json").read_text(encoding="utf-8")
    (classroom / "alice" / "ex_relu.py").write_text(
        "import numpy as np\n\n\ndef relu(x):\n    return np.maximum(x, 0)\n", encoding="utf-8")
    (classroom / "bob" / "ex_relu.py").write_text(  # bob tries to read the teacher's answer
        f"import runpy\nrelu = runpy.run_path({str(teacher_folder / 'relu' / 'reference.py')!r})"
        f"['relu']\n", encoding="utf-8")
    exercises_main(["grade", str(classroom), "--only", "relu_forward", "--extra",
                    str(teacher_folder)])
    out = capsys.readouterr().out
    rows = list(csv.reader((classroom / "grades.csv").open(encoding="utf-8")))
    assert rows[0] == ["student", "relu_forward", "passed", "total", "points", "max_points",
                       "score"]
    assert rows[1] == ["alice", "1", "1", "1", "2", "2", "1.000"]
    assert rows[2][:2] == ["bob", "0"]
    assert "does not let student code open" in " ".join(out.split())


# ============================================================================= new references
def test_the_engine_reference_gives_the_gradients_of_tensor_backward():
    from minidl.exercises.checks import _engine_graphs, _engine_leaves
    from minidl.exercises.engine import backward_pass
    for _, build in _engine_graphs():
        expected, got = _engine_leaves(md), _engine_leaves(md)
        for (root, grad), (root2, grad2) in zip(build(md, *expected), build(md, *got)):
            root.backward(np.array(grad, dtype=np.float64) * np.ones(root.shape))
            backward_pass(root2, np.array(grad2, dtype=np.float64) * np.ones(root2.shape))
        for e, g in zip(expected, got):
            assert (e.grad is None) == (g.grad is None)
            if e.grad is not None:
                np.testing.assert_allclose(g.grad.data, e.grad.data, rtol=1e-12)


def test_the_rnn_reference_agrees_with_the_same_rnn_from_primitives():
    from minidl.exercises.rnn import rnn
    rng = np.random.default_rng(0)
    B, T, D, H = 2, 5, 3, 4

    def leaf(*shape, scale=1.0):
        return md.tensor(rng.standard_normal(shape) * scale, dtype="float64",
                         requires_grad=True)

    x, h0, W_x, W_h, b = leaf(B, T, D), leaf(B, H), leaf(D, H, scale=0.5), \
        leaf(H, H, scale=0.5), leaf(H)
    h, steps = h0, []
    for t in range(T):
        h = md.functions.tanh(x[:, t] @ W_x + h @ W_h + b)
        steps.append(h)
    expected = md.functions.stack(steps, axis=1)
    np.testing.assert_allclose(rnn(x, h0, W_x, W_h, b).numpy(), expected.numpy(), rtol=1e-12)
    md.gradcheck(rnn, x, h0, W_x, W_h, b, mode="elementwise")


def test_the_attention_and_layer_norm_checks_mirror_the_references_that_pass_gradcheck():
    """Without a mistake switched on, the NumPy backwards that recognise the planted mistakes
    give the reference's gradients on every case of their checks, and the references pass a
    float64 numerical gradient check on those cases."""
    from minidl.exercises.assertions import upstream_for
    from minidl.exercises.checks import (_LAYER_NORM_EPS, _attention_backward_numpy,
                                         _attention_cases, _layer_norm_backward_numpy,
                                         _layer_norm_cases)
    from minidl.functions.attention import ScaledDotProductAttention
    from minidl.functions.normalization import LayerNorm

    def leaves(arrays):
        return [md.tensor(a, dtype="float64", device="cpu", requires_grad=True) for a in arrays]

    for n, (_, q, k, v, scale, bias, keep) in enumerate(_attention_cases()):
        inputs = leaves([q, k, v])
        function = ScaledDotProductAttention(scale, bias, keep)
        (g_out,) = upstream_for([function(*inputs).shape], n)
        for got, expected in zip(_attention_backward_numpy(q, k, v, scale, bias, keep, g_out),
                                 function.backward(g_out.copy())):
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
        md.gradcheck(lambda *a: ScaledDotProductAttention(scale, bias, keep)(*a), *inputs,
                     mode="elementwise")
    for n, (_, n_axes, arrays) in enumerate(_layer_norm_cases()):
        inputs = leaves(arrays)
        function = LayerNorm(n_axes, _LAYER_NORM_EPS)
        (gy,) = upstream_for([function(*inputs).shape], n)
        expected = function.backward(gy.copy())
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = _layer_norm_backward_numpy(*arrays, n_axes=n_axes, gy=gy)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
        md.gradcheck(lambda *a: LayerNorm(n_axes, _LAYER_NORM_EPS)(*a), *inputs,
                     mode="elementwise")


def test_the_lora_check_mirrors_lora_linear_and_minidl_s_dropout_mask():
    """The expected values of lora_forward's check are LoRALinear's outputs: in training with
    the mask minidl draws right after manual_seed, in evaluation without it, and after merge."""
    from minidl.exercises.checks import (_LORA_DROPOUT, _LORA_SEEDS, _lora_cases, _lora_mask,
                                         _lora_numpy)
    from minidl.nn.lora import LoRALinear
    for n_in, n_out, r, alpha, x, W, b, A, B in _lora_cases():
        base = md.nn.Linear(n_in, n_out, dtype="float64", device="cpu")
        base.W.data, base.b.data = W.copy(), b.copy()
        layer = LoRALinear(base, r=r, alpha=alpha, dropout=_LORA_DROPOUT)
        layer.A.data, layer.B.data = A.copy(), B.copy()
        x_tensor = md.tensor(x, dtype="float64", device="cpu")
        md.manual_seed(_LORA_SEEDS["train"])
        mask = _lora_mask(x.shape, _LORA_SEEDS["train"])
        np.testing.assert_allclose(layer.train()(x_tensor).numpy(),
                                   _lora_numpy(x, W, b, A, B, alpha / r, mask=mask), rtol=1e-12)
        expected = _lora_numpy(x, W, b, A, B, alpha / r)
        np.testing.assert_allclose(layer.eval()(x_tensor).numpy(), expected, rtol=1e-12)
        layer.merge()
        np.testing.assert_allclose(layer(x_tensor).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_each_exercise_is_named_in_its_lesson():
    from pathlib import Path
    lessons = Path(__file__).resolve().parents[1] / "lessons"
    for exercise in EXERCISES:
        (path,) = lessons.glob(f"{exercise.lesson:02d}_*.py")
        assert f"`{exercise.id}`" in path.read_text(encoding="utf-8"), (exercise.id, path.name)
