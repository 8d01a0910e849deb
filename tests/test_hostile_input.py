"""Hostile input to the framework's layers and index checks: one dtype policy for every nn
layer (PyTorch's: raise, saying how to cast), token ids checked as exact integers before any
cast."""
import numpy as np
import pytest

import minidl as md
from minidl import functions as F
from minidl import nn
from minidl.functions.indices import (IndexOutOfRangeError, NonIntegerIndexError,
                                      checked_indices)
from minidl.nn.module import DTypeError


# ----------------------------------------------------------------------------- token ids
def test_a_float64_id_beyond_float32_precision_is_looked_up_exactly():
    ids = np.array([16_777_217.0])  # float32 would round it to 16,777,216
    checked = checked_indices(ids, np, 16_777_218)
    assert checked.dtype == np.int64 and int(checked[0]) == 16_777_217


def test_whole_number_float_ids_work_in_embedding_and_cross_entropy():
    layer = nn.Embedding(4, 2)
    np.testing.assert_array_equal(layer(np.array([[1.0, 3.0]])).numpy(),
                                  layer(np.array([[1, 3]])).numpy())
    logits = md.tensor(np.zeros((2, 3), dtype=np.float32))
    assert F.cross_entropy(logits, np.array([0.0, 2.0])).item() == pytest.approx(np.log(3))


@pytest.mark.parametrize("bad, shown", [(0.5, "0.5"), (np.nan, "nan"), (-np.inf, "-inf")])
def test_a_float_id_that_is_not_a_whole_number_is_named(bad, shown):
    with pytest.raises(NonIntegerIndexError, match=rf"holding {shown} at position \(1, 0\)"):
        checked_indices(np.array([[1.0, 2.0], [bad, 0.0]]), np, 5)


def test_a_huge_float_id_is_out_of_range_not_wrapped():
    with pytest.raises(IndexOutOfRangeError, match="token id 100000000000000000000 at "
                                                   r"position \(0,\) is out of range") as info:
        checked_indices(np.array([1e20]), np, 5)
    assert info.value.value == 10 ** 20 and info.value.position == (0,)


def test_index_errors_are_still_the_builtin_types():
    assert issubclass(IndexOutOfRangeError, IndexError)
    assert issubclass(NonIntegerIndexError, TypeError)


# ----------------------------------------------------------------------------- dtype policy
def test_linear_refuses_float64_input_and_says_how_to_cast():
    with pytest.raises(DTypeError, match=r"Linear: the input has dtype float64, but the "
                                         r"layer's parameters are float32.*md\.tensor\(x, "
                                         r"dtype='float32'\).*\.astype\('float64'\)"):
        nn.Linear(3, 2)(md.tensor(np.ones((2, 3)), dtype="float64"))


def test_linear_refuses_integer_input():
    with pytest.raises(DTypeError, match="Linear: the input has dtype int64.*computes in "
                                         "float32.*nn.Embedding"):
        nn.Linear(3, 2)(md.tensor(np.ones((2, 3), dtype=np.int64)))


@pytest.mark.parametrize("layer", [nn.LSTM(3, 2), nn.GRU(3, 2), nn.RNN(3, 2),
                                   nn.LSTM(3, 2, fast=False)],
                         ids=lambda layer: type(layer).__name__)
def test_recurrent_layers_refuse_integer_input_with_a_clear_error(layer):
    with pytest.raises(DTypeError, match=rf"{type(layer).__name__}: the input has dtype int64"):
        layer(md.tensor(np.ones((2, 4, 3), dtype=np.int64)))


def test_lstm_refuses_float64_input():
    with pytest.raises(DTypeError, match="LSTM: the input has dtype float64"):
        nn.LSTM(3, 2)(md.tensor(np.ones((2, 4, 3)), dtype="float64"))


def test_every_layer_that_owns_parameters_applies_the_policy():
    x64 = md.tensor(np.ones((2, 4)), dtype="float64")
    for layer in [nn.LayerNorm(4), nn.LSTMCell(4, 3), nn.LoRALinear(nn.Linear(4, 4))]:
        with pytest.raises(DTypeError, match=type(layer).__name__):
            layer(x64) if not isinstance(layer, nn.LSTMCell) else layer(x64, None)


def test_a_float64_layer_takes_float64_input():
    layer = nn.Linear(3, 2, dtype="float64")
    assert layer(md.tensor(np.ones((1, 3)), dtype="float64")).dtype == np.float64
    lstm = nn.LSTM(3, 2).astype("float64")
    assert lstm(md.tensor(np.ones((1, 2, 3)), dtype="float64"))[0].dtype == np.float64


def test_containers_pass_integer_ids_to_their_embedding():
    model = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 3))
    outputs, _ = model(np.array([[1, 2, 3]]))
    assert outputs.shape == (1, 3, 3)


def test_embedding_accepts_lists_as_its_docstring_says():
    out = nn.Embedding(10, 4)([[1, 2]])
    assert out.shape == (1, 2, 4) and out.dtype == np.float32


def test_dtype_error_is_a_type_error():
    assert issubclass(DTypeError, TypeError)
