"""The strict array backend: a CPU array that refuses implicit host conversion as CuPy does.

Each test states one CuPy behaviour that StrictArray mirrors (see minidl/backend/strict.py), so that
code which would only work on NumPy fails here, on a machine without a GPU.
"""
import copy
import operator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minidl.backend.strict import StrictArray, from_strict, strict_numpy as xp, to_strict


def strict(values, dtype=np.float64):
    return to_strict(np.asarray(values, dtype=dtype))


def host(x):
    assert isinstance(x, StrictArray), f"expected a StrictArray, got {type(x).__name__}"
    return from_strict(x)


# ----------------------------------------------------------------------------- identity
def test_strict_array_lives_in_the_module_the_backend_recognises():
    assert type(strict([1.0])).__module__ == "minidl.backend.strict"
    assert isinstance(strict([1.0]), xp.ndarray)


def test_repr_says_strict_array():
    assert repr(strict([1.0, 2.0])) == "StrictArray([1., 2.])"
    assert repr(strict(np.zeros((2, 2)))).startswith("StrictArray([[0., 0.],\n             [0.")


def test_metadata_matches_numpy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = to_strict(a)
    assert (x.shape, x.dtype, x.ndim, x.size, x.itemsize, x.nbytes) == \
        (a.shape, a.dtype, a.ndim, a.size, a.itemsize, a.nbytes)
    assert x.flags.c_contiguous and not x.T.flags.c_contiguous
    assert len(x) == 2


# ----------------------------------------------------------------------------- staying strict
BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
          operator.floordiv, operator.mod, operator.lt, operator.le, operator.eq,
          operator.ne, operator.gt, operator.ge]


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.__name__)
def test_binary_operators_return_strict_arrays_with_numpy_values(op):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 0.5])
    np.testing.assert_array_equal(host(op(to_strict(a), to_strict(b))), op(a, b))


def test_matmul_and_unary_operators_return_strict_arrays():
    a = np.arange(6.0).reshape(2, 3)
    x = to_strict(a)
    np.testing.assert_array_equal(host(x @ x.T), a @ a.T)
    np.testing.assert_array_equal(host(-x), -a)
    np.testing.assert_array_equal(host(+x), a)
    np.testing.assert_array_equal(host(abs(-x)), a)
    np.testing.assert_array_equal(host(~strict([1, 2], np.int64)), ~np.array([1, 2]))


@pytest.mark.parametrize("make", [
    lambda x: x + 2, lambda x: 2 + x, lambda x: x * 2.5, lambda x: 1 - x, lambda x: 2 ** x,
    lambda x: x / np.float32(2), lambda x: np.float32(2) * x, lambda x: np.int64(3) - x,
    lambda x: x > 1, lambda x: 1 < x,
], ids=["x+2", "2+x", "x*2.5", "1-x", "2**x", "x/f32", "f32*x", "i64-x", "x>1", "1<x"])
def test_python_and_numpy_scalars_mix_with_strict_arrays(make):
    a = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(host(make(to_strict(a))), make(a))


@pytest.mark.parametrize("ufunc", [np.exp, np.tanh, np.log1p, np.negative, np.sqrt])
def test_numpy_ufuncs_on_strict_arrays_return_strict_arrays(ufunc):
    a = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(host(ufunc(to_strict(a))), ufunc(a))


@pytest.mark.parametrize("call", [
    lambda m, x, y: m.sum(x), lambda m, x, y: m.mean(x, axis=0),
    lambda m, x, y: m.concatenate([x, y]), lambda m, x, y: m.stack([x, y], axis=1),
    lambda m, x, y: m.where(x > 1, x, y), lambda m, x, y: m.maximum(x, 0),
    lambda m, x, y: m.einsum("i,i->", x, y), lambda m, x, y: m.matmul(x, y),
    lambda m, x, y: m.clip(x, 1, 2), lambda m, x, y: m.linalg.norm(x),
], ids=["sum", "mean", "concatenate", "stack", "where", "maximum", "einsum", "matmul",
        "clip", "norm"])
def test_numpy_functions_on_strict_arrays_return_strict_arrays(call):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 0.0])
    np.testing.assert_allclose(host(call(np, to_strict(a), to_strict(b))), call(np, a, b))


def test_out_argument_returns_the_same_strict_array():
    x, out = strict([1.0, 2.0]), xp.zeros(2)
    assert np.add(x, x, out=out) is out
    assert xp.multiply(x, 3, out=out) is out
    np.testing.assert_array_equal(host(out), [3.0, 6.0])


@settings(max_examples=40, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       op=st.sampled_from([operator.add, operator.sub, operator.mul, np.maximum, np.hypot]))
def test_broadcasting_results_equal_numpy_for_any_shapes(shapes, op):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(shape) for shape in shapes.input_shapes)
    np.testing.assert_array_equal(host(op(to_strict(a), to_strict(b))), op(a, b))


# ----------------------------------------------------------------------------- refusals
def test_np_asarray_and_np_array_raise_and_point_to_to_numpy():
    x = strict([1.0, 2.0])
    for convert in (np.asarray, np.array, np.ascontiguousarray):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array.*to_numpy"):
            convert(x)


def test_numpy_testing_helpers_refuse_strict_arrays_like_cupy_arrays():
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.testing.assert_allclose(strict([1.0]), [1.0])


def _assign(x, key, value):
    x[key] = value


def _iadd(x, y):
    x += y
    return x


MIXED = {
    "x + a": lambda x, a: x + a,
    "a + x": lambda x, a: a + x,
    "x * a": lambda x, a: x * a,
    "a - x": lambda x, a: a - x,
    "x < a": lambda x, a: x < a,
    "a == x": lambda x, a: a == x,
    "x += a": lambda x, a: _iadd(x, a),
    "a += x": lambda x, a: _iadd(a, x),
    "np.add(x, a)": lambda x, a: np.add(x, a),
    "np.add(a, x)": lambda x, a: np.add(a, x),
    "np.add(x, x, out=a)": lambda x, a: np.add(x, x, out=a),
    "np.add(a, a, out=x)": lambda x, a: np.add(a, a, out=x),
    "np.concatenate([x, a])": lambda x, a: np.concatenate([x, np.atleast_1d(a)]),
    "np.where(x > 0, x, a)": lambda x, a: np.where(x > 0, x, a),
    "np.add.at(x, idx, a)": lambda x, a: np.add.at(x, [0, 1, 2], a),
    "x[0:3] = a": lambda x, a: _assign(x, slice(0, 3), a),
    "x[[0, 1, 2]] = a": lambda x, a: _assign(x, [0, 1, 2], a),
    "x[x > 0] = a": lambda x, a: _assign(x, x > 0, a),
    "x.fill(a)": lambda x, a: x.fill(a),
    "x.dot(a)": lambda x, a: x.dot(a),
}


@pytest.mark.parametrize("host_ndim", [0, 1], ids=["0-d", "1-d"])
@pytest.mark.parametrize("mix", MIXED.values(), ids=MIXED.keys())
def test_mixing_with_a_numpy_array_raises_type_error(mix, host_ndim):
    # CuPy refuses NumPy arrays of any ndim next to device arrays: "Unsupported type".
    x = strict([1.0, 2.0, 3.0])
    a = np.array(2.0) if host_ndim == 0 else np.array([1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="NumPy array .* was mixed with a StrictArray"):
        mix(x, a)


@pytest.mark.parametrize("mix", [lambda x, a: x @ a, lambda x, a: a @ x], ids=["x @ a", "a @ x"])
def test_matmul_with_a_numpy_array_raises_type_error(mix):
    with pytest.raises(TypeError, match="was mixed with a StrictArray"):
        mix(strict(np.ones((2, 2))), np.ones((2, 2)))


def test_mixing_error_says_what_to_do():
    with pytest.raises(TypeError, match=r"xp\.asarray") as error:
        strict([1.0]) + np.ones(1)
    assert "operator +" in str(error.value) and "CuPy" in str(error.value)


def test_foreign_objects_get_not_implemented_so_their_reflected_operators_run():
    class Other:
        def __radd__(self, other):
            return "Other.__radd__"
    assert strict([1.0]) + Other() == "Other.__radd__"
    with pytest.raises(TypeError):
        strict([1.0]) + [1.0]  # lists are refused, as by CuPy


# ----------------------------------------------------------------------------- in place
def test_in_place_operators_write_into_the_array_and_its_views():
    base = xp.zeros((2, 3))
    row = base[0]
    row += 1.0
    row *= strict([1.0, 2.0, 3.0])
    row -= np.float32(1)
    assert row is not None and isinstance(row, StrictArray)
    np.testing.assert_array_equal(host(base), [[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]])


def test_in_place_operator_returns_the_same_object():
    x = strict([1.0, 2.0])
    y = x
    y += 1
    assert y is x


# ----------------------------------------------------------------------------- indexing
def test_basic_indexing_returns_strict_views():
    x = to_strict(np.arange(12.0).reshape(3, 4))
    view = x[1:, ::2]
    assert isinstance(view, StrictArray) and view.shape == (2, 2)
    view[...] = -1.0
    assert float(x[1, 0]) == -1.0


def test_scalar_indexing_returns_a_0d_strict_array_like_cupy():
    element = strict([1.0, 2.0])[1]
    assert isinstance(element, StrictArray) and element.shape == ()
    assert float(element) == 2.0


@pytest.mark.parametrize("make_index", [
    lambda: np.array([2, 0, 2]), lambda: strict([2, 0, 2], np.int64), lambda: [2, 0, 2],
], ids=["numpy-ints", "strict-ints", "list"])
def test_integer_array_indexing_accepts_host_and_device_indices(make_index):
    # CuPy copies NumPy index arrays to the device (_prepare_slice_list), so x[host_ids] works.
    x = strict([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(host(x[make_index()]), [30.0, 10.0, 30.0])


@pytest.mark.parametrize("make_mask", [lambda x: x > 15, lambda x: np.array([False, True, True])],
                         ids=["strict-mask", "numpy-mask"])
def test_boolean_mask_indexing_and_assignment(make_mask):
    x = strict([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(host(x[make_mask(x)]), [20.0, 30.0])
    x[make_mask(x)] = 0.0
    np.testing.assert_array_equal(host(x), [10.0, 0.0, 0.0])


def test_setitem_accepts_scalars_and_strict_values():
    x = xp.zeros((2, 3))
    x[0] = 1.0
    x[1, [0, 2]] = strict([5.0, 6.0])
    x[:, 1] = np.float32(7)
    np.testing.assert_array_equal(host(x), [[1.0, 7.0, 1.0], [5.0, 7.0, 6.0]])


@pytest.mark.parametrize("scatter", [
    lambda x, i, v: np.add.at(x, i, v), lambda x, i, v: xp.add.at(x, i, v),
], ids=["np.add.at", "xp.add.at"])
@pytest.mark.parametrize("host_index", [True, False], ids=["numpy-index", "strict-index"])
def test_add_at_accumulates_repeated_indices(scatter, host_index):
    x = xp.zeros((3, 2))
    index = np.array([0, 2, 0, 0]) if host_index else strict([0, 2, 0, 0], np.int64)
    scatter(x, index, xp.ones((4, 2)))
    np.testing.assert_array_equal(host(x), [[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])


def test_add_at_through_a_flattened_view_writes_into_the_array():
    x = xp.zeros((2, 2))
    xp.add.at(x.reshape(-1), strict([3, 3, 0], np.int64), 1.0)
    np.testing.assert_array_equal(host(x), [[1.0, 0.0], [0.0, 2.0]])


def test_iteration_yields_strict_rows_and_0d_arrays_refuse():
    rows = list(to_strict(np.arange(4.0).reshape(2, 2)))
    assert all(isinstance(r, StrictArray) and r.shape == (2,) for r in rows)
    scalar = xp.zeros(())
    with pytest.raises(TypeError, match="0-d"):
        iter(scalar)
    with pytest.raises(TypeError):
        len(scalar)


# ----------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("reduce", [
    lambda a: a.sum(), lambda a: a.sum(axis=0), lambda a: a.sum(axis=1, keepdims=True),
    lambda a: a.mean(axis=(0, 1), keepdims=True), lambda a: a.max(axis=1), lambda a: a.min(),
    lambda a: a.argmax(axis=1), lambda a: np.sum(a, axis=0, keepdims=True), lambda a: np.max(a),
], ids=["sum", "sum0", "sum1-keep", "mean-keep", "max1", "min", "argmax", "np.sum-keep", "np.max"])
def test_reductions_return_strict_arrays_even_for_scalars(reduce):
    a = np.arange(6.0).reshape(2, 3)
    result = reduce(to_strict(a))
    assert isinstance(result, StrictArray)
    assert result.shape == np.shape(reduce(a))
    np.testing.assert_array_equal(host(result), reduce(a))


def test_methods_return_strict_arrays():
    a = np.arange(6.0).reshape(2, 3)
    x = to_strict(a)
    for name, args in [("reshape", (3, 2)), ("transpose", ()), ("swapaxes", (0, 1)),
                       ("astype", (np.float32,)), ("copy", ()), ("ravel", ())]:
        result = getattr(x, name)(*args)
        np.testing.assert_array_equal(host(result), getattr(a, name)(*args))
    assert x.astype(x.dtype, copy=False) is x


# ----------------------------------------------------------------------------- host copies
def test_get_returns_an_independent_host_copy():
    x = strict([1.0, 2.0])
    copy_on_host = x.get()
    assert type(copy_on_host) is np.ndarray
    copy_on_host[0] = 99.0
    assert float(x[0]) == 1.0


def test_to_strict_and_from_strict_round_trip_and_copy():
    a = np.arange(4.0)
    x = to_strict(a)
    a[0] = 99.0  # an upload is a copy, as on a GPU
    np.testing.assert_array_equal(from_strict(x), [0.0, 1.0, 2.0, 3.0])
    assert from_strict(a) is a


def test_scalar_conversion_works_for_one_element_and_raises_for_more():
    assert float(strict([1.0, 2.0]).sum()) == 3.0
    assert int(strict([3], np.int64)[0]) == 3
    assert strict([4.0]).item() == 4.0
    assert strict([[1, 2]], np.int64).tolist() == [[1, 2]]
    with pytest.raises(TypeError):
        float(strict([1.0, 2.0]))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(strict([1.0, 2.0]))


def test_scalar_conversion_of_one_element_1d_arrays_follows_numpy_as_cupy_does():
    # CuPy's __float__ is float(self.get()); NumPy >= 2.4 refuses ndim > 0 here.
    try:
        expected = float(np.array([2.0]))
    except TypeError:
        with pytest.raises(TypeError):
            float(strict([2.0]))
    else:
        assert float(strict([2.0])) == expected


def test_copy_module_copies_the_data():
    x = strict([1.0])
    for duplicate in (copy.copy(x), copy.deepcopy(x)):
        duplicate[0] = 5.0
        assert float(x[0]) == 1.0


# ----------------------------------------------------------------------------- the namespace
CREATIONS = {
    "zeros": lambda: xp.zeros((2, 3), dtype=xp.float32),
    "ones": lambda: xp.ones(3),
    "empty": lambda: xp.empty((2,)),
    "arange": lambda: xp.arange(5),
    "full": lambda: xp.full((2, 2), 7.0),
    "zeros_like": lambda: xp.zeros_like(xp.ones(3)),
    "ones_like": lambda: xp.ones_like(xp.ones(3)),
    "concatenate": lambda: xp.concatenate([xp.ones(2), xp.zeros(3)]),
    "stack": lambda: xp.stack([xp.ones(2), xp.zeros(2)], axis=1),
    "where": lambda: xp.where(xp.arange(3) > 0, xp.ones(3), 0.0),
    "maximum": lambda: xp.maximum(xp.arange(3.0) - 1, 0),
    "tanh": lambda: xp.tanh(xp.arange(3.0)),
    "exp-of-scalar": lambda: xp.exp(1.0),
    "einsum": lambda: xp.einsum("ij,jk->ik", xp.ones((2, 3)), xp.ones((3, 4))),
    "matmul": lambda: xp.matmul(xp.ones((2, 3)), xp.ones((3, 4))),
    "add.reduce": lambda: xp.add.reduce(xp.ones((2, 3)), axis=0),
    "random": lambda: xp.random.standard_normal((2, 2)),
    "default_rng": lambda: xp.random.default_rng(0).normal(size=3),
}


@pytest.mark.parametrize("create", CREATIONS.values(), ids=CREATIONS.keys())
def test_namespace_functions_return_strict_arrays(create):
    assert isinstance(create(), StrictArray)


def test_namespace_matches_numpy_values():
    np.testing.assert_array_equal(host(xp.arange(5)), np.arange(5))
    assert xp.zeros((2, 3), dtype=xp.float32).dtype == np.float32
    np.testing.assert_allclose(host(xp.einsum("ij,jk->ik", xp.ones((2, 3)), xp.ones((3, 4)))),
                               np.full((2, 4), 3.0))


REFUSING = {
    "zeros_like": lambda a: xp.zeros_like(a),
    "concatenate": lambda a: xp.concatenate([xp.ones(3), a]),
    "stack": lambda a: xp.stack([a, a]),
    "where": lambda a: xp.where(a > 0, a, 0.0),
    "maximum": lambda a: xp.maximum(a, 0),
    "tanh": lambda a: xp.tanh(a),
    "einsum": lambda a: xp.einsum("i,i->", a, xp.ones(3)),
    "matmul": lambda a: xp.matmul(xp.ones(3), a),
    "add.at": lambda a: xp.add.at(a, [0], 1.0),
    "add.reduce": lambda a: xp.add.reduce(a),
}


@pytest.mark.parametrize("call", REFUSING.values(), ids=REFUSING.keys())
def test_namespace_functions_refuse_numpy_arrays(call):
    with pytest.raises(TypeError, match="was mixed with a StrictArray"):
        call(np.array([1.0, -2.0, 3.0]))


@pytest.mark.parametrize("upload", [xp.asarray, xp.array, xp.asanyarray])
def test_asarray_and_array_are_the_explicit_upload(upload):
    a = np.array([1.0, 2.0])
    x = upload(a)
    assert isinstance(x, StrictArray)
    a[0] = 99.0
    assert float(x[0]) == 1.0  # the device copy does not share memory with the host
    assert isinstance(upload([1, 2, 3]), StrictArray)
    assert isinstance(upload(2.5), StrictArray)


def test_asarray_of_a_strict_array_returns_it_unchanged():
    x = strict([1.0])
    assert xp.asarray(x) is x
    assert xp.asarray(x, dtype=np.float32).dtype == np.float32


def test_namespace_exposes_numpy_dtypes_constants_and_ndarray():
    assert xp.float32 is np.float32 and xp.int64 is np.int64 and xp.bool_ is np.bool_
    assert xp.pi == np.pi and xp.inf == np.inf and xp.newaxis is None
    assert xp.ndarray is StrictArray
    assert xp.finfo(xp.float32).eps == np.finfo(np.float32).eps
    assert xp.add.nin == 2 and hasattr(xp.add, "at")


def test_errstate_applies_to_strict_computations():
    with xp.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            xp.exp(strict([1000.0]))


def test_asnumpy_downloads_like_cupy_asnumpy():
    assert type(xp.asnumpy(strict([1.0]))) is np.ndarray


@pytest.mark.parametrize("call", [
    lambda x: np.subtract.at(x, [0], 1.0), lambda x: xp.multiply.at(x, [0], 2.0),
    lambda x: np.maximum.reduce(x), lambda x: xp.maximum.accumulate(x),
], ids=["np.subtract.at", "xp.multiply.at", "np.maximum.reduce", "xp.maximum.accumulate"])
def test_ufunc_methods_cupy_lacks_raise(call):
    # CuPy implements at/reduce/accumulate only for a few ufuncs (cupy/cupy#7082).
    with pytest.raises(TypeError, match="CuPy has ufunc"):
        call(strict([1.0, 2.0]))


@pytest.mark.parametrize("call", [
    lambda x: np.maximum.at(x, [0, 0], 5.0), lambda x: xp.minimum.at(x, [1], -1.0),
    lambda x: np.add.reduce(x), lambda x: xp.multiply.outer(x, x), lambda x: xp.add.accumulate(x),
], ids=["np.maximum.at", "xp.minimum.at", "np.add.reduce", "xp.multiply.outer", "add.accumulate"])
def test_ufunc_methods_cupy_has_work(call):
    x = strict([1.0, 2.0])
    result = call(x)
    assert result is None or isinstance(result, StrictArray)
