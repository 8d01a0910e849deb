"""The autograd engine's contracts: accumulation, graph shapes, repeated backward, long graphs,
higher-order derivatives, no_grad, and errors that teach."""
import sys

import numpy as np
import pytest

import minidl as md
import minidl.functions as F


def test_value_used_twice_gets_both_contributions():
    x = md.tensor(3.0, requires_grad=True)
    (x * x).backward()              # d(x²)/dx = 2x
    assert x.grad.item() == 6.0


def test_diamond_graph_sums_both_paths():
    x = md.tensor(2.0, requires_grad=True)
    a, b = x * 3, x.exp()
    (a * b).backward()              # d(3x·eˣ)/dx = 3eˣ + 3x·eˣ
    np.testing.assert_allclose(x.grad.item(), 3 * np.exp(2) * 3, rtol=1e-6)


def test_backward_twice_accumulates_and_clearing_resets():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    y.backward()                    # the graph is kept: the same gradient is added again
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    x.grad = None
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_gradient_of_a_broadcast_input_has_the_input_shape():
    x = md.tensor(np.ones((3, 1)), requires_grad=True)
    b = md.tensor(np.arange(4.0), requires_grad=True)
    (x * b).sum().backward()
    assert x.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 1), 6.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 3.0))


def test_a_2000_step_graph_does_not_hit_the_recursion_limit():
    x = md.tensor(0.5, requires_grad=True, dtype="float64")
    y = x
    for _ in range(2000):
        y = F.tanh(y) * 1.0 + 0.001
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)      # the engine is iterative: it needs no recursion at all
    try:
        y.backward()
    finally:
        sys.setrecursionlimit(limit)
    assert np.isfinite(x.grad.item())


def test_only_leaves_keep_gradients():
    x = md.tensor([1.0], requires_grad=True)
    h = x * 2
    (h * 3).sum().backward()
    assert h.grad is None and x.grad.item() == 6.0


def test_constants_get_no_gradient():
    x = md.tensor([1.0], requires_grad=True)
    c = md.tensor([5.0])
    (x * c).sum().backward()
    assert c.grad is None


def test_backward_on_a_non_scalar_without_grad_says_how_to_fix_it():
    y = md.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(md.GradientError, match=r"shape \(2,\).*y\.sum\(\)"):
        y.backward()


def test_backward_with_an_explicit_gradient():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(np.array([1.0, -1.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, -3.0])


def test_backward_grad_of_the_wrong_shape_is_an_error():
    y = md.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(md.ShapeError, match=r"grad has shape \(3,\)"):
        y.backward(np.ones(3))


def test_backward_without_requires_grad_is_an_error():
    with pytest.raises(md.GradientError, match="does not require grad"):
        (md.tensor([1.0]) * 2).sum().backward()


def test_no_grad_records_nothing():
    x = md.tensor([1.0], requires_grad=True)
    with md.no_grad():
        y = x * 2
        assert not md.is_grad_enabled()
    assert md.is_grad_enabled()
    assert y.creator is None and not y.requires_grad


def test_no_grad_as_a_decorator():
    @md.no_grad()
    def f(x):
        return x * 2
    assert f(md.tensor([1.0], requires_grad=True)).creator is None


def test_detach_cuts_the_graph():
    x = md.tensor([2.0], requires_grad=True)
    y = x * x.detach()
    y.sum().backward()
    assert x.grad.item() == 2.0


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        md.tensor([1, 2], requires_grad=True)


def test_float_data_defaults_to_float32_and_arrays_keep_their_dtype():
    assert md.tensor([1.0, 2.0]).dtype == np.float32
    assert md.tensor([1, 2]).dtype == np.int64
    assert md.tensor(np.ones(2)).dtype == np.float64


def test_tensor_copies_its_data():
    a = np.ones(2)
    t = md.tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 1.0


def test_second_derivative_of_tanh():
    x = md.tensor(0.7, requires_grad=True, dtype="float64")
    F.tanh(x).backward(create_graph=True)
    first = x.grad
    x.grad = None
    first.backward()
    t = np.tanh(0.7)
    np.testing.assert_allclose(first.item(), 1 - t * t)
    np.testing.assert_allclose(x.grad.item(), -2 * t * (1 - t * t))


def test_newtons_method_finds_the_minimum_with_second_derivatives():
    """Minimise f(x) = x⁴ − 2x² + x/2 from x = 2 with x ← x − f'(x)/f''(x)."""
    x = md.tensor(2.0, requires_grad=True, dtype="float64")
    for _ in range(20):
        y = x ** 4 - 2 * x ** 2 + 0.5 * x
        y.backward(create_graph=True)
        gx = x.grad
        x.grad = None
        gx.backward()
        x = md.tensor(x.data - gx.data / x.grad.data, requires_grad=True)
    v = x.item()
    assert abs(4 * v ** 3 - 4 * v + 0.5) < 1e-10          # f'(x) = 0
    assert 12 * v ** 2 - 4 > 0                             # a minimum


@pytest.mark.parametrize("fn", [
    lambda x: (x * x * x).sum(), lambda x: F.sigmoid(x).sum(), lambda x: (F.exp(x) / x).sum(),
    lambda x: F.log_softmax(x, axis=0)[1], lambda x: (x.reshape(2, 2) @ x.reshape(2, 2)).sum(),
    lambda x: (x.max() * x).sum(), lambda x: F.softmax(x.reshape(2, 2), axis=1)[0, 1],
    lambda x: (F.tanh(x) ** 2).mean(), lambda x: (x[[0, 0, 3]] * x[1:]).sum(),
], ids=["cube", "sigmoid", "exp_div", "log_softmax", "matmul", "max", "softmax", "tanh_pow",
        "getitem"])
def test_gradients_of_gradients_pass_gradcheck(fn):
    """create_graph=True makes the gradient itself differentiable; check it numerically."""
    def gradient(x):
        with md.enable_grad():
            (g,) = md.grad(fn(x), [x], create_graph=True)
        return g

    x = md.tensor(np.abs(np.random.default_rng(3).standard_normal(4)) + 0.5, dtype="float64",
                  requires_grad=True)
    assert md.gradcheck(gradient, x)


def test_grad_returns_gradients_and_leaves_dot_grad_alone():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    x.grad = md.tensor([9.0, 9.0])
    (g,) = md.grad((x * x).sum(), [x])
    np.testing.assert_array_equal(g.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), [9.0, 9.0])


def test_create_graph_through_a_first_order_only_op_is_an_error():
    z = md.tensor([0.5], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, np.array([1.0], dtype=np.float32))
    with pytest.raises(md.GradientError, match="BCEWithLogits"):
        loss.backward(create_graph=True)


def test_different_devices_in_one_op_are_a_clear_error():
    a = md.tensor([1.0], device="cpu")
    b = md.tensor([1.0], device="strict")
    with pytest.raises(md.DeviceError, match="different devices.*cpu, strict"):
        a + b


def test_repr_shows_values_and_grad_status():
    assert repr(md.tensor([1.0, 2.0], requires_grad=True, device="cpu")) == \
        "tensor([1., 2.], requires_grad=True)"
    assert "creator=Mul" in repr(md.tensor([1.0], requires_grad=True) * 2)
    assert "device='strict'" in repr(md.tensor([1.0], device="strict"))


def test_item_needs_one_element():
    with pytest.raises(ValueError, match=r"one element, got shape \(2,\)"):
        md.tensor([1.0, 2.0]).item()


def test_a_function_returning_the_wrong_gradient_shape_is_named():
    class Broken(md.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy.sum()

    x = md.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(md.GradientError, match=r"Broken.backward returned a gradient of shape"):
        Broken()(x).sum().backward()


def test_multi_output_function_with_an_unused_output():
    class Split(md.Function):
        def forward(self, x):
            return x[:1] * 1, x[1:] * 1

        def backward(self, ga, gb):
            return backend_concat(ga, gb)

    import minidl.backend as backend

    def backend_concat(a, b):
        return backend.get_array_module(a).concatenate([a, b])

    x = md.tensor([1.0, 2.0, 3.0], requires_grad=True)
    first, _ = Split()(x)
    (first * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 0.0, 0.0])
