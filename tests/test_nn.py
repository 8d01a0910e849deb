"""Modules and layers: registration, state dicts, modes, devices, freezing; every layer
gradchecked w.r.t. inputs and parameters; the two LSTM paths agree."""
import numpy as np
import pytest

import minidl as md
import minidl.functions as F
from minidl import nn
from conftest import randn


def params64(module):
    module.astype("float64")
    return dict(module.named_parameters())


# ----------------------------------------------------------------------------- Module
class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(3, 4)
        self.scale = nn.Parameter(md.tensor([2.0]))
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        return self.out(F.sigmoid(self.hidden(x))) * self.scale


def test_parameters_are_registered_in_definition_order():
    names = [name for name, _ in TwoLayer().named_parameters()]
    assert names == ["hidden.W", "hidden.b", "scale", "out.W", "out.b"]


def test_state_dict_round_trip_is_bit_exact():
    a, b = TwoLayer(), TwoLayer()
    b.load_state_dict(a.state_dict())
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)


def test_load_state_dict_names_missing_and_unexpected_keys():
    state = TwoLayer().state_dict()
    state.pop("out.b")
    state["extra"] = np.zeros(1)
    with pytest.raises(nn.StateDictError, match=r"missing keys \['out.b'\], unexpected keys "
                                                r"\['extra'\]"):
        TwoLayer().load_state_dict(state)


def test_load_state_dict_names_a_mis_shaped_key():
    state = TwoLayer().state_dict()
    state["hidden.W"] = np.zeros((4, 3), np.float32)
    with pytest.raises(nn.StateDictError, match=r"'hidden.W' has shape \(4, 3\) in the state "
                                                r"dict but \(3, 4\)"):
        TwoLayer().load_state_dict(state)


def test_train_and_eval_switch_every_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_freezing_a_module_stops_its_gradients():
    model = TwoLayer()
    model.hidden.requires_grad_(False)
    model(md.tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert model.hidden.W.grad is None and model.out.W.grad is not None


def test_to_moves_parameters_in_place():
    model = TwoLayer()
    W = model.hidden.W
    model.to("strict")
    assert model.hidden.W is W and W.device == "strict" and model.device == "strict"
    model.to("cpu")
    assert W.device == "cpu"


def test_zero_grad_clears_gradients():
    model = TwoLayer()
    model(md.tensor(np.ones((2, 3), np.float32))).sum().backward()
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_repr_and_summary_show_the_structure():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 1))
    assert "Embedding(10, 4)" in repr(model) and "Linear(8, 1, bias=True)" in repr(model)
    table = model.summary(np.zeros((2, 2), dtype=np.int64), print_fn=None)
    assert "(2, 2, 4)" in table and "(2, 8)" in table and "Total params: 49" in table


def test_assigning_before_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.W = nn.Parameter(md.tensor([1.0]))

    with pytest.raises(AttributeError, match=r"must call super\(\)\.__init__\(\) before assigning .W."):
        Bad()


# ----------------------------------------------------------------------------- layers
def test_linear_is_x_at_W_plus_b_with_documented_shapes():
    layer = nn.Linear(3, 2)
    assert layer.W.shape == (3, 2) and layer.b.shape == (2,)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(layer(md.tensor(x)).numpy(),
                               x @ layer.W.numpy() + layer.b.numpy(), rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "strict"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (3,), (1, 3)])
def test_linear_gradcheck(device, shape):
    layer = nn.Linear(3, 2).to(device)
    assert md.gradcheck(layer, randn(*shape, seed=0, device=device), wrt=params64(layer))


@pytest.mark.parametrize("module", [nn.Sigmoid(), nn.Tanh(), nn.ReLU(), nn.Softmax(),
                                    nn.Flatten()], ids=lambda m: type(m).__name__)
def test_activation_modules_gradcheck(module):
    x = md.tensor(np.array([[0.3, -1.2, 2.0], [1.1, -0.4, 0.7]]), requires_grad=True)
    assert md.gradcheck(module, x)


def test_dropout_is_inverted_in_training_and_off_in_eval():
    md.manual_seed(0)
    layer = nn.Dropout(0.25)
    x = md.tensor(np.ones((200, 50), np.float32))
    y = layer(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02 and abs(y.mean() - 1.0) < 0.03
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


def test_dropout_gradient_uses_the_same_mask():
    md.manual_seed(1)
    x = md.tensor(np.ones(100), requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_embedding_lookup_and_gradcheck(device):
    layer = nn.Embedding(6, 3).to(device)
    ids = np.array([[1, 5, 1], [0, 2, 1]])
    out = layer(ids)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.numpy(), layer.W.numpy()[ids])
    assert md.gradcheck(lambda: layer(ids), wrt=params64(layer))


def test_embedding_repeated_ids_accumulate_gradients():
    layer = nn.Embedding(4, 2)
    layer(np.array([1, 1, 3])).sum().backward()
    np.testing.assert_array_equal(layer.W.grad.numpy(), [[0, 0], [2, 2], [0, 0], [1, 1]])


@pytest.mark.parametrize("bad", [-1, 6])
def test_embedding_out_of_range_id_is_an_index_error_naming_it(bad):
    layer = nn.Embedding(6, 3)
    with pytest.raises(IndexError, match=rf"token id {bad} at position \(1, 0\) is out of "
                                         rf"range: expected ids in \[0, 5\]"):
        layer(np.array([[0, 1], [bad, 2]]))


def test_embedding_float_ids_are_a_type_error():
    with pytest.raises(TypeError, match="must be integers, got dtype float"):
        nn.Embedding(6, 3)(np.array([0.5, 1.0]))


def test_embedding_padding_idx_row_is_zero_and_gets_no_gradient():
    layer = nn.Embedding(5, 2, padding_idx=0)
    out = layer(np.array([[0, 3, 0]]))
    np.testing.assert_array_equal(out.numpy()[0, 0], [0, 0])
    out.sum().backward()
    np.testing.assert_array_equal(layer.W.grad.numpy()[0], [0, 0])
    np.testing.assert_array_equal(layer.W.grad.numpy()[3], [1, 1])


# ----------------------------------------------------------------------------- recurrent
MASK = np.array([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])


@pytest.mark.parametrize("use_mask", [False, True])
def test_fast_and_reference_lstm_agree_to_1e_6(use_mask):
    lstm = nn.LSTM(3, 5)
    lstm.astype("float64")
    x = randn(3, 4, 3, seed=0)
    h0, c0 = randn(3, 5, seed=1), randn(3, 5, seed=2)
    mask = MASK if use_mask else None
    results = []
    for fast in (True, False):
        lstm.fast = fast
        x.grad = h0.grad = c0.grad = None
        lstm.zero_grad()
        out, (h, c) = lstm(x, (h0, c0), mask=mask)
        g = np.random.default_rng(3).standard_normal(out.shape)
        (out * md.tensor(g)).sum().backward()
        results.append([out.numpy(), h.numpy(), c.numpy(), x.grad.numpy(), h0.grad.numpy(),
                        c0.grad.numpy()] + [p.grad.numpy() for p in lstm.parameters()])
    for fast_value, reference_value in zip(*results):
        np.testing.assert_allclose(fast_value, reference_value, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "strict"])
@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("use_mask", [False, True])
def test_lstm_gradcheck(device, fast, use_mask):
    lstm = nn.LSTM(3, 2, fast=fast).to(device)
    weights = params64(lstm)
    x, h0, c0 = (randn(3, 4, 3, seed=0, device=device), randn(3, 2, seed=1, device=device),
                 randn(3, 2, seed=2, device=device))
    mask = MASK if use_mask else None
    assert md.gradcheck(lambda x, h0, c0: lstm(x, (h0, c0), mask=mask)[0], x, h0, c0,
                        wrt=weights)
    assert md.gradcheck(lambda x, h0, c0: lstm(x, (h0, c0), mask=mask)[1], x, h0, c0,
                        wrt=weights)


def test_lstm_cell_gradcheck():
    cell = nn.LSTMCell(3, 2)
    assert md.gradcheck(lambda x, h, c: cell(x, (h, c)), randn(4, 3, seed=0), randn(4, 2, seed=1),
                        randn(4, 2, seed=2), wrt=params64(cell))


@pytest.mark.parametrize("layer_type", [nn.GRU, nn.RNN])
@pytest.mark.parametrize("use_mask", [False, True])
def test_gru_and_rnn_gradcheck(layer_type, use_mask):
    layer = layer_type(3, 2)
    mask = MASK if use_mask else None
    assert md.gradcheck(lambda x: layer(x, mask=mask)[0], randn(3, 4, 3, seed=0),
                        wrt=params64(layer))


@pytest.mark.parametrize("layer", [nn.LSTM(2, 3), nn.LSTM(2, 3, fast=False), nn.GRU(2, 3),
                                   nn.RNN(2, 3)], ids=["lstm", "lstm_ref", "gru", "rnn"])
def test_masked_pre_padding_equals_running_on_the_unpadded_sequence(layer):
    x = np.random.default_rng(0).standard_normal((1, 5, 2)).astype(np.float32)
    padded = np.concatenate([np.zeros((1, 2, 2), np.float32), x], axis=1)
    mask = np.array([[0, 0, 1, 1, 1, 1, 1]])
    out_padded, state_padded = layer(md.tensor(padded), mask=mask)
    out, state = layer(md.tensor(x))
    h_padded = state_padded[0] if isinstance(state_padded, tuple) else state_padded
    h = state[0] if isinstance(state, tuple) else state
    np.testing.assert_allclose(h_padded.numpy(), h.numpy(), atol=1e-6)
    np.testing.assert_allclose(out_padded.numpy()[:, 2:], out.numpy(), atol=1e-6)


def test_lstm_parameters_follow_the_contract():
    lstm = nn.LSTM(4, 3)
    assert [n for n, _ in lstm.named_parameters()] == ["cell.W_x", "cell.W_h", "cell.b"]
    assert lstm.cell.W_x.shape == (4, 12) and lstm.cell.W_h.shape == (3, 12)
    np.testing.assert_array_equal(lstm.cell.b.numpy(), [0] * 3 + [1] * 3 + [0] * 6)


def test_lstm_over_1000_steps_gives_finite_gradients():
    lstm = nn.LSTM(4, 8)
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 1000, 4)).astype(np.float32),
                  requires_grad=True)
    out, (h, c) = lstm(x)
    (h.sum() + out.mean()).backward()
    assert all(np.isfinite(p.grad.numpy()).all() for p in lstm.parameters())
    assert np.isfinite(x.grad.numpy()).all()


def test_lstm_wrong_input_shape_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(batch, time, 4\), got \(2, 4\)"):
        nn.LSTM(4, 3)(md.tensor(np.zeros((2, 4), np.float32)))


# ----------------------------------------------------------------------------- initialisers
@pytest.mark.parametrize("name,expected_std", [
    ("glorot_uniform", np.sqrt(2 / 300)), ("glorot_normal", np.sqrt(2 / 300)),
    ("he_uniform", np.sqrt(2 / 100)), ("he_normal", np.sqrt(2 / 100)),
])
def test_initialisers_have_the_documented_scale(name, expected_std):
    md.manual_seed(0)
    W = nn.init.get(name)((100, 200))
    assert W.shape == (100, 200) and W.dtype == np.float32
    assert abs(W.std() / expected_std - 1) < 0.05


def test_orthogonal_initialiser_is_orthogonal():
    W = nn.init.orthogonal((8, 32)).astype(np.float64)
    np.testing.assert_allclose(W @ W.T, np.eye(8), atol=1e-5)


def test_simple_initialisers():
    assert (nn.init.zeros((2, 2)) == 0).all() and (nn.init.ones((2,)) == 1).all()
    u = nn.init.uniform((1000,), -0.05, 0.05)
    assert u.min() >= -0.05 and u.max() <= 0.05
    with pytest.raises(ValueError, match="unknown initialiser 'lecun'"):
        nn.init.get("lecun")


@pytest.mark.gpu
@pytest.mark.parametrize("use_mask", [False, True])
def test_fused_cuda_lstm_kernels_agree_with_the_ufunc_path(use_mask, monkeypatch):
    """On a GPU the LSTM step runs as two fused CuPy kernels; the same Function with
    MINIDL_FUSED=0 runs the NumPy-style ufunc path on CuPy arrays. Both must agree."""
    from conftest import cuda_or_skip
    cuda_or_skip()
    lstm = nn.LSTM(3, 5).to("cuda").astype("float64")
    x = randn(3, 4, 3, seed=0, device="cuda")
    mask = MASK if use_mask else None
    results = []
    for fused in ("1", "0"):
        monkeypatch.setenv("MINIDL_FUSED", fused)
        x.grad = None
        lstm.zero_grad()
        out, (h, c) = lstm(x, mask=mask)
        (out.sum() + (h * c).sum()).backward()
        results.append([out.numpy(), h.numpy(), c.numpy(), x.grad.numpy()] +
                       [p.grad.numpy() for p in lstm.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
