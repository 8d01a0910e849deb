"""Shared fixtures: the devices every op test runs on, and random tensors.

Devices: 'cpu' (NumPy), 'strict' (a CPU array with CuPy's rules, so GPU-only bugs show up
without a GPU) and 'cuda' (CuPy; skipped with the reason when no device is present, and a
failure instead when MINIDL_REQUIRE_GPU=1).
"""
import os

import numpy as np
import pytest

import minidl as md

REQUIRE_GPU = os.environ.get("MINIDL_REQUIRE_GPU") == "1"


def cuda_or_skip() -> None:
    if md.cuda.is_available():
        return
    reason = "no CUDA device (CuPy missing or no GPU); set MINIDL_REQUIRE_GPU=1 to fail instead"
    if REQUIRE_GPU:
        pytest.fail("MINIDL_REQUIRE_GPU=1 but " + reason.split(";")[0])
    pytest.skip(reason)


DEVICES = ["cpu", "strict", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda":
        cuda_or_skip()
    return request.param


def randn(*shape, device=None, requires_grad=True, seed=None, dtype="float64"):
    """A float64 tensor of standard-normal values (the gradcheck default), on ``device`` or
    the default device (``MINIDL_DEVICE``)."""
    rng = np.random.default_rng(seed)
    return md.tensor(rng.standard_normal(shape), requires_grad=requires_grad, dtype=dtype,
                     device=device)
