"""The Transformer's building blocks: GELU, layer norm, scaled dot-product attention (values
against formulas written here, float64 gradient checks with random upstream gradients over
broadcasting and size-1 shapes, fused paths against their readable references), and the
modules built from them — on the CPU and through the strict (CuPy-rules) device."""
import math

import numpy as np
import pytest

import minidl as md
import minidl.functions as F
from minidl import backend, nn
from minidl.functions.attention import attention_reference
from minidl.functions.normalization import layer_norm_reference
from conftest import randn

DEVICES = ["cpu", "strict"]


def host(t):
    return t.numpy() if isinstance(t, md.Tensor) else backend.to_numpy(t)


# ----------------------------------------------------------------------------- GELU
@pytest.mark.parametrize("device", DEVICES)
def test_gelu_matches_x_times_the_normal_cdf(device):
    x = randn(3, 4, seed=0, device=device)
    expected = np.array([[v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in row]
                         for row in host(x)])
    np.testing.assert_allclose(host(F.gelu(x)), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("device", DEVICES)
def test_gelu_tanh_matches_gpt2s_formula(device):
    x = randn(5, seed=1, device=device)
    v = host(x)
    expected = 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    np.testing.assert_allclose(host(F.gelu(x, approximate="tanh")), expected, rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(), (1,), (3, 1, 4)])
def test_gelu_gradcheck(device, approximate, shape):
    x = randn(*shape, seed=2, device=device)
    assert md.gradcheck(lambda x: F.gelu(x, approximate), x)


def test_gelu_rejects_an_unknown_approximation():
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        F.gelu(randn(2), approximate="fast")


def test_gelu_is_stable_at_extreme_inputs():
    x = md.tensor([-1e4, -50.0, 0.0, 50.0, 1e4], dtype="float64")
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        for approximate in ("none", "tanh"):
            np.testing.assert_allclose(F.gelu(x, approximate).numpy(),
                                       [0.0, 0.0, 0.0, 50.0, 1e4], atol=1e-12)


# ----------------------------------------------------------------------------- layer norm
@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_normalises_the_last_axes(device):
    x = randn(2, 3, 4, seed=3, device=device)
    y = host(F.layer_norm(x, (3, 4)))
    v = host(x)
    mu = v.mean(axis=(1, 2), keepdims=True)
    var = v.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, (v - mu) / np.sqrt(var + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape,normalized", [((2, 5), 5), ((3, 1, 4), (4,)), ((1, 2, 3), (2, 3)),
                                              ((4, 1), 1)])
def test_layer_norm_gradcheck_with_affine(device, shape, normalized):
    x = randn(*shape, seed=4, device=device)
    n = (normalized,) if isinstance(normalized, int) else normalized
    w, b = randn(*n, seed=5, device=device), randn(*n, seed=6, device=device)
    assert md.gradcheck(lambda x, w, b: F.layer_norm(x, normalized, w, b), x, w, b)


@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_gradcheck_without_affine_and_with_weight_only(device):
    x = randn(3, 6, seed=7, device=device)
    w = randn(6, seed=8, device=device)
    assert md.gradcheck(lambda x: F.layer_norm(x, 6), x)
    assert md.gradcheck(lambda x, w: F.layer_norm(x, 6, weight=w), x, w)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_layer_norm_agrees_with_the_reference_path(device):
    x = randn(4, 3, 8, seed=9, device=device)
    w, b = randn(8, seed=10, device=device), randn(8, seed=11, device=device)
    g = randn(4, 3, 8, seed=12, device=device, requires_grad=False)
    results = []
    for fn in (F.layer_norm, layer_norm_reference):
        for t in (x, w, b):
            t.grad = None
        y = fn(x, 8, w, b)
        (y * g).sum().backward()
        results.append([host(y)] + [host(t.grad) for t in (x, w, b)])
    for fused, reference in zip(*results):
        np.testing.assert_allclose(fused, reference, rtol=1e-10, atol=1e-12)


def test_layer_norm_names_a_shape_that_does_not_fit():
    with pytest.raises(md.ShapeError, match=r"normalized_shape \(5,\) must be the last axes"):
        F.layer_norm(randn(2, 4), 5)
    with pytest.raises(md.ShapeError, match=r"weight must have shape \(4,\)"):
        F.layer_norm(randn(2, 4), 4, randn(3), randn(4))


def test_layer_norm_of_a_constant_row_is_finite():
    x = md.tensor(np.full((2, 4), 3.0), requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        y = F.layer_norm(x, 4)
        y.sum().backward()
    assert np.all(y.numpy() == 0) and np.all(np.isfinite(x.grad.numpy()))


@pytest.mark.parametrize("device", DEVICES)
def test_layer_norm_module_starts_as_plain_normalisation(device):
    ln = nn.LayerNorm(4, device=device)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    x = randn(2, 4, seed=13, device=device, requires_grad=False, dtype="float32")
    np.testing.assert_allclose(host(ln(x)), host(F.layer_norm(x, 4)), rtol=1e-6)


# ----------------------------------------------------------------------------- attention
def _attention_numpy(q, k, v, allowed=None, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if allowed is not None:
        s = np.where(allowed, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


@pytest.mark.parametrize("device", DEVICES)
def test_attention_values_match_softmax_of_scaled_scores(device):
    q, k, v = (randn(2, 3, 5, 4, seed=s, device=device) for s in (20, 21, 22))
    np.testing.assert_allclose(host(F.scaled_dot_product_attention(q, k, v)),
                               _attention_numpy(host(q), host(k), host(v)), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_causal_attention_sees_only_the_past(device):
    q, k, v = (randn(1, 2, 4, 3, seed=s, device=device) for s in (23, 24, 25))
    causal = np.tril(np.ones((4, 4), dtype=bool))
    np.testing.assert_allclose(host(F.scaled_dot_product_attention(q, k, v, is_causal=True)),
                               _attention_numpy(host(q), host(k), host(v), causal), rtol=1e-12)
    # changing the future keys and values does not change earlier outputs
    k2, v2 = host(k).copy(), host(v).copy()
    k2[..., 3, :] += 10
    v2[..., 3, :] -= 10
    out2 = F.scaled_dot_product_attention(q, md.tensor(k2, device=device),
                                          md.tensor(v2, device=device), is_causal=True)
    out1 = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(host(out1)[..., :3, :], host(out2)[..., :3, :], rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_boolean_mask_is_true_where_attention_is_allowed_and_float_mask_is_added(device):
    q, k, v = (randn(2, 1, 3, 4, seed=s, device=device) for s in (26, 27, 28))
    allowed = np.array([[True, False, True], [True, True, False], [False, True, True]])
    expected = _attention_numpy(host(q), host(k), host(v), allowed)
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    np.testing.assert_allclose(host(got), expected, rtol=1e-12)
    additive = np.where(allowed, 0.0, -np.inf)
    got = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
    np.testing.assert_allclose(host(got), expected, rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradcheck(device, causal):
    q, k = randn(2, 2, 3, 4, seed=30, device=device), randn(2, 2, 3, 4, seed=31, device=device)
    v = randn(2, 2, 3, 5, seed=32, device=device)
    assert md.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                                       is_causal=causal),
                        q, k, v)


@pytest.mark.parametrize("device", DEVICES)
def test_attention_gradcheck_with_broadcast_keys_size_one_axes_and_a_mask(device):
    q = randn(2, 3, 1, 4, seed=33, device=device)        # one query per head
    k = randn(1, 1, 5, 4, seed=34, device=device)        # keys shared by batch and heads
    v = randn(2, 1, 5, 2, seed=35, device=device)
    mask = np.array([[True, True, False, True, False]])
    assert md.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                                       attn_mask=mask),
                        q, k, v)


@pytest.mark.parametrize("device", DEVICES)
def test_fused_attention_agrees_with_the_reference_path(device):
    q, k, v = (randn(2, 2, 6, 4, seed=s, device=device) for s in (36, 37, 38))
    g = randn(2, 2, 6, 4, seed=39, device=device, requires_grad=False)
    results = []
    for fn in (F.scaled_dot_product_attention, attention_reference):
        for t in (q, k, v):
            t.grad = None
        out = fn(q, k, v, is_causal=True)
        (out * g).sum().backward()
        results.append([host(out)] + [host(t.grad) for t in (q, k, v)])
    for fused, reference in zip(*results):
        np.testing.assert_allclose(fused, reference, rtol=1e-10, atol=1e-12)


def test_causal_attention_with_a_cached_past_aligns_queries_at_the_end():
    q = randn(1, 1, 2, 3, seed=40)
    k, v = randn(1, 1, 5, 3, seed=41), randn(1, 1, 5, 3, seed=42)
    allowed = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=bool)
    np.testing.assert_allclose(host(F.scaled_dot_product_attention(q, k, v, is_causal=True)),
                               _attention_numpy(host(q), host(k), host(v), allowed),
                               rtol=1e-12)


def test_attention_dropout_is_seeded_and_off_outside_training():
    q, k, v = (randn(1, 1, 4, 4, seed=s) for s in (43, 44, 45))
    md.manual_seed(0)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    md.manual_seed(0)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    np.testing.assert_array_equal(a, b)
    plain = F.scaled_dot_product_attention(q, k, v).numpy()
    assert not np.allclose(a, plain)
    np.testing.assert_array_equal(
        F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False).numpy(), plain)


def test_attention_names_shapes_that_do_not_fit():
    with pytest.raises(md.ShapeError, match="q .*k .*v"):
        F.scaled_dot_product_attention(randn(1, 3, 4), randn(1, 3, 5), randn(1, 3, 5))
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(randn(1, 3, 4), randn(1, 3, 4), randn(1, 3, 4),
                                       dropout_p=1.0)


# ----------------------------------------------------------------------------- modules
def _float64(module):
    return module.astype("float64")


@pytest.mark.parametrize("device", DEVICES)
def test_multi_head_self_attention_gradcheck(device):
    md.manual_seed(0)
    attn = _float64(nn.MultiHeadSelfAttention(8, 2).to(device))
    x = randn(2, 3, 8, seed=50, device=device)
    params = dict(attn.named_parameters())
    assert md.gradcheck(lambda x: attn(x), x, wrt=params)


@pytest.mark.parametrize("device", DEVICES)
def test_transformer_block_gradcheck(device):
    md.manual_seed(1)
    block = _float64(nn.TransformerBlock(8, 2, n_layers=2).to(device))
    x = randn(2, 4, 8, seed=51, device=device)
    assert md.gradcheck(lambda x: block(x), x, wrt=dict(block.named_parameters()))


def test_heads_are_independent_until_the_output_projection():
    md.manual_seed(2)
    attn = _float64(nn.MultiHeadSelfAttention(4, 2, causal=False))
    x = randn(1, 3, 4, seed=52, requires_grad=False)
    d = 4
    qkv = x.numpy() @ attn.qkv.W.numpy() + attn.qkv.b.numpy()
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    heads = [_attention_numpy(q[..., h * 2:(h + 1) * 2], k[..., h * 2:(h + 1) * 2],
                              v[..., h * 2:(h + 1) * 2]) for h in range(2)]
    expected = np.concatenate(heads, -1) @ attn.proj.W.numpy() + attn.proj.b.numpy()
    np.testing.assert_allclose(attn(x).numpy(), expected, rtol=1e-10)


def test_positional_embedding_adds_one_row_per_position_and_refuses_long_inputs():
    pos = _float64(nn.PositionalEmbedding(4, 3))
    x = randn(2, 3, 3, seed=53, requires_grad=False)
    np.testing.assert_allclose(pos(x).numpy(), x.numpy() + pos.W.numpy()[:3])
    np.testing.assert_allclose(pos(x[:, :1], start=2).numpy(),
                               x.numpy()[:, :1] + pos.W.numpy()[2:3])
    with pytest.raises(ValueError, match="longer than the model's context of 4"):
        pos(randn(1, 5, 3))
