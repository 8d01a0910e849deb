"""benchmarks/profile_step.py: its NumPy calls are classified and its slices add up to the step."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import profile_step  # noqa: E402
from bench_train import Config, initial_weights, make_batches, minidl_runner  # noqa: E402

from minidl import backend  # noqa: E402

TINY_MLP = Config("tiny mlp", "mlp", 4, 0, 2, "", None)


MATRIX = np.ones((2, 3))


@pytest.mark.parametrize("name, args, result, expected", [
    ("matmul", (MATRIX, MATRIX.T), None, "BLAS"),
    ("@", (MATRIX, MATRIX.T), None, "BLAS"),
    ("exp", (MATRIX,), None, "elementwise"),
    ("*=", (MATRIX, MATRIX), None, "elementwise"),
    ("sum", (MATRIX,), None, "elementwise"),
    ("add.at", (np.ones(3), np.array([0, 0]), np.ones(2)), None, "copies"),
    ("ascontiguousarray", (MATRIX.T,), None, "copies"),
    ("getitem", (MATRIX, np.array([0, 1])), None, "copies"),
    ("getitem", (MATRIX, slice(0, 1)), None, "other"),
    ("transpose", (MATRIX,), MATRIX.T, "other"),
])
def test_calls_are_classified_by_numpy_name(name, args, result, expected):
    assert profile_step.classify(name, args, result)[0] == expected


def test_a_reshape_that_copies_counts_as_a_copy():
    transposed = np.ones((2, 3)).T
    assert profile_step.classify("reshape", (transposed,), transposed.reshape(6)) == \
        ("copies", "reshape (copied)")
    contiguous = np.ones((2, 3))
    assert profile_step.classify("reshape", (contiguous,), contiguous.reshape(6))[0] == "other"


def test_profiled_step_times_the_products_and_matches_the_cpu_loss():
    weights, batches = initial_weights(TINY_MLP), make_batches(TINY_MLP)
    with profile_step.profiling_device() as recorder:
        profiled = minidl_runner(TINY_MLP, weights, batches, profile_step.PROFILED)
        calls = profile_step.profiled_step(profiled, 0, recorder)
        profiled_loss = profiled.value(profiled.step(1))
    assert profile_step.PROFILED not in backend.DEVICES
    forward_products = {shapes for (phase, _, shapes, kind) in calls
                        if phase == "forward" and kind == "BLAS"}
    assert forward_products == {((4, 784), (784, 256)), ((4, 256), (256, 256)),
                                ((4, 256), (256, 10))}
    assert {kind for *_, kind in calls} >= {"BLAS", "elementwise"}
    assert recorder.activation_bytes  # the forward's outputs were seen
    cpu = minidl_runner(TINY_MLP, weights, batches, "cpu")
    cpu.step(0)
    assert cpu.value(cpu.step(1)) == pytest.approx(profiled_loss, rel=1e-6)


def test_python_is_the_median_of_each_pair_s_step_minus_its_array_time():
    def calls(blas, elementwise):
        return {("forward", "@", ((4, 3), (3, 2)), "BLAS"): [blas, 1],
                ("backward", "exp", ((4, 2),), "elementwise"): [elementwise, 1]}
    pairs = [(10.0, calls(4.0, 1.0)), (20.0, calls(8.0, 2.0)), (12.0, calls(5.0, 1.0))]
    summary = profile_step.summarise(pairs)
    assert summary["step"] == 12.0
    assert summary["slices"] == {"BLAS": 5.0, "elementwise": 1.0, "copies": 0, "other": 0}
    assert summary["python"] == 6.0  # pairs: 10 - 5, 20 - 10, 12 - 6
    assert summary["phases"] == {"forward": 5.0, "backward": 1.0, "optimizer": 0}


def test_a_workload_is_profiled_beside_its_plain_step():
    result = profile_step.profile_workload(TINY_MLP, None, steps=2)
    assert set(result["slices"]) == set(profile_step.SLICES)
    assert all(seconds >= 0 for seconds in result["slices"].values())
    assert result["step"] > 0 and result["one_pass"] > 0 and result["torch"] is None
    assert result["losses"][0] == pytest.approx(result["losses"][1], rel=1e-6)
    # the replay runs the step's products again by themselves (no PyTorch here: NumPy only)
    assert set(result["replay"]) == {"numpy"} and result["replay"]["numpy"] > 0


def test_blas_replay_runs_each_product_as_often_as_the_step(monkeypatch):
    shapes = {}
    monkeypatch.setattr(profile_step, "PAUSE_S", 0.0)
    monkeypatch.setattr(profile_step, "BLOCK_S", 0.0)
    monkeypatch.setattr(profile_step.np, "matmul",
                        lambda a, b: shapes.__setitem__((a.shape, b.shape),
                                                        shapes.get((a.shape, b.shape), 0) + 1))
    ops = {("forward", "@", ((4, 3), (3, 2)), "BLAS"): (1e-3, 2),
           ("backward", "@", ((4, 3), (3, 2)), "BLAS"): (1e-3, 1),
           ("forward", "tanh", ((4, 3),), "elementwise"): (1e-3, 5)}
    profile_step.blas_replay(ops, None, count=1)
    # 3 per run; take_turns: 2 warm-up runs, then a block of 2 (its first is not counted)
    assert shapes == {((4, 3), (3, 2)): 3 * 4}
