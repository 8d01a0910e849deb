"""DataLoader: batches cover the data once per epoch, shuffling follows the seed, and batches
arrive on the requested device."""
import numpy as np
import pytest

import minidl as md
from minidl.data.loader import ArrayDataset, DataLoader


def test_batches_cover_every_sample_once_with_a_smaller_last_batch():
    x, y = np.arange(10)[:, None], np.arange(10)
    loader = DataLoader((x, y), batch_size=4)
    sizes = [len(yb) for _, yb in loader]
    assert sizes == [4, 4, 2] and len(loader) == 3
    assert sorted(np.concatenate([yb.numpy() for _, yb in loader])) == list(range(10))


def test_drop_last():
    loader = DataLoader((np.arange(10),), batch_size=4, drop_last=True)
    assert [len(b) for (b,) in loader] == [4, 4] and len(loader) == 2


def test_shuffling_follows_the_seed():
    loader = DataLoader((np.arange(20),), batch_size=20, shuffle=True)
    md.manual_seed(5)
    first = next(iter(loader))[0].numpy()
    md.manual_seed(5)
    again = next(iter(loader))[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, np.arange(20))


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_batches_arrive_on_the_device(device):
    (xb,) = next(iter(DataLoader((np.ones((3, 2), np.float32),), batch_size=2, device=device)))
    assert xb.device == device and xb.shape == (2, 2)


def test_arrays_of_different_lengths_are_an_error():
    with pytest.raises(ValueError, match=r"same number of samples, got lengths \[3, 2\]"):
        ArrayDataset(np.ones(3), np.ones(2))
