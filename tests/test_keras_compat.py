"""Keras 2 code runs on minidl.keras: the arguments and names Keras 2 programs pass (issue 14).

Each test is one thing a Keras 2 user writes without thinking: ``Dense(32, input_dim=784)``,
``SGD(lr=0.01, decay=1e-6)``, ``K.mean`` in a metric, ``train_on_batch``, ``class_weight``...
"""
import warnings

import numpy as np
import pytest

import minidl as md
from minidl import keras
from minidl.keras import backend as K
from minidl.keras import layers as L
from minidl.keras import optimizers
from minidl.keras.models import Model, Sequential


def mlp(**dense_kwargs):
    md.manual_seed(0)
    model = Sequential()
    model.add(L.Dense(8, input_dim=6, **dense_kwargs))
    model.add(L.Activation("relu"))
    model.add(L.Dense(3, activation="softmax"))
    return model


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, n), 3)
    return x, y


def text_model(recurrent_dropout=0.0):
    md.manual_seed(0)
    model = Sequential([keras.Input(shape=(5,), dtype="int32"), L.Embedding(10, 4),
                        L.LSTM(3, recurrent_dropout=recurrent_dropout),
                        L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["acc"])
    return model


def token_data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10, (n, 5)), rng.integers(0, 2, n)


# ----------------------------------------------------------------------------- layers
def test_dense_input_dim_declares_the_input_shape():
    model = mlp()
    assert model.built and model.input_shape == (None, 6) and model.output_shape == (None, 3)


def test_layer_output_shape_is_known_once_the_layer_has_been_built():
    layer = L.Dense(4)
    with pytest.raises(AttributeError, match="never been called"):
        layer.output_shape
    Sequential([L.Dense(5, input_shape=(3,)), layer])
    assert layer.input_shape == (None, 5) and layer.output_shape == (None, 4)


def test_input_with_an_integer_dtype_feeds_token_ids():
    model = text_model()
    x, _ = token_data()
    assert model.input_shape == (None, 5)
    assert model.predict(x, verbose=0).shape == (20, 1)


def test_sequential_pop_removes_the_last_layer_and_rebuilds():
    model = mlp()
    popped = model.pop()
    assert isinstance(popped, L.Dense) and len(model) == 2 and model.output_shape == (None, 8)


# ----------------------------------------------------------------------------- optimizers
def test_sgd_accepts_keras2_lr_with_a_deprecation_warning():
    with pytest.warns(UserWarning, match="`lr` argument is deprecated"):
        sgd = optimizers.SGD(lr=0.05)
    assert sgd.learning_rate == 0.05 and sgd.lr == 0.05


def test_decay_divides_the_learning_rate_by_one_plus_decay_times_iterations():
    with pytest.warns(UserWarning, match="decay"):
        sgd = optimizers.SGD(learning_rate=0.1, decay=0.5)
    w = md.nn.Parameter(md.tensor([1.0]))
    sgd.build([w])
    for t in range(3):
        w.grad = md.tensor([1.0])
        before = float(w.data[0])
        sgd.step()
        assert float(w.data[0]) == pytest.approx(before - 0.1 / (1 + 0.5 * t))
    assert sgd.learning_rate == 0.1  # the base rate is unchanged


def test_backend_set_value_changes_the_learning_rate_of_a_compiled_model():
    model = mlp()
    model.compile(optimizers.Adam(), "categorical_crossentropy")
    model.fit(*data(), epochs=1, verbose=0)
    K.set_value(model.optimizer.lr, 0.5)
    assert K.get_value(model.optimizer.lr) == 0.5
    assert model.optimizer.core.param_groups[0]["lr"] == 0.5


# ----------------------------------------------------------------------------- backend
def test_backend_functions_work_on_arrays_and_tensors():
    a = np.array([[1.0, -2.0], [3.0, 4.0]], dtype="float32")
    assert K.mean(a) == pytest.approx(1.5) and K.epsilon() == 1e-7 and K.floatx() == "float32"
    t = md.tensor(a, requires_grad=True)
    loss = K.mean(K.square(K.abs(t) - 1.0), axis=-1).sum()
    loss.backward()
    assert isinstance(loss, md.Tensor) and t.grad.shape == (2, 2)
    np.testing.assert_allclose(K.clip(a, 0.0, 2.0), np.clip(a, 0.0, 2.0))
    assert K.int_shape(t) == (2, 2) and K.argmax(a).tolist() == [0, 1]


def test_custom_metric_written_with_backend_is_logged():
    def mean_pred(y_true, y_pred):
        return K.mean(y_pred)
    model = mlp()
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy", mean_pred])
    history = model.fit(*data(), epochs=1, verbose=0)
    assert history.history["mean_pred"][0] == pytest.approx(1 / 3, abs=1e-6)


def test_custom_loss_written_with_backend_trains():
    def my_mse(y_true, y_pred):
        return K.mean(K.square(y_pred - y_true), axis=-1)
    model = mlp()
    model.compile("adam", my_mse)
    history = model.fit(*data(), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# ----------------------------------------------------------------------------- metrics_names
def test_metrics_names_are_empty_until_the_model_has_seen_data_as_keras2():
    model = mlp()
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    assert model.metrics_names == []
    model.evaluate(*data(), verbose=0)
    assert model.metrics_names == ["loss", "accuracy"]


# ----------------------------------------------------------------------------- one batch
def test_train_on_batch_steps_and_returns_loss_and_metrics():
    model = mlp()
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    x, y = data()
    before = model.get_weights()[0].copy()
    loss, accuracy = model.train_on_batch(x, y)
    assert not np.array_equal(before, model.get_weights()[0])
    assert loss > 0 and 0 <= accuracy <= 1
    assert model.test_on_batch(x, y, return_dict=True).keys() == {"loss", "accuracy"}


def test_predict_on_batch_equals_predict():
    model = mlp()
    x, _ = data()
    np.testing.assert_allclose(model.predict_on_batch(x), model.predict(x, verbose=0),
                               rtol=1e-6)


# ----------------------------------------------------------------------------- sample weights
def test_sample_weight_weights_each_samples_loss_over_the_batch_size():
    model = mlp()
    model.compile("adam", "categorical_crossentropy")
    x, y = data(8)
    weights = np.arange(8, dtype="float64")
    per_sample = keras.losses.categorical_crossentropy(y, model.predict(x, verbose=0)).numpy()
    weighted = model.evaluate(x, y, sample_weight=weights, verbose=0, batch_size=8)
    assert weighted == pytest.approx((weights * per_sample).sum() / 8, rel=1e-5)


def test_class_weight_equals_the_same_sample_weights():
    x, y = data(12)
    labels = y.argmax(axis=1)
    class_weight = {0: 1.0, 1: 2.0, 2: 0.5}
    first = mlp()
    first.compile("sgd", "categorical_crossentropy")
    first.fit(x, y, class_weight=class_weight, epochs=2, shuffle=False, verbose=0)
    second = mlp()
    second.compile("sgd", "categorical_crossentropy")
    second.fit(x, y, sample_weight=np.array([class_weight[c] for c in labels]), epochs=2,
               shuffle=False, verbose=0)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_zero_sample_weights_leave_those_samples_out_of_training():
    x, y = data(10)
    weights = np.array([1.0] * 5 + [0.0] * 5)
    weighted = mlp()
    weighted.compile("sgd", "categorical_crossentropy")
    weighted.fit(x, y, sample_weight=weights, batch_size=10, epochs=2, verbose=0)
    half = mlp()
    half.compile(optimizers.SGD(learning_rate=0.005), "categorical_crossentropy")
    half.fit(x[:5], y[:5], batch_size=5, epochs=2, verbose=0)  # sum/10 = mean/2
    for a, b in zip(weighted.get_weights(), half.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_class_weight_needs_keys_from_zero():
    model = text_model()
    x, y = token_data()
    with pytest.raises(ValueError, match="keys from 0"):
        model.fit(x, y, class_weight={1: 2.0}, verbose=0)


def test_class_weight_is_not_applied_to_the_validation_split():
    x, y = token_data()
    plain = text_model()
    plain_history = plain.fit(x, y, epochs=1, validation_split=0.25, verbose=0,
                              shuffle=False)
    weighted = text_model()
    history = weighted.fit(x, y, epochs=1, validation_split=0.25, verbose=0, shuffle=False,
                           class_weight={0: 1.0, 1: 1.0})
    assert history.history["val_loss"] == pytest.approx(plain_history.history["val_loss"])


# ----------------------------------------------------------------------------- recurrent dropout
def test_recurrent_dropout_acts_only_while_training():
    model = text_model(recurrent_dropout=0.5)
    x, y = token_data()
    layer = model.layers[1]
    inputs = model.layers[0](x)
    reference = md.nn.LSTM(4, 3)
    reference.load_state_dict(layer.lstm.state_dict())
    np.testing.assert_allclose(layer(inputs).numpy(), reference(inputs)[1][0].numpy(),
                               rtol=1e-5)
    md.manual_seed(1)
    assert not np.allclose(layer(inputs, training=True).numpy(), layer(inputs).numpy())
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("core", [md.nn.LSTM, md.nn.GRU, md.nn.RNN])
def test_recurrent_dropout_mask_drops_h_in_the_recurrent_matmul_only(core):
    md.manual_seed(0)
    layer = core(3, 4, recurrent_dropout=0.3).astype("float64")
    layer.train()
    x = md.tensor(np.random.default_rng(0).standard_normal((2, 5, 3)), dtype="float64")
    md.manual_seed(5)
    outputs, _ = layer(x)
    md.manual_seed(5)
    from minidl.nn.recurrent import _unroll, recurrent_dropout_mask
    h_mask = recurrent_dropout_mask(x, 4, 0.3, True)
    zeros = md.tensor(np.zeros((2, 4)), dtype="float64")
    state = (zeros, zeros) if core is md.nn.LSTM else zeros
    expected, _ = _unroll(layer.cell, x, state, None, h_mask)
    np.testing.assert_allclose(outputs.numpy(), expected.numpy())


# ----------------------------------------------------------------------------- GRU layout
def keras_gru(x, kernel, recurrent, bias):
    """Keras' GRU with reset_after=True (gate blocks z, r, h; bias rows input, recurrent)."""
    units = recurrent.shape[0]
    h = np.zeros((x.shape[0], units))
    for t in range(x.shape[1]):
        zx = x[:, t] @ kernel + bias[0]
        zh = h @ recurrent + bias[1]
        z = 1 / (1 + np.exp(-(zx[:, :units] + zh[:, :units])))
        r = 1 / (1 + np.exp(-(zx[:, units:2 * units] + zh[:, units:2 * units])))
        candidate = np.tanh(zx[:, 2 * units:] + r * zh[:, 2 * units:])
        h = z * h + (1 - z) * candidate
    return h


def test_gru_weights_have_keras_layout_and_keras_math():
    md.manual_seed(0)
    layer = L.GRU(3)
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype("float32")
    layer(x)
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (5, 9) and recurrent.shape == (3, 9) and bias.shape == (2, 9)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.5 for w in (kernel, recurrent,
                                                                            bias)]
    layer.set_weights(weights)
    np.testing.assert_allclose(layer(x).numpy(), keras_gru(x, *weights), rtol=1e-5, atol=1e-6)
    for got, given in zip(layer.get_weights(), weights):
        np.testing.assert_array_equal(got, given)


def test_model_set_weights_takes_keras_get_weights_for_a_gru_model():
    md.manual_seed(0)
    model = Sequential([L.Embedding(10, 4, input_length=5), L.GRU(3), L.Dense(1)])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(10, 4), (4, 9), (3, 9), (2, 9), (3, 1), (1,)]
    model.set_weights([np.ones(s, dtype="float32") for s in shapes])
    assert all((w == 1).all() for w in model.get_weights())


# ----------------------------------------------------------------------------- Tokenizer, ids
def test_tokenizer_splits_text_without_cjk_exactly_as_keras():
    from minidl.keras.preprocessing.text import Tokenizer
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(['He said “hello”… then—left', 'Ｆｕｌｌ，width！'])
    assert list(tokenizer.word_index) == ["he", "said", "“hello”…", "then—left",
                                          "ｆｕｌｌ，width！"]
    tokenizer.fit_on_texts(["我喜欢“编程”"])  # with CJK characters, CJK punctuation separates
    assert {"我", "编", "程"} <= set(tokenizer.word_index)


def test_tokenizer_oov_token_in_the_texts_follows_keras_index_quirk():
    from minidl.keras.preprocessing.text import Tokenizer
    tokenizer = Tokenizer(oov_token="oov")
    tokenizer.fit_on_texts(["oov oov a b"])
    assert tokenizer.word_index == {"oov": 2, "a": 3, "b": 4}
    assert 1 not in tokenizer.index_word


def test_embedding_checks_float_ids_before_any_cast():
    layer = L.Embedding(2 ** 24 + 2, 1)  # not built: checking needs no weights
    layer.check_inputs(np.array([[1.0, 2.0 ** 24 + 1]]))  # exact in float64: accepted
    with pytest.raises(TypeError, match=r"3.5 at x\[0, 1\]"):
        layer.check_inputs(np.array([[1.0, 3.5]]))
    with pytest.raises(IndexError, match=r"16777218 at x\[0, 0\].*input_dim"):
        layer.check_inputs(np.array([[2.0 ** 24 + 2]]))
    assert L.layer.to_input_tensor(np.array([[2.0 ** 24 + 1]])).dtype == np.float64
