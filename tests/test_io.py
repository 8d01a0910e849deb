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


# ----------------------------------------------------------------------------- hostile files
def _forged_npz(path, members, compression=None):
    """An .npz whose members are given as raw bytes (header and data), as a forger writes it."""
    import zipfile
    with zipfile.ZipFile(path, "w", compression or zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name + ".npy", data)


def _npy_bytes(array=None, header=None, data=b""):
    import io
    buffer = io.BytesIO()
    if array is not None:
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


_STRUCTURE = '{"format": "minidl-checkpoint-v1", "root": {"__array__": "a0"}}'


def test_a_compressed_member_is_refused_and_named(tmp_path):
    path = str(tmp_path / "bomb.npz")
    np.savez_compressed(path, __structure__=np.array(_STRUCTURE), a0=np.zeros(1000))
    with pytest.raises(md.CheckpointError, match="member '__structure__'.* is compressed"):
        md.load(path)


def test_a_member_declaring_more_data_than_it_stores_is_refused(tmp_path):
    path = str(tmp_path / "forged.npz")
    header = {"descr": "<f8", "fortran_order": False, "shape": (2 ** 40,)}  # 8 TiB
    _forged_npz(path, {"__structure__": _npy_bytes(np.array(_STRUCTURE)),
                       "a0": _npy_bytes(header=header, data=b"\0" * 8)})
    with pytest.raises(md.CheckpointError, match=r"member 'a0'.*declares shape \(1099511627776,\)"
                                                 r".* but stores 8 bytes"):
        md.load(path)


def test_a_member_declaring_less_data_than_it_stores_is_refused(tmp_path):
    path = str(tmp_path / "forged.npz")
    header = {"descr": "<f8", "fortran_order": False, "shape": (1,)}
    _forged_npz(path, {"__structure__": _npy_bytes(np.array(_STRUCTURE)),
                       "a0": _npy_bytes(header=header, data=b"\0" * 800)})
    with pytest.raises(md.CheckpointError, match="member 'a0'"):
        md.load(path)


def test_fortran_ordered_and_empty_arrays_still_round_trip(tmp_path):
    path = str(tmp_path / "ok.npz")
    obj = {"f": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "e": np.zeros((0, 5)),
           "s": np.array(["ab", "c"]), "n": np.float32(2.5)}
    md.save(obj, path)
    back = md.load(path)
    np.testing.assert_array_equal(back["f"], obj["f"])
    assert back["e"].shape == (0, 5) and back["s"].tolist() == ["ab", "c"] and back["n"] == 2.5


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_new_file_gets_the_mode_of_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        md.save({"W": np.ones(2)}, str(tmp_path / "new.npz"))
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "new.npz").st_mode & 0o777) == oct(0o644)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.npz"
    md.save({"W": np.ones(2)}, str(path))
    os.chmod(path, 0o664)
    md.save({"W": np.zeros(2)}, str(path))
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o664)
    assert md.load(str(path))["W"].tolist() == [0.0, 0.0]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_the_next_save_removes_temporaries_of_a_save_killed_by_sigkill(tmp_path):
    import subprocess
    import sys
    path = str(tmp_path / "ck.npz")
    md.save({"version": 1}, path)
    killed = ("import os, signal, numpy as np, minidl as md\n"
              "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
              f"md.save({{'version': 2, 'W': np.ones(1000)}}, {path!r})\n")
    for _ in range(3):  # each killed save also cleans up after the one killed before it
        result = subprocess.run([sys.executable, "-c", killed], capture_output=True)
        assert result.returncode == -9, result.stderr
        assert len(os.listdir(tmp_path)) == 2       # the file and one orphaned temporary
        assert md.load(path)["version"] == 1         # the old file is intact
    md.save({"version": 3}, path)
    assert os.listdir(tmp_path) == ["ck.npz"]
    assert md.load(path)["version"] == 3


def test_a_temporary_of_a_save_still_running_is_left_alone(tmp_path):
    running = tmp_path / f".ck.npz.tmp-{os.getpid()}-0123abcd"
    running.write_bytes(b"being written")
    md.save({"version": 1}, str(tmp_path / "ck.npz"))
    assert running.exists()


def test_a_plain_npy_file_is_named_as_such(tmp_path):
    path = str(tmp_path / "weights.npy")
    np.save(path, np.ones(3))
    with pytest.raises(md.CheckpointError, match=r"single NumPy array \(\.npy\).*numpy\.load"):
        md.load(path)


def test_a_deeply_nested_structure_is_a_checkpoint_error(tmp_path):
    path = str(tmp_path / "deep.npz")
    deep = '{"__list__": [' * 100_000 + ']}' * 100_000
    np.savez(path, __structure__=np.array('{"format": "minidl-checkpoint-v1", "root": '
                                          + deep + '}'))
    with pytest.raises(md.CheckpointError, match="nested too deeply"):
        md.load(path)


def test_a_dangling_array_key_is_a_checkpoint_error_naming_it(tmp_path):
    path = str(tmp_path / "dangling.npz")
    np.savez(path, __structure__=np.array('{"format": "minidl-checkpoint-v1", "root": '
                                          '{"__dict__": {"W": {"__array__": "a0"}}}}'))
    with pytest.raises(md.CheckpointError, match=r"root\['W'\] refers to the array 'a0'"):
        md.load(path)


def test_a_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(md.CheckpointError, match="is a folder"):
        md.load(str(tmp_path))


@pytest.mark.parametrize("value, expected", [
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "got list"),
    (3.0, "got float"),
    (np.array([["a", "b"], ["c", "d"], ["e", "f"]]), "dtype <U1"),
])
def test_load_state_dict_with_a_value_that_is_not_an_array_names_the_key(value, expected):
    layer = nn.Linear(3, 2)
    state = layer.state_dict()
    state["W"] = value
    with pytest.raises(nn.module.StateDictError, match=rf"'W'.*{expected}"):
        layer.load_state_dict(state)


def test_load_state_dict_with_something_that_is_not_a_dict_is_a_state_dict_error():
    with pytest.raises(nn.module.StateDictError, match="expects a dict.*got list"):
        nn.Linear(3, 2).load_state_dict([np.ones((3, 2)), np.zeros(2)])
