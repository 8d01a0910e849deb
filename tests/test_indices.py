"""functions.indices: the one range check of token ids and class labels."""
import numpy as np
import pytest

import minidl as md
from minidl import backend
from minidl.functions.indices import checked_indices, first_out_of_range


def test_first_out_of_range_is_none_when_every_index_fits():
    assert first_out_of_range(np.array([[0, 4], [2, 3]]), 5) is None
    assert first_out_of_range(np.zeros((0, 3), dtype=np.int64), 5) is None


def test_first_out_of_range_names_the_negative_index_first():
    assert first_out_of_range(np.array([[7, 1], [-1, 2]]), 5) == (-1, (1, 0))


def test_first_out_of_range_names_the_largest_index_and_its_first_position():
    assert first_out_of_range(np.array([[1, 9], [9, 5]]), 5) == (9, (0, 1))


def test_checked_indices_accepts_lists_booleans_and_tensors():
    np.testing.assert_array_equal(checked_indices([1, 2], np, 3), [1, 2])
    assert checked_indices(np.array([True, False]), np, 2).dtype == np.int64
    np.testing.assert_array_equal(checked_indices(md.tensor([0, 2]), np, 3), [0, 2])


def test_checked_indices_moves_host_ids_to_the_table_device():
    xp = backend.array_module_for(backend.default_device())
    ids = checked_indices(np.array([0, 1]), xp, 2)
    assert backend.get_array_module(ids) is xp


def test_checked_indices_names_what_the_index_is_and_its_range():
    with pytest.raises(IndexError, match=r"class target 3 at position \(1,\) is out of range: "
                                         r"expected ids in \[0, 2\] for 3 classes"):
        checked_indices(np.array([0, 3]), np, 3, what="class target", of="3 classes")


def test_checked_indices_rejects_floats():
    with pytest.raises(TypeError, match="token ids must be integers"):
        checked_indices(np.array([0.5]), np, 3)
