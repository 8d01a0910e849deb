"""minidl.training: the progress bar, History, EarlyStopping, ModelCheckpoint and the fit loop."""
import io
import os

import numpy as np
import pytest

import minidl as md
from minidl import functions as F
from minidl import nn, optim
from minidl.training import (Callback, EarlyStopping, History, ModelCheckpoint, Progbar,
                             evaluate, fit, predict, split_validation)
from minidl.training.progress import format_time_per_unit, format_value


class FakeClock:
    """Returns the given times one after another (the last one forever)."""

    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def small_problem(n=8):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    return x, y


def small_model():
    md.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())


def binary_accuracy(y_true, y_pred):
    return ((y_pred > 0.5) == (y_true > 0.5)).mean(axis=-1)


# ----------------------------------------------------------------------------- progress bar
def test_progress_bar_final_line_has_keras_format():
    out = io.StringIO()
    bar = Progbar(1, stream=out, clock=FakeClock(0.0, 0.005))
    bar.update(1, {"loss": 0.69314, "accuracy": 0.5})
    assert out.getvalue() == ("1/1 [==============================] - 0s 5ms/step - loss: 0.6931"
                              " - accuracy: 0.5000\n")


def test_progress_bar_on_a_terminal_shows_eta_and_an_arrow_while_running():
    out = Terminal()
    bar = Progbar(3, stream=out, clock=FakeClock(0.0, 1.0))
    bar.update(1, [("loss", 0.5)])
    assert out.getvalue() == "\r1/3 [=========>....................] - ETA: 2s - loss: 0.5000"


def test_progress_bar_not_on_a_terminal_prints_only_the_final_line():
    out = io.StringIO()
    bar = Progbar(3, stream=out, clock=FakeClock(0.0, 0.1, 0.2, 0.3))
    for step in (1, 2, 3):
        bar.update(step, {"loss": 1.0})
    assert out.getvalue().count("\n") == 1 and "ETA" not in out.getvalue()
    assert out.getvalue().startswith("3/3 [")


def test_progress_bar_verbose_2_prints_one_short_line():
    out = io.StringIO()
    bar = Progbar(4, verbose=2, stream=out, clock=FakeClock(0.0, 0.002, 0.004, 0.006, 0.008))
    for step in (1, 2, 3, 4):
        bar.update(step, {"loss": 0.25})
    assert out.getvalue() == "4/4 - 0s - 2ms/step - loss: 0.2500\n"


@pytest.mark.parametrize("seconds, text", [(2.0, "2s/step"), (0.0, "0s/step"),
                                           (0.005, "5ms/step"), (0.00073, "730us/step")])
def test_time_per_step_uses_keras_units(seconds, text):
    assert format_time_per_unit(seconds) == text


def test_small_logged_values_use_scientific_notation():
    assert format_value(0.5) == "0.5000"
    assert format_value(0.0002) == "2.0000e-04"
    assert format_value(0.0) == "0.0000e+00"


def test_fit_prints_epoch_headers_and_one_bar_line_per_epoch():
    x, y = small_problem()
    model = small_model()
    out = io.StringIO()
    fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y, epochs=2,
        batch_size=4, stream=out, metrics={"accuracy": binary_accuracy})
    lines = out.getvalue().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert lines[1].startswith("2/2 [==============================] - ")
    assert "/step - loss: " in lines[1] and " - accuracy: " in lines[1]


# ----------------------------------------------------------------------------- History
def test_history_records_loss_metrics_and_validation_per_epoch():
    x, y = small_problem()
    model = small_model()
    history = fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y,
                  epochs=3, batch_size=4, verbose=0, validation_split=0.25,
                  metrics={"accuracy": binary_accuracy})
    assert isinstance(history, History)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(values) == 3 for values in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert model.history is history


def test_logged_loss_is_the_sample_weighted_mean_of_the_batches():
    x, y = small_problem(5)
    model = small_model()
    history = fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.0), x, y,
                  batch_size=2, verbose=0, shuffle=False)
    with md.no_grad():
        expected = float(F.binary_cross_entropy(model(md.tensor(x)), md.tensor(y)).item())
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- EarlyStopping
class Numbered(nn.Module):
    """A model whose single weight we can set, to see which epoch's weights come back."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.zeros(1, dtype="float32"))


def run_scripted(callback, losses, monitor="val_loss"):
    """Drive a callback through epochs whose monitored values are ``losses``; the weight
    holds the epoch number. Returns the epochs that ran."""
    model = Numbered()
    model.stop_training = False
    callback.set_model(model)
    callback.on_train_begin()
    ran = []
    for epoch, value in enumerate(losses):
        model.w.data[...] = epoch
        ran.append(epoch)
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            break
    callback.on_train_end()
    return ran, model


def test_early_stopping_stops_when_patience_runs_out():
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    ran, _ = run_scripted(stopper, [1.0, 0.8, 0.9, 0.85, 0.7, 0.6])
    assert ran == [0, 1, 2, 3]
    assert stopper.stopped_epoch == 3


def test_early_stopping_restore_best_weights_puts_back_the_best_epoch():
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    _, model = run_scripted(stopper, [1.0, 0.8, 0.9, 0.85, 0.7])
    assert model.w.data[0] == 1.0 and stopper.best_epoch == 1


def test_early_stopping_without_restore_keeps_the_last_weights():
    ran, model = run_scripted(EarlyStopping(patience=1), [1.0, 0.8, 0.9, 0.95])
    assert ran == [0, 1, 2] and model.w.data[0] == 2.0


def test_early_stopping_ignores_improvements_smaller_than_min_delta():
    stopper = EarlyStopping(monitor="val_loss", patience=1, min_delta=0.1)
    ran, _ = run_scripted(stopper, [1.0, 0.95, 0.92, 0.5])
    assert ran == [0, 1]


def test_early_stopping_maximises_accuracy_in_auto_mode():
    stopper = EarlyStopping(monitor="val_accuracy", patience=1)
    ran, _ = run_scripted(stopper, [0.5, 0.7, 0.6, 0.9], monitor="val_accuracy")
    assert stopper.mode == "max" and ran == [0, 1, 2]


def test_early_stopping_warns_when_the_monitor_is_missing():
    with pytest.warns(UserWarning, match="val_loss"):
        run_scripted(EarlyStopping(), [1.0], monitor="loss")


def test_early_stopping_ends_fit():
    x, y = small_problem()
    model = small_model()
    script = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    seen = []

    def scripted_loss(prediction, target):  # per-epoch value with a gradient of zero
        return (prediction * 0.0).sum() + seen[-1]

    class NextValue(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(next(script))

    history = fit(model, scripted_loss, optim.SGD(model.parameters(), lr=0.1), x, y, epochs=6,
                  batch_size=8, verbose=0,
                  callbacks=[NextValue(), EarlyStopping(monitor="loss", patience=1)])
    assert history.history["loss"] == pytest.approx([1.0, 0.5, 0.6])


# ----------------------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_writes_a_file_per_epoch(tmp_path):
    x, y = small_problem()
    model = small_model()
    path = str(tmp_path / "weights-{epoch:02d}.npz")
    fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y, epochs=2,
        verbose=0, callbacks=[ModelCheckpoint(path, save_weights_only=True)])
    assert sorted(os.listdir(tmp_path)) == ["weights-01.npz", "weights-02.npz"]
    saved = md.load(str(tmp_path / "weights-02.npz"))
    np.testing.assert_array_equal(saved["0.W"], model[0].W.numpy())


def test_model_checkpoint_full_checkpoint_holds_optimizer_and_epoch(tmp_path):
    x, y = small_problem()
    model = small_model()
    optimizer = optim.Adam(model.parameters())
    fit(model, F.binary_cross_entropy, optimizer, x, y, epochs=2, verbose=0,
        callbacks=[ModelCheckpoint(str(tmp_path / "ckpt.npz"))])
    restored, restored_optimizer = small_model(), optim.Adam(small_model().parameters())
    checkpoint = md.load_checkpoint(str(tmp_path / "ckpt.npz"), restored, restored_optimizer)
    assert checkpoint["epoch"] == 2
    np.testing.assert_array_equal(restored[0].W.numpy(), model[0].W.numpy())


def test_model_checkpoint_save_best_only_skips_worse_epochs(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "best.npz"), monitor="val_loss",
                                 save_best_only=True, save_weights_only=True)
    run_scripted(checkpoint, [1.0, 0.5, 0.7])
    assert md.load(str(tmp_path / "best.npz"))["w"][0] == 1.0


def test_checkpoint_from_before_a_failing_save_is_still_loadable(tmp_path, monkeypatch):
    x, y = small_problem()
    model = small_model()
    path = str(tmp_path / "ckpt.npz")
    sgd = optim.SGD(model.parameters(), lr=0.1)
    fit(model, F.binary_cross_entropy, sgd, x, y, verbose=0,
        callbacks=[ModelCheckpoint(path, save_weights_only=True)])
    good = model[0].W.numpy()

    def crash_halfway(file, **arrays):  # a disk that fills up in the middle of the write
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("No space left on device")

    monkeypatch.setattr(md.io.np, "savez", crash_halfway)
    with pytest.raises(OSError, match="No space"):
        fit(model, F.binary_cross_entropy, sgd, x, y, verbose=0,
            callbacks=[ModelCheckpoint(path, save_weights_only=True)])
    monkeypatch.undo()
    np.testing.assert_array_equal(md.load(path)["0.W"], good)
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary file left behind


# ----------------------------------------------------------------------------- data handling
@pytest.mark.parametrize("fraction, validation", [(0.2, [8, 9]), (0.25, [7, 8, 9])])
def test_validation_split_takes_the_last_samples(fraction, validation):
    x = np.arange(10).reshape(10, 1)
    (x_train, _), (x_val, _) = split_validation(x, x, fraction)
    assert x_val.ravel().tolist() == validation  # n − floor(n·(1 − fraction)) samples
    assert x_train.ravel().tolist() == list(range(10 - len(validation)))


def test_fit_validates_on_the_last_samples_before_shuffling():
    x, y = small_problem(8)
    model = small_model()
    history = fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.0), x, y,
                  verbose=0, validation_split=0.25)
    expected = evaluate(model, F.binary_cross_entropy, x[6:], y[6:], verbose=0)["loss"]
    assert history.history["val_loss"][0] == pytest.approx(expected)


def test_validation_split_leaving_no_validation_sample_raises():
    with pytest.raises(ValueError, match="not sufficient"):
        split_validation(np.zeros((1, 1)), np.zeros(1), 0.5)


class Recorder(nn.Module):
    """Remembers the first feature of every sample it sees, in order."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.ones((1, 1), dtype="float32"))
        self.seen = []

    def forward(self, x):
        self.seen += x.numpy()[:, 0].tolist()
        return x @ self.w


def order_seen(shuffle, seed=0):
    md.manual_seed(seed)
    model = Recorder()
    x = np.arange(10, dtype="float32").reshape(10, 1)
    fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.0), x, x, batch_size=3,
        verbose=0, shuffle=shuffle)
    return model.seen


def test_shuffle_follows_minidl_seed():
    assert order_seen(True, seed=3) == order_seen(True, seed=3)
    assert order_seen(True, seed=3) != order_seen(True, seed=4)
    assert sorted(order_seen(True)) == list(range(10))


def test_shuffle_false_keeps_the_order():
    assert order_seen(False) == list(range(10))


def test_fit_rejects_x_and_y_of_different_lengths():
    model = small_model()
    with pytest.raises(ValueError, match="same number of samples, got 8 and 7"):
        fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.1),
            np.zeros((8, 2)), np.zeros((7, 1)), verbose=0)


def test_fit_rejects_nan_and_says_where():
    x, y = small_problem()
    x[3, 1] = np.nan
    model = small_model()
    with pytest.raises(ValueError, match=r"x contains NaN at index \(3, 1\)"):
        fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y,
            verbose=0)


def test_predict_returns_a_numpy_array_over_all_batches():
    x, _ = small_problem(10)
    out = predict(small_model(), x, batch_size=4, verbose=0)
    assert isinstance(out, np.ndarray) and out.shape == (10, 1)


def test_fit_leaves_the_model_in_its_previous_mode():
    x, y = small_problem()
    model = small_model().eval()
    fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y, verbose=0)
    assert model.training is False


# ----------------------------------------------------------------------------- faults
def test_terminate_on_nan_stops_after_the_first_nan_batch(capsys):
    from minidl.keras.callbacks import TerminateOnNaN as KerasTerminateOnNaN
    from minidl.training import TerminateOnNaN
    assert KerasTerminateOnNaN is TerminateOnNaN
    callback = TerminateOnNaN()
    callback.set_model(small_model())
    callback.model.stop_training = False
    callback.on_train_batch_end(0, {"loss": 0.5})
    assert not callback.model.stop_training
    callback.on_train_batch_end(3, {"loss": float("nan")})
    assert callback.model.stop_training
    assert "Batch 3: Invalid loss, terminating training" in capsys.readouterr().out


def test_a_nan_loss_stops_fit_once_naming_epoch_and_batch_and_keeps_the_weights():
    from minidl.training import NonFiniteLossWarning
    x, y = small_problem(16)
    model = small_model()
    batches = []

    class Spy(Callback):
        def on_train_batch_end(self, batch, logs=None):
            batches.append(batch)

    def loss_fn(prediction, target):  # finite for 5 batches, then NaN
        loss = F.binary_cross_entropy(prediction, target)
        return loss * float("nan") if len(batches) == 5 else loss

    optimizer = optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(NonFiniteLossWarning, match=r"loss is nan at epoch 2/10, batch 2/4") as w:
        before = {}

        class Keep(Callback):
            def on_train_batch_begin(self, batch, logs=None):
                before.update(model.state_dict())

        history = fit(model, loss_fn, optimizer, x, y, batch_size=4, epochs=10, verbose=0,
                      shuffle=False, callbacks=[Spy(), Keep()])
    assert len([r for r in w if r.category is NonFiniteLossWarning]) == 1
    assert batches == [0, 1, 2, 3, 0, 1] and len(history.history["loss"]) == 2
    for name, value in model.state_dict().items():   # the NaN batch made no update
        np.testing.assert_array_equal(value, before[name])
        assert np.isfinite(value).all()


def test_a_huge_learning_rate_no_longer_trains_on_nan_for_every_epoch():
    x, y = small_problem(16)
    md.manual_seed(0)
    model = nn.Linear(2, 1)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="training stopped"):
        history = fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=1e10), x, y,
                      batch_size=4, epochs=5, verbose=0)
    assert len(history.history["loss"]) < 5
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())


def _classifier():
    md.manual_seed(0)
    return nn.Linear(2, 3)


@pytest.mark.parametrize("dtype", ["int64", "float64"])
def test_an_out_of_range_label_is_named_by_its_index_in_y_with_its_dtype(dtype):
    x = np.random.default_rng(0).normal(size=(40, 2)).astype("float32")
    y = np.zeros(40, dtype=dtype)
    y[27] = 7
    model = _classifier()
    with pytest.raises(IndexError, match=rf"class target 7 at y\[27\] \(y has dtype {dtype}\) "
                                         rf"is out of range: expected ids in \[0, 2\] for 3 "
                                         rf"classes"):
        fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y,
            batch_size=8, verbose=0)


def test_a_fractional_label_is_named_by_its_index_in_y():
    x = np.zeros((10, 2), dtype="float32")
    y = np.zeros(10)
    y[6] = 1.5
    model = _classifier()
    with pytest.raises(TypeError, match=r"got dtype float32 holding 1.5 at y\[6\] \(y has dtype "
                                        r"float64\)"):
        fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y, verbose=0)


def test_a_bad_label_in_the_validation_split_is_named_by_its_index_in_y():
    x = np.zeros((10, 2), dtype="float32")
    y = np.zeros(10, dtype="int64")
    y[9] = -1
    model = _classifier()
    with pytest.raises(IndexError, match=r"class target -1 at y\[9\]"):
        fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y,
            validation_split=0.2, verbose=0)


def test_float64_token_ids_beyond_float32_precision_reach_the_embedding_exactly():
    class LastRow(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(16_777_218, 1)
            self.embedding.W.data[:] = 0
            self.embedding.W.data[16_777_217] = 1  # only the exact id sees a 1

        def forward(self, ids):
            return self.embedding(ids).reshape(len(ids), 1)

    out = predict(LastRow(), np.array([[16_777_217.0]]), verbose=0)
    assert out.tolist() == [[1.0]]


def test_float64_features_are_still_cast_to_the_model_dtype():
    x, y = small_problem()
    history = fit(small_model(), F.binary_cross_entropy,
                  optim.SGD(small_model().parameters(), lr=0.1), x.astype("float64"),
                  y.astype("float64"), verbose=0)
    assert np.isfinite(history.history["loss"][0])


class Interrupt(Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_during_fit_ends_the_progress_bar_line_and_keeps_the_model_usable():
    x, y = small_problem(16)
    model = small_model().eval()
    terminal = Terminal()
    with pytest.raises(KeyboardInterrupt):
        fit(model, F.binary_cross_entropy, optim.SGD(model.parameters(), lr=0.1), x, y,
            batch_size=2, verbose=1, stream=terminal, callbacks=[Interrupt()])
    assert terminal.getvalue().startswith("\r1/8 [") and terminal.getvalue().endswith("\n")
    assert model.training is False
    assert predict(model, x, verbose=0).shape == (16, 1)


def test_an_error_during_predict_ends_the_progress_bar_line():
    class Broken(nn.Module):
        def forward(self, x):
            if x.shape[0] < 4:
                raise RuntimeError("broken")
            return x

    terminal = Terminal()
    with pytest.raises(RuntimeError):
        predict(Broken(), np.zeros((6, 1), dtype="float32"), batch_size=4, stream=terminal)
    assert terminal.getvalue().endswith("\n")


def test_progbar_end_line_does_nothing_after_a_finished_line():
    terminal = Terminal()
    bar = Progbar(2, stream=terminal, clock=FakeClock(0.0, 1.0))
    bar.update(2)
    bar.end_line()
    assert terminal.getvalue().count("\n") == 1
