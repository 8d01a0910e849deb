"""Keras callbacks with Keras 2's behaviour, and whole-model saving (issue 14):
ModelCheckpoint, ReduceLROnPlateau, CSVLogger, LearningRateScheduler; model.save / load_model,
to_json / model_from_json, get_config / from_config."""
import csv
import json
import zipfile

import numpy as np
import pytest

import minidl as md
from minidl import keras
from minidl.keras import callbacks as C
from minidl.keras import layers as L
from minidl.keras.models import (Model, Sequential, load_model, model_from_config,
                                 model_from_json)


def token_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 20, (n, 6)), rng.integers(0, 2, n)


def classifier(bidirectional=False, metrics=("accuracy",)):
    md.manual_seed(0)
    recurrent = L.LSTM(3)
    model = Sequential([L.Embedding(20, 4, input_length=6, mask_zero=True),
                        L.Bidirectional(recurrent) if bidirectional else recurrent,
                        L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=list(metrics))
    return model


# ----------------------------------------------------------------------------- callbacks
def test_model_checkpoint_saves_the_best_whole_model_for_load_model(tmp_path):
    x, y = token_data()
    model = classifier()
    path = tmp_path / "best-{epoch:02d}.model"
    checkpoint = C.ModelCheckpoint(str(path), monitor="loss", save_best_only=True)
    model.fit(x, y, epochs=2, callbacks=[checkpoint], verbose=0)
    restored = load_model(tmp_path / "best-02.model")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_checkpoint_save_weights_only_writes_weights_for_load_weights(tmp_path):
    x, y = token_data()
    model = classifier()
    path = tmp_path / "weights.npz"
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[C.ModelCheckpoint(str(path), save_weights_only=True, monitor="loss")])
    other = classifier()
    other.load_weights(str(path))
    np.testing.assert_allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_checkpoint_skips_epochs_that_do_not_improve(tmp_path):
    checkpoint = C.ModelCheckpoint(str(tmp_path / "m"), monitor="val_loss",
                                   save_best_only=True)
    model = classifier()
    model.fit(*token_data(), epochs=1, verbose=0)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_loss": 0.5})
    written = (tmp_path / "m").stat().st_mtime_ns
    checkpoint.on_epoch_end(1, {"val_loss": 0.7})
    assert (tmp_path / "m").stat().st_mtime_ns == written and checkpoint.best == 0.5


def test_reduce_lr_on_plateau_follows_keras2_patience_and_cooldown():
    model = classifier()
    model.fit(*token_data(), epochs=1, verbose=0)
    callback = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                                   min_lr=1e-4)
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"val_loss": value}
        callback.on_epoch_end(epoch, logs)
        rates.append(logs["lr"])
    # lr is logged before the epoch's reduction. Keras 2: the cooldown epoch that ends also
    # counts a wait, so after the first reduction the next comes 2 epochs later, not 3.
    assert rates == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    assert model.optimizer.learning_rate == pytest.approx(1.25e-4)


def test_reduce_lr_on_plateau_never_goes_below_min_lr():
    model = classifier()
    model.fit(*token_data(), epochs=1, verbose=0)
    callback = C.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=0, min_lr=5e-4)
    callback.set_model(model)
    for epoch in range(3):
        callback.on_epoch_end(epoch, {"loss": 1.0})
    assert model.optimizer.learning_rate == pytest.approx(5e-4)


def test_learning_rate_scheduler_sets_the_rate_each_epoch_and_logs_it():
    model = classifier()
    history = model.fit(*token_data(), epochs=3, verbose=0, callbacks=[
        C.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))])
    assert history.history["lr"] == pytest.approx([0.01, 0.005, 0.01 / 3])
    assert model.optimizer.core.param_groups[0]["lr"] == pytest.approx(0.01 / 3)


def test_learning_rate_scheduler_accepts_a_schedule_of_the_epoch_only():
    model = classifier()
    model.fit(*token_data(), epochs=2, verbose=0,
              callbacks=[C.LearningRateScheduler(lambda epoch: 0.1 * (epoch + 1))])
    assert model.optimizer.learning_rate == pytest.approx(0.2)


def test_csv_logger_writes_keras2_rows(tmp_path):
    path = tmp_path / "log.csv"
    model = classifier()
    history = model.fit(*token_data(), epochs=2, validation_split=0.25, verbose=0,
                        callbacks=[C.CSVLogger(str(path))])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1"]
    assert float(rows[2][2]) == history.history["loss"][1]
    model.fit(*token_data(), epochs=1, verbose=0, validation_split=0.25,
              callbacks=[C.CSVLogger(str(path), append=True)])
    with open(path, newline="") as f:
        assert len(list(csv.reader(f))) == 4  # header kept once


def test_terminate_on_nan_is_exported():
    assert C.TerminateOnNaN is md.training.callbacks.TerminateOnNaN


# ----------------------------------------------------------------------------- saving
def test_save_and_load_model_round_trips_a_trained_bidirectional_classifier(tmp_path):
    x, y = token_data()
    model = classifier(bidirectional=True)
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "classifier.model")
    restored = load_model(tmp_path / "classifier.model")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert restored.optimizer.iterations == model.optimizer.iterations
    assert restored.loss == "binary_crossentropy"
    restored.fit(x, y, epochs=1, verbose=0)  # training resumes


def test_the_model_file_is_json_and_npz_without_pickle(tmp_path):
    model = classifier()
    model.fit(*token_data(), epochs=1, verbose=0)
    model.save(tmp_path / "m.model")
    with zipfile.ZipFile(tmp_path / "m.model") as archive:
        assert set(archive.namelist()) == {"config.json", "weights.npz", "optimizer.npz"}
        config = json.loads(archive.read("config.json"))
        assert config["model"]["class_name"] == "Sequential"
        for member in ("weights.npz", "optimizer.npz"):
            with archive.open(member) as f:
                np.load(f, allow_pickle=False)  # raises if anything were pickled


def test_h5_and_keras_names_warn_that_the_format_is_minidls(tmp_path):
    model = classifier()
    model.build((None, 6))
    with pytest.warns(UserWarning, match="minidl writes its own format"):
        model.save(tmp_path / "model.h5")
    assert load_model(tmp_path / "model.h5").count_params() == model.count_params()


def test_load_model_explains_a_keras_hdf5_file(tmp_path):
    path = tmp_path / "keras.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ValueError, match="HDF5.*set_weights"):
        load_model(path)


def test_load_model_explains_a_keras3_file(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", "")
    with pytest.raises(ValueError, match="Keras 3"):
        load_model(path)


def test_custom_loss_needs_custom_objects_to_compile(tmp_path):
    def my_loss(y_true, y_pred):
        return keras.backend.mean(keras.backend.square(y_pred - y_true), axis=-1)
    model = classifier()
    model.compile("adam", my_loss)
    model.fit(*token_data(), epochs=1, verbose=0)
    model.save(tmp_path / "m")
    with pytest.raises(ValueError, match="custom_objects"):
        load_model(tmp_path / "m")
    assert load_model(tmp_path / "m", custom_objects={"my_loss": my_loss}).loss is my_loss
    assert load_model(tmp_path / "m", compile=False).optimizer is None


def test_to_json_and_model_from_json_rebuild_the_architecture():
    model = classifier(bidirectional=True)
    rebuilt = model_from_json(model.to_json())
    assert [type(layer) for layer in rebuilt.layers] == [type(layer) for layer in model.layers]
    assert rebuilt.output_shape == model.output_shape
    assert rebuilt.count_params() == model.count_params()


def test_layer_get_config_and_from_config_round_trip():
    for layer in (L.Dense(4, activation="relu", use_bias=False), L.Embedding(9, 3, mask_zero=True),
                  L.LSTM(5, return_sequences=True, dropout=0.1),
                  L.Bidirectional(L.GRU(2), merge_mode="sum"), L.Conv1D(4, 3, padding="same"),
                  L.Dropout(0.3), L.BatchNormalization(momentum=0.9)):
        config = layer.get_config()
        json.dumps(config)
        again = type(layer).from_config(config)
        assert again.get_config() == config


def test_functional_model_round_trips_through_config_and_file(tmp_path):
    md.manual_seed(0)
    inputs = keras.Input(shape=(6,), dtype="int32")
    embedded = L.Embedding(20, 4)(inputs)
    pooled = L.GlobalMaxPooling1D()(embedded)
    recurrent = L.LSTM(4)(embedded)
    merged = L.Concatenate()([pooled, recurrent])
    outputs = L.Dense(1, activation="sigmoid")(merged)
    model = Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    x, y = token_data()
    model.fit(x, y, epochs=1, verbose=0)
    rebuilt = model_from_config({"class_name": "Functional", "config": model.get_config()})
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    model.save(tmp_path / "functional")
    np.testing.assert_array_equal(load_model(tmp_path / "functional").predict(x, verbose=0),
                                  model.predict(x, verbose=0))
