"""md.save / md.load: pickle-free .npz, bit-exact round trips, atomic writes, clear errors."""
import os

import numpy as np
import pytest

import minidl as md
from minidl import nn


def test_round_trip_of_a_nested_structure_is_bit_exact(tmp_path):
    obj = {"weights": {"W": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)},
           "epoch": 7, "lr": 1e-3, "name": "lstm", "flags": [True, None, (1, 2)],
           "ids": md.tensor([1, 2, 3])}
    path = str(tmp_path / "obj.npz")
    md.save(obj, path)
    back = md.load(path)
    np.testing.assert_array_equal(back["weights"]["W"], obj["weights"]["W"])
    assert back["weights"]["W"].dtype == np.float32
    assert (back["epoch"], back["lr"], back["name"]) == (7, 1e-3, "lstm")
    assert back["flags"] == [True, None, (1, 2)]
    np.testing.assert_array_equal(back["ids"], [1, 2, 3])


def test_model_weights_round_trip_exactly(tmp_path):
    model = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 3))
    md.save(model.state_dict(), str(tmp_path / "m.npz"))
    other = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 3))
    other.load_state_dict(md.load(str(tmp_path / "m.npz")))
    for (name, a), (_, b) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_load_onto_another_device(tmp_path):
    md.save({"W": np.ones(3)}, str(tmp_path / "w.npz"))
    assert md.tensor(md.load(str(tmp_path / "w.npz"), device="strict")["W"]).device == "strict"


def test_a_crash_during_save_leaves_the_old_file_loadable(tmp_path, monkeypatch):
    path = str(tmp_path / "ck.npz")
    md.save({"version": 1, "W": np.zeros(4)}, path)

    def crash(*args, **kwargs):
        args[0].write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        md.save({"version": 2, "W": np.ones(4)}, path)
    monkeypatch.undo()
    assert md.load(path)["version"] == 1
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]  # no temporary file left behind


def test_a_truncated_file_is_a_checkpoint_error(tmp_path):
    path = str(tmp_path / "ck.npz")
    md.save({"W": np.ones((100, 100))}, path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(md.CheckpointError, match="truncated or not a minidl checkpoint"):
        md.load(path)


def test_a_foreign_npz_is_a_checkpoint_error(tmp_path):
    path = str(tmp_path / "foreign.npz")
    np.savez(path, x=np.ones(2))
    with pytest.raises(md.CheckpointError, match="not a minidl checkpoint"):
        md.load(path)


def test_a_pickled_file_is_never_loaded(tmp_path):
    path = str(tmp_path / "evil.npz")
    np.savez(path, __structure__=np.array('{"format": "minidl-checkpoint-v1", "root": '
                                          '{"__array__": "a0"}}'),
             a0=np.array([{"pickled": object()}], dtype=object))
    with pytest.raises(md.CheckpointError, match="pickle"):
        md.load(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        md.load(str(tmp_path / "nope.npz"))


def test_objects_that_need_pickle_are_refused():
    with pytest.raises(TypeError, match="cannot store a object"):
        md.save({"x": object()}, "/tmp/never-written.npz")
