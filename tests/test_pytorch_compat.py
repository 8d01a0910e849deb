"""PyTorch users' code runs (issue 14): stacked and bidirectional recurrent layers with
PyTorch's state shapes, batch_first, dropout between layers; TensorDataset; lr_scheduler;
clip_grad_norm_; the Tensor conveniences (argmax, unsqueeze, view, numel, float(), np.asarray
on CPU only, .cpu(), dim=)."""
import numpy as np
import pytest

import minidl as md
from minidl import nn
from minidl.data import DataLoader, TensorDataset


def sequence(batch=2, steps=5, features=3, seed=0):
    return md.tensor(np.random.default_rng(seed).standard_normal((batch, steps, features)),
                     dtype="float64")


def single(cls, cell, **kwargs):
    """A one-layer, one-direction layer with ``cell``'s weights."""
    layer = cls(cell.input_size, cell.hidden_size, dtype="float64", **kwargs)
    layer.cell.load_state_dict(cell.state_dict())
    return layer


# ----------------------------------------------------------------------------- recurrent
@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_stacked_bidirectional_layer_equals_its_single_layers_composed(cls):
    md.manual_seed(0)
    layer = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype="float64")
    x = sequence()
    outputs, state = layer(x)
    assert outputs.shape == (2, 5, 8)
    forward0, backward0 = single(cls, layer.cell), single(cls, layer.cell_reverse)
    forward1, backward1 = single(cls, layer.cell_l1), single(cls, layer.cell_l1_reverse)
    f0, sf0 = forward0(x)
    b0, sb0 = backward0(x[:, ::-1])
    h0 = md.functions.concat([f0, b0[:, ::-1]], axis=-1)
    f1, sf1 = forward1(h0)
    b1, sb1 = backward1(h0[:, ::-1])
    expected = np.concatenate([f1.numpy(), b1.numpy()[:, ::-1]], axis=-1)
    np.testing.assert_allclose(outputs.numpy(), expected, rtol=1e-12)
    finals = [sf0, sb0, sf1, sb1]
    if cls is nn.LSTM:
        h, c = state
        assert h.shape == c.shape == (4, 2, 4)
        for i, (hi, ci) in enumerate(finals):
            np.testing.assert_allclose(h.numpy()[i], hi.numpy(), rtol=1e-12)
            np.testing.assert_allclose(c.numpy()[i], ci.numpy(), rtol=1e-12)
    else:
        assert state.shape == (4, 2, 4)
        for i, hi in enumerate(finals):
            np.testing.assert_allclose(state.numpy()[i], hi.numpy(), rtol=1e-12)


def test_batch_first_false_takes_and_returns_time_first():
    md.manual_seed(0)
    layer = nn.LSTM(3, 4, batch_first=False, dtype="float64")
    x = sequence()
    outputs, (h, c) = layer(x.transpose(1, 0, 2))
    reference = single(nn.LSTM, layer.cell)
    expected, (h_ref, _) = reference(x)
    assert outputs.shape == (5, 2, 4) and h.shape == (1, 2, 4)
    np.testing.assert_allclose(outputs.numpy(), expected.numpy().transpose(1, 0, 2))
    np.testing.assert_allclose(h.numpy()[0], h_ref.numpy())


def test_minidl_default_keeps_batch_first_and_b_by_h_states():
    outputs, (h, c) = nn.LSTM(3, 4)(md.tensor(np.zeros((2, 5, 3), np.float32)))
    assert outputs.shape == (2, 5, 4) and h.shape == c.shape == (2, 4)


def test_pytorch_positional_arguments_and_initial_states():
    md.manual_seed(0)
    layer = nn.GRU(3, 4, 2, True, True, dtype="float64")  # num_layers, bias, batch_first
    assert layer.num_layers == 2 and layer.batch_first and layer.pytorch_state
    h0 = md.tensor(np.ones((2, 2, 4)) * 0.1, dtype="float64")
    out_zero, _ = layer(sequence())
    out_h0, _ = layer(sequence(), h0)
    assert not np.allclose(out_zero.numpy(), out_h0.numpy())
    with pytest.raises(ValueError, match=r"\(num_layers \* num_directions, batch, hidden\)"):
        layer(sequence(), md.tensor(np.ones((2, 4)), dtype="float64"))


def test_dropout_acts_between_layers_while_training_only():
    md.manual_seed(0)
    layer = nn.LSTM(3, 4, num_layers=2, dropout=0.5, batch_first=True, dtype="float64")
    x = sequence()
    layer.eval()
    first = layer(x)[0].numpy()
    np.testing.assert_array_equal(first, layer(x)[0].numpy())
    layer.train()
    assert not np.allclose(first, layer(x)[0].numpy())


def test_stacked_layers_pass_gradcheck():
    md.manual_seed(0)
    layer = nn.GRU(2, 3, num_layers=2, bidirectional=True, batch_first=True, dtype="float64")
    x = md.tensor(np.random.default_rng(1).standard_normal((2, 3, 2)), requires_grad=True,
                  dtype="float64")
    assert md.gradcheck(lambda x: layer(x)[0], x, wrt=dict(layer.named_parameters()))


def test_bias_false_and_bad_num_layers_say_so():
    with pytest.raises(NotImplementedError, match="bias=False"):
        nn.LSTM(3, 4, bias=False)
    with pytest.raises(ValueError, match="num_layers"):
        nn.GRU(3, 4, num_layers=0)


# ----------------------------------------------------------------------------- data, optim
def test_tensor_dataset_is_the_array_dataset_and_takes_cpu_tensors():
    x = md.tensor(np.arange(12.0).reshape(6, 2), device="cpu")
    y = np.arange(6)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 2), (2, 2)]
    np.testing.assert_array_equal(batches[1][1].numpy(), [4, 5])


def test_lr_scheduler_module_and_clip_grad_norm_underscore():
    w = nn.Parameter(md.tensor([1.0, 1.0]))
    optimizer = md.optim.SGD([w], lr=0.1)
    scheduler = md.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    scheduler.step()
    assert scheduler.get_last_lr() == [0.05]
    w.grad = md.tensor([3.0, 4.0])
    assert md.optim.clip_grad_norm_([w], 1.0) == pytest.approx(5.0)
    assert np.linalg.norm(w.grad.numpy()) == pytest.approx(1.0, rel=1e-5)


# ----------------------------------------------------------------------------- Tensor
def test_tensor_conveniences_pytorch_users_reach_for():
    x = md.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True, device="cpu")
    assert x.argmax(dim=1).tolist() == [1, 0] and x.argmin(axis=0).tolist() == [0, 1, 0]
    assert x.argmax().item() == 3
    assert x.unsqueeze(0).shape == (1, 2, 3) and x.unsqueeze(-1).shape == (2, 3, 1)
    assert x.unsqueeze(1).squeeze(1).shape == (2, 3) and x[:1].squeeze().shape == (3,)
    assert x.view(3, 2).shape == (3, 2) and x.view(-1).shape == (6,)
    assert x.numel() == 6 and float(x[1, 0]) == 7.0 and int(x[0, 1]) == 5
    assert x.cpu() is x
    assert x.sum(dim=1).tolist() == [8.0, 10.0]
    assert x.mean(dim=0, keepdim=True).shape == (1, 3)
    assert x.max(dim=1).tolist() == [5.0, 7.0]
    x.unsqueeze(0).view(6).sum().backward()  # the aliases are differentiable
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3)))


def test_float_of_a_tensor_with_several_elements_raises():
    with pytest.raises(ValueError, match="one element"):
        float(md.tensor([1.0, 2.0]))


def test_numpy_asarray_reads_cpu_tensors_only():
    x = md.tensor([[1.0, 2.0]], device="cpu")
    assert np.asarray(x) is x.data
    assert np.asarray(x, dtype="float64").dtype == np.float64
    with pytest.raises(TypeError, match="Implicit conversion.*strict.*numpy"):
        np.asarray(x.to("strict"))
    assert x.to("strict").cpu().device == "cpu"
