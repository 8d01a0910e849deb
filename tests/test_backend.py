"""The backend: array modules, devices, host copies, scatter-add, seeding, and the rule that
nothing above the backend calls NumPy on tensor data."""
import ast
import pathlib

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
def test_scatter_add_accumulates_repeated_indices(device):
    xp = backend.array_module_for(device)
    target = xp.zeros((4, 3))
    values = xp.asarray(np.arange(9.0).reshape(3, 3))
    backend.scatter_add(target, xp.asarray(np.array([1, 1, 3])), values)
    expected = np.zeros((4, 3))
    np.add.at(expected, [1, 1, 3], np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(backend.to_numpy(target), expected)


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


# ----------------------------------------------------------------------------- architecture
PACKAGE = pathlib.Path(md.__file__).parent
# Modules that may call NumPy directly: the backend itself, the strict test backend, host-side
# data/metrics/text code that never touches tensor data, and host-side utilities.
ALLOWED = {"backend.py", "_strict.py", "gradcheck.py", "io.py", "metrics.py", "nn/init.py",
           "cli.py", "plot.py"}
HOST_SIDE_PREFIXES = ("data/", "training/", "keras/", "transfer", "demo", "grade",
                      "exercises")
# NumPy calls that are fine anywhere: type names and dtype helpers, not computations on data.
HARMLESS = {"ndarray", "generic", "dtype", "float32", "float64", "int64", "int32", "bool_",
            "random", "errstate", "array2string", "issubdtype", "floating", "integer", "inf",
            "nan", "pi", "prod"}


def _numpy_calls(path: pathlib.Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("np", "numpy") and node.attr not in HARMLESS:
            yield node.lineno, node.attr


def test_no_module_above_the_backend_calls_numpy_on_tensor_data():
    """Ops must use xp = get_array_module(x), or they break on CuPy (DESIGN.md)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED or rel.startswith(HOST_SIDE_PREFIXES):
            continue
        offenders += [f"{rel}:{line} np.{name}" for line, name in _numpy_calls(path)]
    assert not offenders, "NumPy called directly above the backend:\n" + "\n".join(offenders)


def test_the_architecture_scan_catches_a_numpy_call(tmp_path):
    bad = tmp_path / "op.py"
    bad.write_text("import numpy as np\ndef f(x):\n    return np.exp(x)\n")
    assert list(_numpy_calls(bad)) == [(3, "exp")]
