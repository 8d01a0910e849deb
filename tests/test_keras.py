"""minidl.keras: Keras' API on minidl — layers, Sequential, optimizers, losses, metrics."""
import math

import numpy as np
import pytest

import minidl as md
from minidl.keras import layers as L
from minidl.keras import losses, metrics, optimizers
from minidl.keras.callbacks import EarlyStopping, History, ModelCheckpoint
from minidl.keras.models import Sequential
from minidl.keras.utils import to_categorical
from minidl.nn import StateDictError


def text_model(loss="binary_crossentropy", units=1, activation="sigmoid", metrics=("accuracy",),
               input_dim=10, mask_zero=False):
    md.manual_seed(0)
    model = Sequential()
    model.add(L.Embedding(input_dim, 4, input_length=5, mask_zero=mask_zero))
    model.add(L.LSTM(3))
    model.add(L.Dense(units, activation=activation))
    model.compile(optimizer="adam", loss=loss, metrics=list(metrics))
    return model


def token_data(n=6):
    x = np.random.default_rng(0).integers(1, 10, size=(n, 5))
    y = np.array([0, 1] * (n // 2))
    return x, y


# ----------------------------------------------------------------------------- 'accuracy'
@pytest.mark.parametrize("y_true, y_pred, expected", [
    ((8,), (8, 1), metrics.binary_accuracy),
    ((8, 1), (8, 1), metrics.binary_accuracy),
    ((8,), (8, 3), metrics.sparse_categorical_accuracy),
    ((8, 1), (8, 3), metrics.sparse_categorical_accuracy),
    ((8, 3), (8, 3), metrics.categorical_accuracy),
    ((8, 5), (8, 5, 3), metrics.sparse_categorical_accuracy),
])
def test_accuracy_resolves_by_keras_rules(y_true, y_pred, expected):
    assert metrics.accuracy_for(y_true, y_pred) is expected


def test_binary_accuracy_threshold_is_strict():
    y_pred = np.array([[0.5], [0.51], [0.2]])
    assert metrics.binary_accuracy(np.array([1, 1, 0]), y_pred).tolist() == [0.0, 1.0, 1.0]


def test_accuracy_is_logged_under_the_name_given():
    x, y = token_data()
    model = text_model(metrics=["acc"])
    history = model.fit(x, y, epochs=1, verbose=0)
    assert list(history.history) == ["loss", "acc"]


def test_logged_accuracy_is_binary_accuracy_for_a_sigmoid_output():
    x, y = token_data()
    model = text_model()
    loss, accuracy = model.evaluate(x, y, verbose=0)
    expected = metrics.binary_accuracy(y, model.predict(x, verbose=0)).mean()
    assert accuracy == pytest.approx(expected)


def test_binary_accuracy_is_the_frameworks_per_sample_accuracy():
    import minidl.metrics
    y_true, y_pred = np.array([1, 0, 1]), np.array([[0.9], [0.7], [0.2]], dtype="float32")
    np.testing.assert_array_equal(metrics.binary_accuracy(y_true, y_pred),
                                  minidl.metrics.binary_accuracy(y_true[:, None], y_pred))


# ----------------------------------------------------------------------------- optimizers
def test_adam_has_keras_defaults():
    adam = optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999,
                                                                              1e-7)
    assert isinstance(optimizers.get("adam"), optimizers.Adam)


def keras_adam_steps(theta, gradient, steps, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    """Keras' Adam update written out (keras/src/optimizers/adam.py)."""
    m = v = 0.0
    for t in range(1, steps + 1):
        m += (gradient - m) * (1 - b1)
        v += (gradient * gradient - v) * (1 - b2)
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        theta -= alpha * m / (math.sqrt(v) + eps)
    return theta


def test_adam_steps_match_keras_update_with_epsilon_outside_the_correction():
    # A tiny gradient makes ε matter: Keras and PyTorch placements differ by a factor ~4.
    p = md.nn.Parameter(np.array([1.0]))
    adam = optimizers.Adam()
    adam.build([p])
    for _ in range(2):
        p.grad = md.tensor(np.array([1e-6]), device=p.device)
        adam.step()
    expected = keras_adam_steps(1.0, 1e-6, steps=2)
    assert p.numpy()[0] == pytest.approx(expected, rel=0, abs=1e-12)
    pytorch_step = 0.001 * 1e-6 / (1e-6 + 1e-7)  # lr·m̂/(√v̂ + ε) at step 1
    assert abs((1.0 - expected) - 2 * pytorch_step) > 1e-4


def test_sgd_and_rmsprop_have_keras_defaults():
    sgd, rmsprop = optimizers.SGD(), optimizers.RMSprop()
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    assert (rmsprop.learning_rate, rmsprop.rho, rmsprop.epsilon) == (0.001, 0.9, 1e-7)


def test_optimizer_state_survives_a_second_fit():
    x, y = token_data()
    model = text_model()
    model.fit(x, y, epochs=1, batch_size=6, verbose=0)
    core = model.optimizer.core
    model.fit(x, y, epochs=1, batch_size=6, verbose=0)
    assert model.optimizer.core is core and model.optimizer.iterations == 2


# ----------------------------------------------------------------------------- Sequential
def test_dense_builds_lazily_from_the_first_input():
    model = Sequential([L.Dense(4, activation="relu"), L.Dense(1)])
    assert not model.built and model.parameters() == []
    out = model.predict(np.zeros((3, 7)), verbose=0)
    assert model.built and model.layers[0].linear.W.shape == (7, 4)
    assert out.shape == (3, 1)


def test_integer_inputs_to_dense_are_cast_to_float32():
    out = Sequential([L.Dense(2)]).predict(np.array([[1, 2, 3]]), verbose=0)
    assert out.dtype == np.float32


def test_input_length_builds_the_model_when_the_layer_is_added():
    model = Sequential()
    model.add(L.Embedding(10, 4, input_length=5))
    model.add(L.LSTM(3))
    assert model.built and model.output_shape == (None, 3)


def test_summary_lists_layers_output_shapes_and_parameter_counts():
    model = text_model()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == f'Model: "{model.name}"'
    assert "(Embedding)" in text and "(None, 5, 4)" in text and " 40 " in text
    assert "(LSTM)" in text and "(None, 3)" in text and " 96 " in text  # 4·3·(4+3+1)
    assert "(Dense)" in text and "(None, 1)" in text
    assert "Total params: 140 (560.00 Byte)" in text


def test_summary_of_an_unbuilt_model_marks_layers_unbuilt():
    lines = []
    Sequential([L.Dense(2)]).summary(print_fn=lines.append)
    assert any("?" in line and "0 (unbuilt)" in line for line in lines)


def test_layers_get_keras_style_unique_names():
    first, second = L.Dense(1), L.Dense(1)
    assert first.name.startswith("dense") and second.name != first.name
    assert L.GlobalAveragePooling1D().name.startswith("global_average_pooling1d")


def test_fit_returns_history_with_per_epoch_values():
    x, y = token_data()
    model = text_model()
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0, validation_split=0.34)
    assert isinstance(history, History) and model.history is history
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 2


def test_evaluate_returns_the_loss_alone_without_metrics():
    x, y = token_data()
    assert isinstance(text_model(metrics=()).evaluate(x, y, verbose=0), float)


def test_evaluate_returns_loss_and_metrics_as_a_list_or_dict():
    x, y = token_data()
    model = text_model()
    values = model.evaluate(x, y, verbose=0)
    assert isinstance(values, list) and len(values) == 2
    assert model.evaluate(x, y, verbose=0, return_dict=True) == dict(zip(["loss", "accuracy"],
                                                                        values))


def test_predict_returns_numpy_of_shape_samples_by_units():
    x, _ = token_data()
    out = text_model(loss="sparse_categorical_crossentropy", units=3,
                     activation="softmax").predict(x, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (6, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_fit_reduces_the_loss():
    x, y = token_data()
    model = text_model()
    history = model.fit(x, y, epochs=8, batch_size=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_fit_prints_a_keras_progress_bar(capsys):
    x, y = token_data()
    text_model().fit(x, y, epochs=2, batch_size=4, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2"
    assert lines[1].startswith("2/2 [==============================] - ")
    assert " - loss: " in lines[1] and " - accuracy: " in lines[1]


def test_fit_with_early_stopping_and_checkpoint(tmp_path):
    x, y = token_data()
    model = text_model()
    path = str(tmp_path / "best.weights.h5")
    model.fit(x, y, epochs=3, verbose=0, validation_data=(x, y),
              callbacks=[EarlyStopping(patience=5, restore_best_weights=True),
                         ModelCheckpoint(path, save_best_only=True, save_weights_only=True)])
    restored = text_model()
    restored.load_weights(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


def test_fit_before_compile_says_to_compile():
    with pytest.raises(RuntimeError, match="compile"):
        Sequential([L.Dense(1)]).fit(np.zeros((2, 2)), np.zeros(2))


# ----------------------------------------------------------------------------- bad input
def test_fit_rejects_x_and_y_of_different_lengths():
    x, y = token_data()
    with pytest.raises(ValueError, match="same number of samples, got 6 and 4"):
        text_model().fit(x, y[:4], verbose=0)


def test_fit_rejects_labels_outside_zero_one_for_binary_crossentropy():
    x, y = token_data()
    with pytest.raises(ValueError, match=r"binary_crossentropy needs targets in \[0, 1\].* is 2"):
        text_model().fit(x, y + 1, verbose=0)


def test_fit_rejects_nan_inputs():
    model = Sequential([L.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    x = np.ones((4, 3))
    x[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN at index \(2, 0\)"):
        model.fit(x, np.ones(4), verbose=0)


def test_fit_rejects_token_ids_beyond_input_dim():
    x, y = token_data()
    x[2, 3] = 12
    with pytest.raises(IndexError, match=r"token id 12 at x\[2, 3\].*input_dim=10"):
        text_model().fit(x, y, verbose=0)


def test_predict_rejects_negative_token_ids():
    x, _ = token_data()
    x[0, 0] = -1
    with pytest.raises(IndexError, match="token id -1"):
        text_model().predict(x, verbose=0)


def test_predict_rejects_input_of_the_wrong_rank():
    x, _ = token_data()
    with pytest.raises(ValueError, match=r"expected shape=\(None, 5\), found shape=\(None, 5, 1\)"):
        text_model().predict(x[:, :, None], verbose=0)


def test_recurrent_layer_given_2d_input_names_the_expected_rank():
    model = Sequential([L.LSTM(3)])
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2.*Embedding"):
        model.predict(np.zeros((2, 5)), verbose=0)


def test_fit_rejects_ragged_sequences_and_suggests_padding():
    with pytest.raises(ValueError, match="pad_sequences"):
        text_model().fit([[1, 2, 3], [4]], [0, 1], verbose=0)


def test_fit_rejects_sparse_labels_beyond_the_classes():
    x, y = token_data()
    model = text_model(loss="sparse_categorical_crossentropy", units=3, activation="softmax")
    with pytest.raises(ValueError, match="label 3 .* 3 units"):
        model.fit(x, y * 3, verbose=0)


def test_categorical_crossentropy_with_integer_labels_suggests_the_sparse_loss():
    x, y = token_data()
    model = text_model(loss="categorical_crossentropy", units=3, activation="softmax")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        model.fit(x, y, verbose=0)


# ----------------------------------------------------------------------------- weights
def test_save_and_load_weights_round_trip(tmp_path):
    x, y = token_data()
    model = text_model()
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    other = text_model()
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_load_weights_into_another_architecture_names_the_mismatch(tmp_path):
    path = str(tmp_path / "w.npz")
    text_model().save_weights(path)
    with pytest.raises(StateDictError, match="shape"):
        text_model(units=2).load_weights(path)


def test_get_and_set_weights_follow_keras_order():
    model = text_model()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(10, 4), (4, 12), (3, 12), (12,), (3, 1), (1,)]
    model.set_weights([np.zeros(s) for s in shapes])
    assert all(not w.any() for w in model.get_weights())


def test_trainable_false_freezes_a_layer():
    x, y = token_data()
    model = text_model()
    model.layers[0].trainable = False
    before = model.layers[0].get_weights()[0]
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.layers[0].get_weights()[0], before)


# ----------------------------------------------------------------------------- recurrent layers
@pytest.mark.parametrize("layer, shapes", [
    (L.LSTM(3), [(2, 3)]),
    (L.LSTM(3, return_sequences=True), [(2, 5, 3)]),
    (L.LSTM(3, return_state=True), [(2, 3), (2, 3), (2, 3)]),
    (L.LSTM(3, return_sequences=True, return_state=True), [(2, 5, 3), (2, 3), (2, 3)]),
    (L.GRU(3, return_sequences=True, return_state=True), [(2, 5, 3), (2, 3)]),
    (L.SimpleRNN(3, return_state=True), [(2, 3), (2, 3)]),
])
def test_recurrent_output_shapes_follow_return_sequences_and_return_state(layer, shapes):
    out = layer(np.random.default_rng(0).normal(size=(2, 5, 4)))
    out = out if isinstance(out, list) else [out]
    assert [o.shape for o in out] == shapes
    assert layer.compute_output_shape((2, 5, 4)) == (shapes if len(shapes) > 1 else shapes[0])


def test_lstm_last_state_equals_last_output():
    output, h, c = L.LSTM(3, return_state=True)(np.ones((2, 5, 4)))
    np.testing.assert_array_equal(output.numpy(), h.numpy())


@pytest.mark.parametrize("recurrent", [L.LSTM, L.GRU, L.SimpleRNN])
def test_mask_zero_pre_padding_gives_the_unpadded_result(recurrent):
    md.manual_seed(0)
    model = Sequential([L.Embedding(20, 4, mask_zero=True), recurrent(3)])
    padded = model.predict(np.array([[0, 0, 0, 5, 7, 9]]), verbose=0)
    unpadded = model.predict(np.array([[5, 7, 9]]), verbose=0)
    np.testing.assert_allclose(padded, unpadded, rtol=1e-6, atol=1e-7)


def test_without_mask_zero_padding_changes_the_result():
    md.manual_seed(0)
    model = Sequential([L.Embedding(20, 4), L.LSTM(3)])
    padded = model.predict(np.array([[0, 0, 0, 5, 7, 9]]), verbose=0)
    assert not np.allclose(padded, model.predict(np.array([[5, 7, 9]]), verbose=0))


def test_global_average_pooling_averages_unmasked_steps_only():
    md.manual_seed(0)
    model = Sequential([L.Embedding(20, 4, mask_zero=True), L.GlobalAveragePooling1D()])
    padded = model.predict(np.array([[0, 0, 3, 4]]), verbose=0)
    table = model.layers[0].embedding.W.numpy()
    np.testing.assert_allclose(padded[0], table[[3, 4]].mean(axis=0), rtol=1e-6)


def test_global_average_pooling_channels_first_averages_unmasked_steps_only():
    layer = L.GlobalAveragePooling1D(data_format="channels_first")
    x = np.arange(12, dtype="float32").reshape(1, 3, 4)      # (batch, features, steps)
    mask = np.array([[False, True, True, False]])
    np.testing.assert_allclose(layer(x, mask=mask).numpy(), x[:, :, 1:3].mean(axis=2))


def test_dropout_is_active_only_while_training():
    layer = L.Dropout(0.5)
    x = np.ones((4, 100), dtype="float32")
    np.testing.assert_array_equal(layer(x).numpy(), x)
    assert (layer(x, training=True).numpy() == 0).any()


def test_flatten_keeps_the_batch_axis():
    assert L.Flatten()(np.zeros((2, 3, 4))).shape == (2, 12)
    assert L.Flatten().compute_output_shape((None, 3, 4)) == (None, 12)


def test_embedding_accepts_whole_number_float_ids():
    md.manual_seed(0)
    layer = L.Embedding(10, 2)
    np.testing.assert_array_equal(layer(np.array([[1.0, 2.0]])).numpy(),
                                  layer(np.array([[1, 2]])).numpy())


def test_unsupported_keras_options_say_so():
    with pytest.raises(NotImplementedError, match="stateful"):
        L.LSTM(3, stateful=True)
    with pytest.raises(TypeError, match="Unrecognized keyword arguments"):
        L.Dense(3, unit=4)


def test_layer_base_lives_apart_from_the_concrete_layers():
    from minidl.keras.layers.core import Dense
    from minidl.keras.layers.layer import Input, Layer
    from minidl.keras.layers.recurrent import LSTM
    assert L.Layer is Layer and L.Input is Input and L.Dense is Dense and L.LSTM is LSTM
    assert issubclass(L.GRU, Layer) and issubclass(L.Embedding, Layer)


def test_keras_initializers_resolve_through_nn_init_except_keras_normal():
    from minidl.keras import initializers
    for name in ("glorot_uniform", "orthogonal", "zeros", "uniform"):
        assert initializers.get(name) is md.nn.init.get(name)
    md.manual_seed(0)
    assert initializers.get("random_normal")((2000,)).std() == pytest.approx(0.05, rel=0.1)


def test_dense_accepts_an_initializer_function():
    layer = L.Dense(2, kernel_initializer=md.nn.init.ones)
    layer(np.zeros((1, 3), dtype="float32"))
    np.testing.assert_array_equal(layer.linear.W.numpy(), np.ones((3, 2)))


# ----------------------------------------------------------------------------- losses
def test_binary_crossentropy_is_per_sample_and_clipped_as_keras2():
    y_true = np.array([[1.0], [0.0], [1.0]])
    y_pred = np.array([[0.9], [0.2], [0.0]])
    values = losses.binary_crossentropy(y_true, y_pred).numpy()
    expected = [-math.log(0.9 + 1e-7), -math.log(0.8 + 1e-7), -math.log(2e-7)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)


def test_binary_crossentropy_from_logits_matches_probabilities():
    logits = np.array([[-2.0], [0.5]])
    y = np.array([[0.0], [1.0]])
    np.testing.assert_allclose(losses.binary_crossentropy(y, logits, from_logits=True).numpy(),
                               losses.binary_crossentropy(y, 1 / (1 + np.exp(-logits))).numpy(),
                               rtol=1e-5)


def test_sparse_categorical_crossentropy_equals_categorical_on_one_hot():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = np.array([0, 2])
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy(labels, p).numpy(),
        losses.categorical_crossentropy(to_categorical(labels, 3), p).numpy(), rtol=1e-6)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, p).numpy(),
                               [-math.log(0.7), -math.log(0.8)], rtol=1e-5)


def test_loss_objects_reduce_to_the_batch_mean():
    y, p = np.array([[1.0], [0.0]]), np.array([[0.8], [0.4]])
    assert losses.BinaryCrossentropy()(y, p).item() == pytest.approx(
        losses.binary_crossentropy(y, p).numpy().mean(), rel=1e-6)
    assert losses.get("mse") is losses.mean_squared_error


def test_labels_of_shape_n_fit_predictions_of_shape_n_by_1():
    assert losses.binary_crossentropy(np.array([1, 0]), np.array([[0.9], [0.1]])).shape == (2,)


def test_to_categorical_makes_one_hot_rows():
    np.testing.assert_array_equal(to_categorical([0, 2, 1]), np.eye(3)[[0, 2, 1]])


def test_a_float64_tensor_input_is_cast_to_float32_as_keras_does():
    from minidl.keras import layers, models
    model = models.Sequential([layers.Dense(2, input_dim=3)])
    out = model.predict(md.tensor(np.ones((4, 3)), dtype="float64"), verbose=0)
    assert out.shape == (4, 2) and out.dtype == np.float32
