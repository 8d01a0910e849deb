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


def test_the_error_carries_input_element_values_tolerances_and_mode():
    a, b = randn(3, 3, seed=0), randn(3, 3, seed=1)
    a.name = "A"
    with pytest.raises(md.GradcheckError) as caught:
        md.gradcheck(lambda a, b: MatMulTransposedGrad()(a, b), a, b, mode="elementwise",
                     atol=1e-6, rtol=1e-4)
    error = caught.value
    assert isinstance(error, AssertionError)
    assert (error.input_index, error.input_name, error.shape) == (0, "A", (3, 3))
    assert error.mode == "elementwise" and len(error.index) == 2
    assert all(isinstance(i, int) and 0 <= i < 3 for i in error.index)
    assert (error.atol, error.rtol) == (1e-6, 1e-4)
    assert abs(error.numerical - error.analytical) > error.atol + error.rtol * abs(
        error.numerical)
    assert str(error) == (f"gradcheck failed for input 0 ('A') (shape (3, 3)): worst element "
                          f"{error.index}: numerical {error.numerical:.6g} vs analytical "
                          f"{error.analytical:.6g}")


def test_numerical_is_the_finite_difference_and_analytical_is_backward_s_value():
    class ForgetsItsGradient(md.Function):
        """y = 2x whose backward returns 0: analytical 0, numerical 2·g ≠ 0."""

        def forward(self, x):
            return 2 * x

        def backward(self, gy):
            return 0 * gy

    with pytest.raises(md.GradcheckError) as caught:
        md.gradcheck(lambda x: ForgetsItsGradient()(x), randn(3, seed=0), mode="elementwise")
    assert caught.value.analytical == 0 and abs(caught.value.numerical) > 1e-3


def test_a_wrong_parameter_gradient_is_named_by_its_wrt_key():
    layer = md.nn.Linear(3, 2)

    class DropsBiasGrad(md.Function):
        def forward(self, x, W, b):
            self.save_for_backward(x, W)
            return x @ W + b

        def backward(self, gy):
            x, W = self.saved_tensors
            return gy @ W.T, x.T @ gy, 0 * gy.sum(axis=0)

    with pytest.raises(md.GradcheckError) as caught:
        md.gradcheck(lambda x: DropsBiasGrad()(x, layer.W, layer.b), randn(4, 3, seed=0),
                     wrt=dict(layer.named_parameters()))
    error = caught.value
    assert (error.input_index, error.input_name, error.shape) == (None, "b", (2,))
    assert str(error).startswith("gradcheck failed for b (shape (2,)): worst element (")


def test_directional_mode_names_the_worst_element_found_after_the_direction_failed():
    x = randn(5, seed=2)
    with pytest.raises(md.GradcheckError) as caught:
        md.gradcheck(lambda x: SigmoidWrongGrad()(x), x)
    assert caught.value.mode == "elementwise" and len(caught.value.index) == 1
    assert caught.value.input_index == 0


def test_a_directional_failure_has_no_element():
    error = md.GradcheckError(input_index=2, input_name=None, shape=(4, 5), mode="directional",
                              index=None, numerical=1.0, analytical=3.0, atol=1e-5, rtol=1e-3)
    assert isinstance(error, AssertionError) and error.index is None
    assert str(error) == ("gradcheck failed for input 2 (shape (4, 5)) along a random "
                          "direction: numerical 1 vs analytical 3")


def test_the_error_survives_pickling_with_its_fields():
    import pickle
    error = md.GradcheckError(0, "x", (3,), "elementwise", (1,), 0.5, -0.5, 1e-5, 1e-3)
    copy = pickle.loads(pickle.dumps(error))
    assert vars(copy) == vars(error) and str(copy) == str(error)


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
