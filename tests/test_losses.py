"""Losses: values against their formulas, stability at extreme inputs, gradchecks, errors."""
import numpy as np
import pytest

import minidl as md
import minidl.functions as F
from minidl import nn
from conftest import randn

RNG = np.random.default_rng(0)


def test_binary_cross_entropy_matches_the_formula():
    p = np.array([[0.9], [0.2], [0.6]])
    y = np.array([[1.0], [0.0], [1.0]])
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    np.testing.assert_allclose(F.binary_cross_entropy(md.tensor(p), y).item(), expected)


def test_binary_cross_entropy_clips_like_keras():
    loss = F.binary_cross_entropy(md.tensor([0.0, 1.0], dtype="float64"), [1.0, 0.0])
    np.testing.assert_allclose(loss.item(), -np.log(1e-7), rtol=1e-6)


def test_binary_cross_entropy_gradcheck():
    p = md.tensor(RNG.uniform(0.05, 0.95, (4, 1)), requires_grad=True)
    assert md.gradcheck(lambda p: F.binary_cross_entropy(p, np.array([[1.0], [0], [1], [0]])), p)


def test_bce_with_logits_matches_bce_of_sigmoid():
    z = RNG.standard_normal(6)
    y = (RNG.uniform(size=6) > 0.5).astype(float)
    a = F.binary_cross_entropy_with_logits(md.tensor(z), y).item()
    b = F.binary_cross_entropy(F.sigmoid(md.tensor(z)), y).item()
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bce_with_logits_is_stable_for_huge_logits():
    z = md.tensor([-1e4, 1e4, -1e4, 1e4], dtype="float64", requires_grad=True)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [0, 0, 1e4, 1e4])
    np.testing.assert_allclose(z.grad.numpy(), [0, 0, -1, 1])


def test_bce_with_logits_gradcheck_for_logits_and_targets():
    z, y = randn(5, seed=1), md.tensor(RNG.uniform(size=5), requires_grad=True)
    assert md.gradcheck(F.binary_cross_entropy_with_logits, z, y)


def test_cross_entropy_matches_the_formula_and_ignores_ignore_index():
    logits = RNG.standard_normal((4, 3))
    target = np.array([2, 0, -100, 1])
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -np.mean([log_p[0, 2], log_p[1, 0], log_p[3, 1]])
    np.testing.assert_allclose(F.cross_entropy(md.tensor(logits), target).item(), expected)


def test_cross_entropy_gradcheck_with_sequence_targets():
    logits = randn(2, 3, 5, seed=2)
    target = np.array([[1, 4, 0], [-100, 2, 2]])
    assert md.gradcheck(lambda x: F.cross_entropy(x, target), logits)
    assert md.gradcheck(lambda x: F.cross_entropy(x, target, reduction="sum"), logits)


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_fused_cross_entropy_agrees_with_log_softmax_and_indexing(device):
    logits = randn(6, 5, seed=4, device=device)
    target = np.array([0, 4, 2, 2, -100, 1])
    fused = F.cross_entropy(logits, target, reduction="none")
    keep = target != -100
    picked = F.log_softmax(logits, axis=1)[np.arange(6), np.where(keep, target, 0)]
    reference = -picked * md.tensor(keep.astype(float), device=device)
    np.testing.assert_allclose(fused.numpy(), reference.numpy(), rtol=1e-12)
    g = np.random.default_rng(0).standard_normal(6)
    fused.backward(g)
    fused_grad = logits.grad.numpy()
    logits.grad = None
    reference.backward(g)
    np.testing.assert_allclose(fused_grad, logits.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_cross_entropy_target_out_of_range_names_it():
    with pytest.raises(IndexError, match=r"class target 3 .* \[0, 2\]"):
        F.cross_entropy(md.tensor(np.zeros((2, 3))), np.array([0, 3]))


def test_cross_entropy_shape_mismatch_is_explained():
    with pytest.raises(md.ShapeError, match=r"target shape \(3,\) must be logits shape"):
        F.cross_entropy(md.tensor(np.zeros((2, 3))), np.array([0, 1, 2]))


def test_mse_loss_and_reductions():
    p, y = md.tensor([1.0, 2.0, 4.0]), np.array([1.0, 0.0, 1.0], dtype=np.float32)
    assert F.mse_loss(p, y).item() == pytest.approx(13 / 3)
    assert F.mse_loss(p, y, reduction="sum").item() == pytest.approx(13)
    np.testing.assert_allclose(F.mse_loss(p, y, reduction="none").numpy(), [0, 4, 9])
    assert md.gradcheck(F.mse_loss, randn(3, 2, seed=0), randn(3, 2, seed=1))


def test_target_shape_mismatch_says_how_to_fix_it():
    with pytest.raises(md.ShapeError, match=r"target shape \(3,\) must equal prediction shape "
                                            r"\(3, 1\)"):
        F.binary_cross_entropy(md.tensor(np.full((3, 1), 0.5)), np.ones(3))


def test_host_targets_are_moved_to_the_prediction_device():
    p = md.tensor([[0.5]], device="strict")
    assert F.binary_cross_entropy(p, np.array([[1.0]])).device == "strict"
    assert F.cross_entropy(md.tensor(np.zeros((2, 3)), device="strict"), [0, 2]).device == \
        "strict"


def test_unknown_reduction_is_an_error():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


def test_loss_modules_call_the_functions():
    p = md.tensor([[0.3], [0.8]])
    y = np.array([[0.0], [1.0]], np.float32)
    assert nn.BCELoss()(p, y).item() == pytest.approx(F.binary_cross_entropy(p, y).item())
    logits = md.tensor(np.zeros((2, 4)))
    assert nn.CrossEntropyLoss()(logits, [1, 2]).item() == pytest.approx(np.log(4))
    assert nn.BCEWithLogitsLoss()(md.tensor([0.0]), [1.0]).item() == pytest.approx(np.log(2))
