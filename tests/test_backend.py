"""The backend: array modules, devices, host copies, scatter-add, seeding, and the rule that
nothing above the backend calls NumPy on tensor data."""
import numpy as np
import pytest

import minidl as md
from minidl import backend
from conftest import REQUIRE_GPU, cuda_or_skip


def test_get_array_module_of_numpy_and_strict_arrays():
    assert backend.get_array_module(np.ones(3)) is np
    strict = backend.to_device(np.ones(3), "strict")
    assert backend.get_array_module(strict) is not np
    assert backend.get_array_module(1.0, strict) is backend.get_array_module(strict)


def test_to_device_round_trip_is_a_copy_with_the_same_values():
    host = np.arange(6.0).reshape(2, 3)
    there = backend.to_device(host, "strict")
    assert backend.device_of(there) == "strict"
    back = backend.to_numpy(there)
    np.testing.assert_array_equal(back, host)
    assert back is not host


def test_default_device_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MINIDL_DEVICE", "strict")
    assert md.tensor([1.0]).device == "strict"
    monkeypatch.delenv("MINIDL_DEVICE")
    assert md.tensor([1.0]).device == "cpu"


def test_unknown_device_is_named_in_the_error():
    with pytest.raises(md.DeviceError, match="unknown device 'tpu'"):
        md.tensor([1.0], device="tpu")


def test_cuda_is_available_is_false_without_a_gpu_or_true_with_one():
    assert isinstance(md.cuda.is_available(), bool)
    if not md.cuda.is_available():
        with pytest.raises(md.DeviceError, match="no CUDA device"):
            md.tensor([1.0], device="cuda")


@pytest.mark.parametrize("device", ["cpu", "strict"])
@pytest.mark.parametrize("rows", [4, 600])          # below and above the flat-index path's size
def test_scatter_add_accumulates_repeated_indices(device, rows):
    xp = backend.array_module_for(device)
    target = xp.zeros((rows, 3))
    ids = np.array([1, 1, rows - 1, -1, 0, 1])
    values = np.arange(18.0).reshape(6, 3)
    backend.scatter_add(target, xp.asarray(ids), xp.asarray(values))
    expected = np.zeros((rows, 3))
    for i, row in zip(ids, values):                  # one row at a time: the definition
        expected[i] += row
    np.testing.assert_array_equal(backend.to_numpy(target), expected)


@pytest.mark.parametrize("shape, to", [((1, 3), (2, 3)), ((3,), (4, 2, 3)), ((1,), (40, 40)),
                                       ((2, 1), (2, 600))])
def test_broadcast_array_small_copies_and_large_views_agree_with_numpy(shape, to):
    a = np.random.default_rng(0).standard_normal(shape)
    out = backend.broadcast_array(a, to)
    np.testing.assert_array_equal(out, np.broadcast_to(a, to))
    assert (out.base is not None) == (np.prod(to) > 1024)    # a view only when large
    with pytest.raises(ValueError):
        backend.broadcast_array(np.ones((2, 3)), (4, 3))


def test_manual_seed_makes_initialisation_repeatable():
    md.manual_seed(123)
    a = md.nn.Linear(3, 4).W.numpy()
    md.manual_seed(123)
    b = md.nn.Linear(3, 4).W.numpy()
    np.testing.assert_array_equal(a, b)


def test_numpy_scalar_results_become_zero_d_arrays():
    x = md.tensor(2.0, requires_grad=True, device="cpu")
    y = x.exp()
    assert isinstance(y.data, np.ndarray) and y.shape == ()


@pytest.mark.gpu
def test_cuda_tensor_round_trip():
    cuda_or_skip()
    x = md.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_cuda_helpers_are_safe_without_a_gpu():
    md.cuda.synchronize()
    md.cuda.empty_cache()


def test_require_gpu_flag_is_read():
    assert REQUIRE_GPU in (True, False)


# ----------------------------------------------------------------------------- devices as files
def test_each_device_is_described_in_its_own_file_of_the_backend_package():
    assert set(backend.DEVICES) == {"cpu", "cuda", "strict"}
    for name, device in backend.DEVICES.items():
        assert type(device).__module__ == f"minidl.backend.{name}"
        assert isinstance(device, backend.Device) and device.name == name


def test_a_device_says_which_arrays_it_owns():
    strict = backend.to_device(np.ones(2), "strict")
    assert backend.array_device(np.ones(2)) is backend.DEVICES["cpu"]
    assert backend.array_device(np.float32(1)) is backend.DEVICES["cpu"]
    assert backend.array_device(strict) is backend.DEVICES["strict"]
    assert backend.array_device([1, 2]) is backend.DEVICES["cpu"]  # host data


def test_fused_kernels_exist_only_where_the_device_compiles_them():
    for device in ("cpu", "strict"):
        x = backend.to_device(np.ones(2), device)
        assert backend.elementwise_kernel(x, "T a", "T b", "b = a;", "copy") is None


def test_same_seed_gives_the_same_draws_on_the_cpu_and_the_strict_device():
    md.manual_seed(3)
    a = backend.random_uniform((4,), -1, 1, np.float32, "cpu")
    b = backend.random_uniform((4,), -1, 1, np.float32, "strict")
    np.testing.assert_array_equal(a, backend.to_numpy(b))


def test_buffer_pool_hands_back_a_freed_buffer_of_the_same_shape_and_dtype():
    from minidl.backend.workspace import BufferPool
    pool = BufferPool(keep=1)
    a = pool.take(np, (2, 3), np.float32)
    pool.give(np, [a])
    assert pool.take(np, (2, 3), np.float32) is a
    assert pool.take(np, (2, 3), np.float32) is not a  # only one was kept
    assert pool.take(np, (2, 3), np.float64).dtype == np.float64


def test_freed_heap_is_kept_for_reuse_where_glibc_allows(monkeypatch):
    from minidl.backend import cpu
    import ctypes
    try:
        glibc = bool(ctypes.CDLL(None).gnu_get_libc_version)
    except (OSError, AttributeError):
        glibc = False
    assert cpu.keep_freed_memory(64) is glibc
    assert cpu.keep_freed_memory(0) is False
    monkeypatch.setenv("MINIDL_KEEP_FREED_MB", "lots")
    with pytest.raises(ValueError, match="MINIDL_KEEP_FREED_MB='lots'.*megabytes"):
        cpu.keep_freed_memory()
    monkeypatch.setenv("MINIDL_KEEP_FREED_MB", "256")
    assert cpu.keep_freed_memory() is glibc
