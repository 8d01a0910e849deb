"""Row-blocked kernels (``backend.blocks``): every row once, the same results as the
whole-array call — and the fused ops that use them, forced into small blocks."""
import numpy as np
import pytest

import minidl as md
import minidl.functions as F
from minidl import backend
from minidl.backend import blocks
from minidl.functions import attention, elementwise, loss, normalization


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 elements: every op below splits."""
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 64)


def test_every_row_is_visited_once(small_blocks):
    seen = np.zeros((1000, 3))
    calls = []

    def kernel(block):
        calls.append(len(block))
        block += 1.0
    blocks.for_row_blocks(kernel, seen)
    assert (seen == 1.0).all()
    assert len(calls) > 2 and max(calls) <= 64 // 3 + 1


def test_a_small_array_goes_to_the_kernel_whole():
    calls = []
    blocks.for_row_blocks(lambda a: calls.append(a.shape), np.zeros((4, 5)))
    blocks.for_row_blocks(lambda a: calls.append(a.shape), np.float64(3.0))   # 0-d
    assert calls == [(4, 5), ()]


def test_host_devices_run_in_blocks_and_fused_kernel_devices_whole(small_blocks, monkeypatch):
    strict = md.tensor(np.zeros((40, 40)), device="strict").data       # a host array, wrapped
    calls = []
    blocks.for_row_blocks(lambda a: calls.append(a.shape), strict)
    assert len(calls) == 40 and calls[0] == (1, 40)
    device = backend.array_device(strict)
    monkeypatch.setattr(device, "fused_kernels", True)                # as CUDA says
    calls.clear()
    blocks.for_row_blocks(lambda a: calls.append(a.shape), strict)
    assert calls == [(40, 40)]


def test_arrays_must_share_their_first_axis():
    with pytest.raises(ValueError, match=r"share their first axis.*\(3, 2\).*\(4, 2\)"):
        blocks.for_row_blocks(lambda a, b: None, np.zeros((3, 2)), np.zeros((4, 2)))


@pytest.mark.parametrize("shape", [(37, 5), (3, 37, 11), (2, 3, 20, 9), (1, 1, 1)])
def test_copy_transposed_swaps_the_last_two_axes_tile_by_tile(shape, monkeypatch):
    monkeypatch.setattr(blocks, "TILE_ELEMENTS", 16)            # tiles of 8 rows: many of them
    src = np.random.default_rng(0).standard_normal(shape)
    out = np.full(shape[:-2] + shape[:-3:-1], np.nan)
    assert blocks.copy_transposed(src, out) is out
    np.testing.assert_array_equal(out, src.swapaxes(-1, -2))
    # strided views on both sides, as the LSTM uses them
    big = np.random.default_rng(1).standard_normal((4, 6, 5))    # (B, T, D)
    target = np.empty((6, 5, 4))                                 # (T, D, B)
    blocks.copy_transposed(big.transpose(1, 0, 2), target)
    np.testing.assert_array_equal(target, big.transpose(1, 2, 0))
    outputs = np.empty((4, 6, 5))                                # (B, T, H) written as (T, B, H)
    blocks.copy_transposed(target, outputs.transpose(1, 0, 2)[..., :5])
    np.testing.assert_array_equal(outputs, target.transpose(2, 0, 1))


@pytest.mark.parametrize("fused", [False, True])
def test_copy_transposed_on_a_device_array(fused, monkeypatch):
    """A host device in tiles; a device with fused kernels (as CUDA) in one assignment."""
    src = md.tensor(np.arange(60.0).reshape(3, 20), device="strict").data
    out = md.tensor(np.zeros((20, 3)), device="strict").data
    monkeypatch.setattr(blocks, "TILE_ELEMENTS", 8)
    monkeypatch.setattr(backend.array_device(src), "fused_kernels", fused)
    blocks.copy_transposed(src, out)
    np.testing.assert_array_equal(md.Tensor(out).numpy(), np.arange(60.0).reshape(3, 20).T)


# ----------------------------------------------------------------------------- the fused ops
def _ops():
    """(name, function of tensors, input arrays) for every op that runs in row blocks."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5, 8))
    causal = np.triu(np.full((5, 5), -np.inf), 1)
    per_batch = np.where(rng.random((6, 1, 1, 5)) < 0.3, -np.inf, 0.0)
    per_batch[..., 0] = 0.0
    qkv = [rng.standard_normal((6, 2, 5, 4)) for _ in range(3)]
    target = rng.integers(0, 8, size=30)
    return [
        ("gelu tanh", lambda x: F.gelu(x, approximate="tanh"), [x]),
        ("layer_norm affine", lambda x, w, b: F.layer_norm(x, (8,), w, b),
         [x, rng.standard_normal(8), rng.standard_normal(8)]),
        ("layer_norm two axes", lambda x: F.layer_norm(x, (5, 8)), [x]),
        ("cross_entropy", lambda z: F.cross_entropy(z, target), [x.reshape(30, 8) * 3]),
        ("attention causal", lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, is_causal=True), qkv),
        ("attention bias per batch", lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=per_batch), qkv),
        ("attention (1, ...) bias", lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=causal[None, None]), qkv),
    ]


def _outputs_and_grads(fn, arrays, seed=1):
    xs = [md.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*xs)
    y.backward(np.random.default_rng(seed).standard_normal(y.shape))
    return [y.numpy()] + [x.grad.numpy() for x in xs]


@pytest.mark.parametrize("name, fn, arrays", _ops(), ids=[op[0] for op in _ops()])
def test_fused_ops_in_blocks_match_the_whole_array_call(name, fn, arrays, monkeypatch,
                                                        small_blocks):
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 10 ** 9)           # the reference: no split
    whole = _outputs_and_grads(fn, arrays)
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 16)
    calls = []

    def counting(kernel, *arrays, **options):          # counts the kernel's calls
        return blocks.for_row_blocks(lambda *b: calls.append(1) or kernel(*b), *arrays,
                                     **options)
    for module in (elementwise, loss, normalization, attention):
        monkeypatch.setattr(module, "for_row_blocks", counting)
    split = _outputs_and_grads(fn, arrays)
    assert len(calls) > 2, f"{name} did not run in blocks"
    for a, b in zip(whole, split):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, fn, arrays", _ops(), ids=[op[0] for op in _ops()])
def test_fused_ops_in_blocks_pass_the_gradient_check(name, fn, arrays, small_blocks):
    xs = [md.tensor(a, requires_grad=True) for a in arrays]
    assert md.gradcheck(fn, *xs)
