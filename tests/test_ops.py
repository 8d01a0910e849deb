"""Every primitive op: forward values against NumPy formulas, and a float64 gradient check with a
random upstream gradient over shape families that include broadcasting, size-1 axes, 0-d
tensors and non-contiguous inputs — on the CPU and through the strict (CuPy-rules) backend."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import minidl as md
import minidl.functions as F
from minidl import backend

SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
CHECK_DEVICES = ["cpu", "strict"]

# ----------------------------------------------------------------------------- strategies
dims = st.integers(1, 4)
shapes = st.lists(dims, min_size=0, max_size=3).map(tuple)


@st.composite
def broadcast_pairs(draw):
    """(shape_a, shape_b) that broadcast: b drops leading axes of a and squashes some to 1."""
    a = draw(st.lists(dims, min_size=0, max_size=3).map(tuple))
    keep = draw(st.integers(0, len(a)))
    b = list(a[len(a) - keep:])
    for i in range(len(b)):
        if draw(st.booleans()):
            b[i] = 1
    if draw(st.booleans()):
        a, b = tuple(b), a
    return tuple(a), tuple(b)


def tensor_of(shape, device, seed, low=None, noncontiguous=False, requires_grad=True):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape)
    if low is not None:  # keep away from a singularity or kink
        values = np.abs(values) + low
    if noncontiguous and len(shape) >= 2:
        values = np.ascontiguousarray(values.swapaxes(-1, -2)).swapaxes(-1, -2)
        assert not values.flags.c_contiguous or min(shape[-2:]) == 1
    t = md.tensor(values, requires_grad=requires_grad, device=device)
    if noncontiguous and len(shape) >= 2:  # md.tensor copies; put the strided view back
        t.data = backend.to_device(values, device) if device != "cpu" else values
    return t


def check(fn, *inputs):
    assert md.gradcheck(fn, *inputs)


# ----------------------------------------------------------------------------- binary
BINARY = {
    "add": (lambda a, b: a + b, np.add, None),
    "sub": (lambda a, b: a - b, np.subtract, None),
    "mul": (lambda a, b: a * b, np.multiply, None),
    "div": (lambda a, b: a / b, np.divide, 0.5),
}


@pytest.mark.parametrize("device", CHECK_DEVICES)
@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(pair=broadcast_pairs(), seed=st.integers(0, 99), noncontiguous=st.booleans())
def test_binary_op_values_and_gradients(name, device, pair, seed, noncontiguous):
    op, reference, low = BINARY[name]
    a = tensor_of(pair[0], device, seed, noncontiguous=noncontiguous)
    b = tensor_of(pair[1], device, seed + 1, low=low)
    y = op(a, b)
    np.testing.assert_allclose(y.numpy(), reference(a.numpy(), b.numpy()), rtol=1e-12)
    assert y.shape == np.broadcast_shapes(pair[0], pair[1])
    check(op, a, b)


@pytest.mark.parametrize("device", CHECK_DEVICES)
def test_python_scalars_keep_the_tensor_dtype(device):
    x = md.tensor([1.0, 2.0], device=device)
    for y in (x + 1, 1 + x, x * 2, 2 * x, x - 1, 1 - x, x / 2, 2 / x, x ** 2, -x):
        assert y.dtype == np.float32


# ----------------------------------------------------------------------------- unary
UNARY = {
    "neg": (lambda x: -x, lambda v: -v, None),
    "exp": (F.exp, np.exp, None),
    "log": (F.log, np.log, 0.2),
    "tanh": (F.tanh, np.tanh, None),
    "sigmoid": (F.sigmoid, lambda v: 1 / (1 + np.exp(-v)), None),
    "relu": (F.relu, lambda v: np.maximum(v, 0), None),
    "pow3": (lambda x: x ** 3, lambda v: v ** 3, None),
    "pow_half": (lambda x: x ** 0.5, np.sqrt, 0.2),
    "pow_neg": (lambda x: x ** -1.5, lambda v: v ** -1.5, 0.3),
    "clip": (lambda x: F.clip(x, -0.5, 0.7), lambda v: np.clip(v, -0.5, 0.7), None),
}


@pytest.mark.parametrize("device", CHECK_DEVICES)
@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 99), noncontiguous=st.booleans())
def test_unary_op_values_and_gradients(name, device, shape, seed, noncontiguous):
    op, reference, low = UNARY[name]
    x = tensor_of(shape, device, seed, low=low, noncontiguous=noncontiguous)
    if name in ("relu", "clip"):  # keep away from the kinks, where no derivative exists
        v = x.numpy()
        v = np.where(np.abs(v) < 0.05, 0.3, v)
        v = np.where(np.abs(v - 0.7) < 0.05, 0.3, np.where(np.abs(v + 0.5) < 0.05, 0.3, v))
        x = md.tensor(v, requires_grad=True, device=device)
    np.testing.assert_allclose(op(x).numpy(), reference(x.numpy()), rtol=1e-10, atol=1e-12)
    check(op, x)


# ----------------------------------------------------------------------------- matmul, linear
@st.composite
def matmul_shapes(draw):
    n, k, m = draw(dims), draw(dims), draw(dims)
    batch = draw(st.lists(dims, min_size=0, max_size=2).map(tuple))
    a_batch = tuple(1 if draw(st.booleans()) else d for d in batch)
    b_batch = batch[draw(st.integers(0, len(batch))):]
    a = a_batch + (n, k) if draw(st.integers(0, 4)) else (k,)
    b = b_batch + (k, m) if draw(st.integers(0, 4)) else (k,)
    return a, b


@pytest.mark.parametrize("device", CHECK_DEVICES)
@SETTINGS
@given(pair=matmul_shapes(), seed=st.integers(0, 99), noncontiguous=st.booleans())
def test_matmul_values_and_gradients(device, pair, seed, noncontiguous):
    a = tensor_of(pair[0], device, seed, noncontiguous=noncontiguous)
    b = tensor_of(pair[1], device, seed + 1)
    y = a @ b
    np.testing.assert_allclose(y.numpy(), np.matmul(a.numpy(), b.numpy()), rtol=1e-10)
    check(lambda a, b: a @ b, a, b)


@pytest.mark.parametrize("device", CHECK_DEVICES)
@SETTINGS
@given(lead=st.lists(dims, min_size=0, max_size=2).map(tuple), n_in=dims, n_out=dims,
       seed=st.integers(0, 99), bias=st.booleans())
def test_linear_values_and_gradients(device, lead, n_in, n_out, seed, bias):
    x = tensor_of(lead + (n_in,), device, seed)
    W = tensor_of((n_in, n_out), device, seed + 1)
    b = tensor_of((n_out,), device, seed + 2) if bias else None
    y = F.linear(x, W, b)
    expected = x.numpy() @ W.numpy() + (b.numpy() if bias else 0)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10)
    if bias:
        check(F.linear, x, W, b)
    else:
        check(lambda x, W: F.linear(x, W), x, W)


def test_matmul_shape_error_names_the_op_and_both_shapes():
    with pytest.raises(md.ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        md.tensor(np.ones((2, 3))) @ md.tensor(np.ones((4, 5)))


def test_linear_shape_error_names_both_shapes():
    with pytest.raises(md.ShapeError, match=r"\(2, 3\).*\(4, 5\)"):
        F.linear(md.tensor(np.ones((2, 3))), md.tensor(np.ones((4, 5))))


def test_broadcast_error_names_the_op_and_both_shapes():
    with pytest.raises(md.ShapeError, match=r"Add: .*\(2, 3\) and \(4,\)"):
        md.tensor(np.ones((2, 3))) + md.tensor(np.ones(4))


# ----------------------------------------------------------------------------- reductions
@st.composite
def shape_and_axis(draw):
    shape = draw(st.lists(dims, min_size=0, max_size=3).map(tuple))
    if not shape or draw(st.booleans()):
        return shape, None
    axes = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=2,
                         unique_by=lambda a: a % len(shape)))
    return shape, axes[0] if len(axes) == 1 else tuple(axes)


@pytest.mark.parametrize("device", CHECK_DEVICES)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@SETTINGS
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 99))
def test_reduction_values_and_gradients(name, device, case, keepdims, seed):
    shape, axis = case
    x = tensor_of(shape, device, seed)
    y = getattr(x, name)(axis=axis, keepdims=keepdims)
    expected = getattr(np, name if name != "max" else "amax")(x.numpy(), axis=axis,
                                                             keepdims=keepdims)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12)
    check(lambda x: getattr(x, name)(axis=axis, keepdims=keepdims), x)


def test_max_splits_the_gradient_between_ties():
    x = md.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 0.5])


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("device", CHECK_DEVICES)
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 99), noncontiguous=st.booleans())
def test_reshape_and_transpose_gradients(device, shape, seed, noncontiguous):
    x = tensor_of(shape, device, seed, noncontiguous=noncontiguous)
    size = int(np.prod(shape))
    check(lambda x: x.reshape(size, 1), x)
    check(lambda x: x.reshape(-1), x)
    axes = tuple(reversed(range(len(shape))))
    np.testing.assert_array_equal(x.transpose(*axes).numpy(), x.numpy().transpose(axes))
    check(lambda x: x.transpose(*axes) if axes else x * 1, x)
    check(lambda x: x.T, x)


@pytest.mark.parametrize("device", CHECK_DEVICES)
@SETTINGS
@given(pair=broadcast_pairs(), seed=st.integers(0, 99))
def test_broadcast_to_and_sum_to_are_each_others_backward(device, pair, seed):
    small, big = sorted(pair, key=lambda s: (len(s), int(np.prod(s) if s else 1)))
    target = np.broadcast_shapes(small, big)
    x = tensor_of(small, device, seed)
    y = F.broadcast_to(x, target)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(x.numpy(), target))
    check(lambda x: F.broadcast_to(x, target), x)
    z = tensor_of(target, device, seed)
    np.testing.assert_allclose(F.sum_to(z, small).numpy().sum(), z.numpy().sum())
    check(lambda z: F.sum_to(z, small), z)


INDICES = [
    (slice(1, 3),), (0,), (-1,), (slice(None), 1), (Ellipsis, 0), ([0, 0, 2],),
    (np.array([[0, 1], [1, 1]]),), (slice(None), [2, 0, 2]), (np.array([True, False, True]),),
    ([0, 2], [1, 1]), (None, 1),
]


@pytest.mark.parametrize("device", CHECK_DEVICES)
@pytest.mark.parametrize("index", INDICES, ids=[str(i) for i in range(len(INDICES))])
def test_getitem_values_and_gradients(device, index):
    x = tensor_of((3, 4), device, 0)
    index = index[0] if len(index) == 1 else index
    np.testing.assert_array_equal(x[index].numpy(), x.numpy()[index])
    check(lambda x: x[index], x)


def test_getitem_repeated_indices_accumulate():
    x = md.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


@pytest.mark.parametrize("device", CHECK_DEVICES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_and_stack_values_and_gradients(device, axis):
    a, b = tensor_of((2, 3), device, 1), tensor_of((2, 3), device, 2)
    np.testing.assert_array_equal(F.concat([a, b], axis).numpy(),
                                  np.concatenate([a.numpy(), b.numpy()], axis))
    np.testing.assert_array_equal(F.stack([a, b], axis).numpy(),
                                  np.stack([a.numpy(), b.numpy()], axis))
    check(lambda a, b: F.concat([a, b * 2], axis), a, b)
    check(lambda a, b: F.stack([a, b, a], axis), a, b)


@pytest.mark.parametrize("device", CHECK_DEVICES)
@pytest.mark.parametrize("shape, sections, axis", [
    ((2, 7), [2, 4, 1], 1), ((5, 1, 3), 2, 0), ((1, 3), [1], 0), ((4, 6), [0, 6], -1)])
def test_split_values_and_gradients(device, shape, sections, axis):
    x = tensor_of(shape, device, 3)
    pieces = F.split(x, sections, axis)
    bounds = np.cumsum(sections)[:-1] if isinstance(sections, list) else \
        range(sections, shape[axis], sections)
    for piece, expected in zip(pieces, np.split(x.numpy(), list(bounds), axis)):
        np.testing.assert_array_equal(piece.numpy(), expected)
    # the first two pieces swapped and weighted, any others left unused (zero gradient)
    def swapped(x):
        first, *rest = F.split(x, sections, axis)
        return F.concat([rest[0] * 2.0, first * 3.0], axis) if rest else first * 3.0
    check(swapped, x)


def test_chunk_sizes_follow_pytorch():
    x = md.tensor(np.arange(6.0))
    assert [p.shape for p in x.chunk(4)] == [(2,), (2,), (2,)]      # fewer chunks, as torch
    assert [p.shape for p in md.tensor(np.arange(5.0)).chunk(3)] == [(2,), (2,), (1,)]
    assert [p.shape for p in x.split(4, dim=0)] == [(4,), (2,)]
    with pytest.raises(md.ShapeError, match=r"split: sizes \[2, 2\] must .* add up to 6"):
        x.split([2, 2])
    with pytest.raises(ValueError, match="must be positive"):
        x.chunk(0)
    with pytest.raises(md.ShapeError, match="axis 1 is out of range"):
        x.split(2, 1)


def test_concat_shape_error_names_both_shapes():
    with pytest.raises(md.ShapeError, match=r"concat: tensor 0 has shape \(2, 3\) and tensor 1 "
                                            r"has shape \(3, 3\)"):
        F.concat([md.tensor(np.ones((2, 3))), md.tensor(np.ones((3, 3)))], axis=1)


# ----------------------------------------------------------------------------- softmax
@pytest.mark.parametrize("device", CHECK_DEVICES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@SETTINGS
@given(shape=st.lists(dims, min_size=1, max_size=3).map(tuple), seed=st.integers(0, 99),
       data=st.data())
def test_softmax_values_and_gradients(name, device, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = tensor_of(shape, device, seed)
    v = x.numpy()
    e = np.exp(v - v.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    expected = p if name == "softmax" else np.log(p)
    op = getattr(F, name)
    np.testing.assert_allclose(op(x, axis).numpy(), expected, rtol=1e-10, atol=1e-12)
    check(lambda x: op(x, axis), x)


# ----------------------------------------------------------------------------- stability
EXTREME = np.array([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sigmoid", "softmax", "log_softmax"])
def test_extreme_inputs_give_finite_values_and_gradients(name, dtype):
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        x = md.tensor(EXTREME, dtype=dtype, requires_grad=True)
        y = getattr(F, name)(x)
        y.backward(np.linspace(-1, 1, len(EXTREME)).astype(dtype))
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()


def test_sigmoid_saturates_to_zero_and_one():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = F.sigmoid(md.tensor([-1e4, 1e4], dtype="float64")).numpy()
    np.testing.assert_array_equal(y, [0.0, 1.0])


def test_log_softmax_of_huge_gap_is_exact():
    y = F.log_softmax(md.tensor([0.0, 1e4], dtype="float64")).numpy()
    np.testing.assert_allclose(y, [-1e4, 0.0])
