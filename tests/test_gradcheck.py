"""md.gradcheck itself: it passes correct gradients and catches (and names) wrong ones — the
typical bugs a student writes."""
import numpy as np
import pytest

import minidl as md
import minidl.functions as F
from minidl.functions.shape import sum_to
from conftest import randn


class MatMulTransposedGrad(md.Function):
    """A planted bug: dA = dY @ B instead of dY @ Bᵀ (shapes agree only when B is square)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, gy):
        a, b = self.saved_tensors
        return gy @ b, a.T @ gy


class AddWithoutSumTo(md.Function):
    """A planted bug: b (4,) was broadcast over the rows of a (3, 4), but its gradient takes
    one row of gy instead of summing all rows (right shape, wrong values)."""

    def forward(self, a, b):
        self.a_shape = a.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.a_shape), gy[0]


class AddReturningBroadcastShape(md.Function):
    """A planted bug: returns gy for the broadcast input, with the wrong shape."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return gy, gy


class SigmoidWrongGrad(md.Function):
    """A planted bug: σ' written as σ instead of σ(1 − σ)."""

    def forward(self, x):
        y = 1 / (1 + np.exp(-x))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        y, = self.saved_tensors
        return gy * y


def test_correct_gradients_pass_in_both_modes():
    x, W = randn(3, 4, seed=0), randn(4, 2, seed=1)
    assert md.gradcheck(lambda x, W: F.tanh(x @ W), x, W)
    assert md.gradcheck(lambda x, W: F.tanh(x @ W), x, W, mode="elementwise")


def test_a_transposed_matmul_gradient_is_caught_and_named():
    a, b = randn(3, 3, seed=0), randn(3, 3, seed=1)
    with pytest.raises(md.GradcheckError, match=r"input 0 \(shape \(3, 3\)\).*worst element "
                                                r"\(\d, \d\): numerical .* vs analytical"):
        md.gradcheck(lambda a, b: MatMulTransposedGrad()(a, b), a, b)


def test_a_missing_sum_to_is_caught():
    a, b = randn(3, 4, seed=0), randn(4, seed=1)
    with pytest.raises(md.GradcheckError, match="input 1"):
        md.gradcheck(lambda a, b: AddWithoutSumTo()(a, b), a, b)


def test_a_gradient_of_the_wrong_shape_is_named_by_the_engine():
    a, b = randn(3, 4, seed=0), randn(4, seed=1)
    with pytest.raises(md.GradientError, match=r"AddReturningBroadcastShape.backward returned a "
                                               r"gradient of shape \(3, 4\) for an input of "
                                               r"shape \(4,\)"):
        md.gradcheck(lambda a, b: AddReturningBroadcastShape()(a, b), a, b)


def test_a_wrong_sigmoid_derivative_is_caught_in_elementwise_mode():
    x = randn(5, seed=2)
    with pytest.raises(md.GradcheckError, match=r"worst element \(\d,\)"):
        md.gradcheck(lambda x: SigmoidWrongGrad()(x), x, mode="elementwise")


def test_sum_as_upstream_would_hide_a_transpose_bug_but_a_random_one_does_not():
    """B is not symmetric, but its rows and columns have equal sums, so with L = sum(Y) the
    transposed gradient dY @ B equals dY @ Bᵀ; gradcheck's random upstream gradient catches it."""
    a = randn(3, 3, seed=4)
    b = md.tensor(np.array([[1.0, 2, 3], [3, 1, 2], [2, 3, 1]]), requires_grad=True)
    wrong = MatMulTransposedGrad()(a, b)
    wrong.sum().backward()
    right = md.tensor(a.numpy(), requires_grad=True)
    (right @ b.detach()).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), right.grad.numpy())  # sum() cannot tell
    with pytest.raises(md.GradcheckError):
        md.gradcheck(lambda a, b: MatMulTransposedGrad()(a, b), a, b)


def test_wrt_checks_module_parameters_and_restores_them():
    layer = md.nn.Linear(3, 2)
    before = {k: v.copy() for k, v in layer.state_dict().items()}
    assert md.gradcheck(lambda x: F.sigmoid(layer(x)), randn(4, 3, seed=0),
                        wrt=dict(layer.named_parameters()))
    for name, p in layer.named_parameters():
        assert p.dtype == np.float32 and p.grad is None
        np.testing.assert_array_equal(p.numpy(), before[name])


def test_float32_inputs_are_checked_in_float64():
    x = md.tensor(np.random.default_rng(0).standard_normal(5), requires_grad=True, dtype="float32")
    assert x.dtype == np.float32
    assert md.gradcheck(F.tanh, x)


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="nothing to check"):
        md.gradcheck(F.tanh, md.tensor([1.0]))


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="mode"):
        md.gradcheck(F.tanh, randn(2), mode="fast")


def test_integer_inputs_pass_through_unchecked():
    W = randn(5, 3, seed=0)
    ids = md.tensor([[0, 4], [2, 2]])
    assert md.gradcheck(lambda W, ids: F.embedding(ids, W), W, ids)
