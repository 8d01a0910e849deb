"""The layers text and image models use (issue 14): convolution and pooling through im2col,
batch and layer normalisation, Bidirectional, TimeDistributed, SpatialDropout1D, the functional
API with branches — gradient-checked where they add math, and Keras 2's Sequential-guide
examples run with only their imports changed."""
import numpy as np
import pytest

import minidl as md
import minidl.functions as F
from minidl import keras
from minidl.functions.batch_norm import batch_norm
from minidl.functions.conv import conv1d, conv2d, im2col, max_pool1d, max_pool2d
from minidl.keras import layers as L
from minidl.keras.models import Model, Sequential
from minidl.keras.optimizers import SGD


def randn(*shape, seed=0, device=None):
    return md.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True,
                     dtype="float64", device=device)


def reference_conv2d(x, W, stride, padding):
    """Direct loops over output positions (the definition)."""
    kh, kw, C, F_ = W.shape
    if padding == "same":
        def pads(n, k, s):
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            return total // 2, total - total // 2
        (t, b), (l_, r) = pads(x.shape[1], kh, stride), pads(x.shape[2], kw, stride)
        x = np.pad(x, ((0, 0), (t, b), (l_, r), (0, 0)))
    Ho = (x.shape[1] - kh) // stride + 1
    Wo = (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], Ho, Wo, F_))
    for i in range(Ho):
        for j in range(Wo):
            window = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, i, j] = np.einsum("bpqc,pqcf->bf", window, W)
    return y


# ----------------------------------------------------------------------------- functions
@pytest.mark.parametrize("stride, padding", [(1, "valid"), (2, "valid"), (1, "same"),
                                             (2, "same")])
def test_conv2d_equals_the_definition(stride, padding):
    x, W = randn(2, 5, 6, 3), randn(3, 2, 3, 4, seed=1)
    got = conv2d(x, W, None, stride, padding).numpy()
    np.testing.assert_allclose(got, reference_conv2d(x.numpy(), W.numpy(), stride, padding),
                               rtol=1e-12)


@pytest.mark.parametrize("stride, padding", [(1, "valid"), (2, "same"), (1, "same")])
def test_im2col_and_convolutions_pass_gradcheck(stride, padding):
    x, W, b = randn(2, 5, 4, 3), randn(2, 3, 3, 2, seed=1), randn(2, seed=2)
    assert md.gradcheck(lambda x: im2col(x, (2, 3), stride, padding), x)
    assert md.gradcheck(lambda x, W, b: conv2d(x, W, b, stride, padding), x, W, b)
    x1, W1 = randn(2, 7, 3, seed=3), randn(3, 3, 4, seed=4)
    assert md.gradcheck(lambda x, W, b: conv1d(x, W, b, stride, padding), x1, W1, randn(4))


def test_overlapping_windows_add_their_gradients():
    x = md.tensor(np.ones((1, 1, 4, 1)), requires_grad=True, dtype="float64")
    im2col(x, (1, 3), 1).sum().backward()
    assert x.grad.numpy().ravel().tolist() == [1.0, 2.0, 2.0, 1.0]


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pooling_takes_window_maxima_and_passes_gradcheck(padding):
    x = randn(2, 5, 5, 3)
    y = max_pool2d(x, 2, None, padding)
    data = x.numpy()
    if padding == "valid":
        expected = data[:, :4, :4].reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4))
        np.testing.assert_allclose(y.numpy(), expected)
    else:
        assert y.shape == (2, 3, 3, 3)
        assert y.numpy()[0, 2, 2, 0] == data[0, 4, 4, 0]  # a window of one real value
    assert md.gradcheck(lambda x: max_pool2d(x, 2, None, padding), x)
    assert md.gradcheck(lambda x: max_pool1d(x, 3, 2, padding), randn(2, 7, 3, seed=5))


def test_batch_norm_normalises_with_batch_statistics_and_updates_running_ones():
    x = randn(8, 3, device="cpu")  # host running statistics: the values are the point here
    mean, var = np.zeros(3), np.ones(3)
    y = batch_norm(x, mean, var, training=True, momentum=0.1, eps=0.0).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), 1, rtol=1e-10)
    np.testing.assert_allclose(mean, 0.1 * x.numpy().mean(axis=0))
    np.testing.assert_allclose(var, 0.9 + 0.1 * x.numpy().var(axis=0))
    weight, bias = randn(3, seed=1, device="cpu"), randn(3, seed=2, device="cpu")
    assert md.gradcheck(lambda x, w, b: batch_norm(x, np.zeros(3), np.ones(3), w, b, True),
                        x, weight, bias)
    inference = batch_norm(x, mean, var, weight, bias, training=False).numpy()
    np.testing.assert_allclose(inference, (x.numpy() - mean) / np.sqrt(var + 1e-5)
                               * weight.numpy() + bias.numpy())


# ----------------------------------------------------------------------------- layers
def test_conv_layers_have_keras_shapes_weights_and_parameter_counts():
    conv = L.Conv1D(8, 3, padding="same", activation="relu")
    model = Sequential([L.Conv1D(6, 3, input_shape=(10, 4)), conv, L.MaxPooling1D(2),
                        L.GlobalMaxPooling1D()])
    assert [layer.output_shape for layer in model.layers] == \
        [(None, 8, 6), (None, 8, 8), (None, 4, 8), (None, 8)]
    kernel, bias = conv.get_weights()
    assert kernel.shape == (3, 6, 8) and bias.shape == (8,)
    assert np.abs(kernel).max() <= np.sqrt(6 / (3 * 6 + 3 * 8))  # Keras' glorot fans
    image = Sequential([L.Conv2D(4, (3, 3), strides=2, input_shape=(9, 9, 3)),
                        L.MaxPooling2D(pool_size=(2, 2)), L.Flatten()])
    assert image.output_shape == (None, 16) and image.count_params() == 3 * 3 * 3 * 4 + 4


def test_conv1d_layer_equals_the_function_of_its_weights():
    layer = L.Conv1D(3, 2, strides=2)
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype("float32")
    kernel, bias = layer(x), None
    kernel, bias = layer.get_weights()
    expected = conv1d(md.tensor(x), md.tensor(kernel), md.tensor(bias), 2).numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)


def test_batch_normalization_uses_batch_statistics_only_while_training():
    layer = L.BatchNormalization()
    x = np.random.default_rng(0).normal(3.0, 2.0, (32, 4)).astype("float32")
    trained = layer(x, training=True).numpy()
    np.testing.assert_allclose(trained.mean(axis=0), 0, atol=1e-5)
    gamma, beta, moving_mean, moving_variance = layer.get_weights()
    np.testing.assert_allclose(moving_mean, 0.01 * x.mean(axis=0), rtol=1e-5)
    inference = layer(x).numpy()
    np.testing.assert_allclose(inference, (x - moving_mean) / np.sqrt(moving_variance + 1e-3),
                               rtol=1e-5)
    assert [p.requires_grad for p in layer.weights] == [True, True, False, False]
    assert len(layer.trainable_weights) == 2


def test_layer_normalization_is_f_layer_norm_with_keras_epsilon():
    layer = L.LayerNormalization()
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype("float32")
    expected = F.layer_norm(md.tensor(x), (5,), eps=1e-3).numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)
    assert [w.shape for w in layer.get_weights()] == [(5,), (5,)]


def test_spatial_dropout_drops_whole_channels():
    md.manual_seed(0)
    layer = L.SpatialDropout1D(0.5)
    x = np.ones((4, 6, 8), dtype="float32")
    y = layer(x, training=True).numpy()
    assert ((y == 0).all(axis=1) | (y == 2).all(axis=1)).all()
    np.testing.assert_array_equal(layer(x).numpy(), x)


def test_time_distributed_applies_the_layer_to_every_step():
    dense = L.Dense(2)
    layer = L.TimeDistributed(dense)
    x = np.random.default_rng(0).standard_normal((3, 4, 5)).astype("float32")
    y = layer(x).numpy()
    assert y.shape == (3, 4, 2) and layer.compute_output_shape((None, 4, 5)) == (None, 4, 2)
    np.testing.assert_allclose(y[:, 1], dense(x[:, 1]).numpy(), rtol=1e-6)


@pytest.mark.parametrize("merge_mode, units", [("concat", 6), ("sum", 3), ("mul", 3),
                                               ("ave", 3)])
def test_bidirectional_merges_a_forward_and_a_reversed_pass(merge_mode, units):
    md.manual_seed(0)
    layer = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=merge_mode)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype("float32")
    y = layer(x).numpy()
    assert y.shape == (2, 5, units)
    forward = md.nn.LSTM(4, 3)
    forward.load_state_dict(layer.forward_layer.lstm.state_dict())
    backward = md.nn.LSTM(4, 3)
    backward.load_state_dict(layer.backward_layer.lstm.state_dict())
    f = forward(md.tensor(x))[0].numpy()
    b = backward(md.tensor(x[:, ::-1].copy()))[0].numpy()[:, ::-1]
    expected = {"concat": np.concatenate([f, b], -1), "sum": f + b, "mul": f * b,
                "ave": (f + b) / 2}[merge_mode]
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_bidirectional_with_mask_ignores_pre_padding_in_both_directions():
    md.manual_seed(0)
    embedding = L.Embedding(10, 4, mask_zero=True)
    model = Sequential([embedding, L.Bidirectional(L.GRU(3))])
    padded = np.array([[0, 0, 3, 4, 5]])
    model.build((None, 5))
    short = Sequential([embedding, model.layers[1]])
    np.testing.assert_allclose(model.predict(padded, verbose=0),
                               short.predict(np.array([[3, 4, 5]]), verbose=0), rtol=1e-5)
    assert len(model.layers[1].get_weights()) == 6


def test_bidirectional_return_state_and_merge_mode_none():
    layer = L.Bidirectional(L.LSTM(2, return_state=True), merge_mode=None)
    out = layer(np.zeros((1, 3, 4), dtype="float32"))
    assert [t.shape for t in out] == [(1, 2)] * 6
    assert layer.compute_output_shape((None, 3, 4)) == [(None, 2)] * 6


def test_functional_model_with_branches_trains_and_predicts():
    md.manual_seed(0)
    inputs = keras.Input(shape=(6,), dtype="int32")
    x = L.Embedding(20, 8, mask_zero=True)(inputs)
    a = L.Bidirectional(L.LSTM(4))(x)
    b = L.Dense(8)(L.GlobalAveragePooling1D()(x))
    merged = L.Add()([a, b])
    outputs = L.Dense(1, activation="sigmoid")(L.concatenate([merged, a]))
    model = Model(inputs=inputs, outputs=outputs)
    assert model.output_shape == (None, 1) and isinstance(model.layers[0], L.InputLayer)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x_data, y_data = rng.integers(1, 20, (32, 6)), rng.integers(0, 2, 32)
    history = model.fit(x_data, y_data, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x_data, verbose=0).shape == (32, 1)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Bidirectional" in line for line in lines)


def test_functional_model_passes_the_embedding_mask_to_the_lstm():
    md.manual_seed(0)
    inputs = keras.Input(shape=(5,))
    embedding = L.Embedding(10, 4, mask_zero=True)
    lstm = L.LSTM(3)
    model = Model(inputs, lstm(embedding(inputs)))
    np.testing.assert_allclose(model.predict(np.array([[0, 0, 1, 2, 3]]), verbose=0),
                               lstm(embedding(np.array([[1, 2, 3]]))).numpy(), rtol=1e-5)


def test_merge_layers_check_their_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        L.Add()([keras.Input(shape=(3,))])
    with pytest.raises(ValueError, match="same shape"):
        L.Add()([keras.Input(shape=(3,)), keras.Input(shape=(4,))])
    with pytest.raises(TypeError, match="Concatenate"):
        L.Dense(2)([keras.Input(shape=(3,)), keras.Input(shape=(3,))])


# ----------------------------------------------------------------------------- Keras 2 guide
def test_keras2_guide_vgg_like_convnet_runs_with_only_imports_changed():
    md.manual_seed(0)
    x_train = np.random.random((20, 16, 16, 3))
    y_train = keras.utils.to_categorical(np.random.randint(10, size=(20, 1)), num_classes=10)
    x_test = np.random.random((4, 16, 16, 3))
    y_test = keras.utils.to_categorical(np.random.randint(10, size=(4, 1)), num_classes=10)

    model = Sequential()
    model.add(L.Conv2D(8, (3, 3), activation="relu", input_shape=(16, 16, 3)))
    model.add(L.Conv2D(8, (3, 3), activation="relu"))
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Dropout(0.25))
    model.add(L.Conv2D(16, (3, 3), activation="relu"))
    model.add(L.MaxPooling2D(pool_size=(2, 2)))
    model.add(L.Dropout(0.25))
    model.add(L.Flatten())
    model.add(L.Dense(32, activation="relu"))
    model.add(L.Dropout(0.5))
    model.add(L.Dense(10, activation="softmax"))
    with pytest.warns(UserWarning):
        sgd = SGD(lr=0.01, decay=1e-6, momentum=0.9, nesterov=True)
    model.compile(loss="categorical_crossentropy", optimizer=sgd)
    model.fit(x_train, y_train, batch_size=8, epochs=1, verbose=0)
    score = model.evaluate(x_test, y_test, batch_size=8, verbose=0)
    assert np.isfinite(score)


def test_keras2_guide_sequence_classification_with_1d_convolutions_runs():
    md.manual_seed(0)
    seq_length = 24
    x_train = np.random.random((16, seq_length, 10))
    y_train = np.random.randint(2, size=(16, 1))
    model = Sequential()
    model.add(L.Conv1D(8, 3, activation="relu", input_shape=(seq_length, 10)))
    model.add(L.Conv1D(8, 3, activation="relu"))
    model.add(L.MaxPooling1D(3))
    model.add(L.Conv1D(16, 3, activation="relu"))
    model.add(L.Conv1D(16, 3, activation="relu"))
    model.add(L.GlobalAveragePooling1D())
    model.add(L.Dropout(0.5))
    model.add(L.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=8, epochs=1, verbose=0)
    loss, accuracy = model.evaluate(x_train, y_train, batch_size=8, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1


def test_keras2_guide_stacked_lstm_for_sequence_classification_runs():
    md.manual_seed(0)
    data_dim, timesteps, num_classes = 8, 4, 5
    model = Sequential()
    model.add(L.LSTM(16, return_sequences=True, input_shape=(timesteps, data_dim)))
    model.add(L.LSTM(16, return_sequences=True))
    model.add(L.LSTM(16))
    model.add(L.Dense(num_classes, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    x_train = np.random.random((20, timesteps, data_dim))
    y_train = np.random.random((20, num_classes))
    x_val = np.random.random((5, timesteps, data_dim))
    y_val = np.random.random((5, num_classes))
    model.fit(x_train, y_train, batch_size=8, epochs=1, validation_data=(x_val, y_val),
              verbose=0)


def test_keras2_guide_mlp_binary_classification_runs():
    md.manual_seed(0)
    x_train = np.random.random((50, 20))
    y_train = np.random.randint(2, size=(50, 1))
    model = Sequential()
    model.add(L.Dense(64, input_dim=20, activation="relu"))
    model.add(L.Dropout(0.5))
    model.add(L.Dense(64, activation="relu"))
    model.add(L.Dropout(0.5))
    model.add(L.Dense(1, activation="sigmoid"))
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=2, batch_size=16, verbose=0)
    assert len(model.evaluate(x_train, y_train, batch_size=16, verbose=0)) == 2
