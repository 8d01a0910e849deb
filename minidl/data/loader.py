"""``Dataset`` and ``DataLoader``: batches of host data, moved to the model's device.

    loader = DataLoader(ArrayDataset(x, y), batch_size=64, shuffle=True, device="cuda")
    for xb, yb in loader:          # Tensors on the device, the last batch possibly smaller
        ...
"""
from __future__ import annotations

from typing import Any, Iterator, Optional, Tuple

import numpy as np

from minidl import backend
from minidl.autograd import Tensor


class Dataset:
    """Anything with ``len(dataset)`` and ``dataset[indices]`` -> a tuple of arrays."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, indices: Any) -> Tuple[np.ndarray, ...]:
        raise NotImplementedError


class ArrayDataset(Dataset):
    """Arrays of equal length, one sample per row: ``ArrayDataset(x, y)``."""

    def __init__(self, *arrays: Any):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        self.arrays = [np.asarray(a) for a in arrays]
        lengths = {len(a) for a in self.arrays}
        if len(lengths) != 1:
            raise ValueError(f"ArrayDataset: arrays must have the same number of samples, got "
                             f"lengths {[len(a) for a in self.arrays]}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, indices: Any) -> Tuple[np.ndarray, ...]:
        return tuple(a[indices] for a in self.arrays)


# PyTorch's name (torch.utils.data.TensorDataset): minidl's ArrayDataset takes arrays, lists
# or CPU Tensors (np.asarray reads a CPU Tensor's data) and returns batches as Tensors.
TensorDataset = ArrayDataset


class DataLoader:
    """Iterate over a dataset in batches of ``batch_size`` samples (the last may be smaller,
    unless ``drop_last``), shuffled each epoch with minidl's seeded generator
    (``md.manual_seed``) when ``shuffle``. Each batch arrives as Tensors on ``device``
    (default: ``MINIDL_DEVICE``); only the batch is copied to the device, never the data set.
    ``dtype``: floating-point arrays are cast to it (a model's weight dtype); integer arrays
    (token ids, class labels) are left alone."""

    def __init__(self, dataset: Any, batch_size: int = 32, shuffle: bool = False,
                 drop_last: bool = False, device: Optional[str] = None, dtype: Any = None):
        if isinstance(dataset, (tuple, list)):
            dataset = ArrayDataset(*dataset)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.device = backend.check_device(device)
        self.dtype = None if dtype is None else np.dtype(dtype)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[Tensor, ...]]:
        n = len(self.dataset)
        order = backend.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            indices = order[start:start + self.batch_size]
            if self.drop_last and len(indices) < self.batch_size:
                return
            yield tuple(self._tensor(a) for a in self.dataset[indices])

    def _tensor(self, array: np.ndarray) -> Tensor:
        if self.dtype is not None and array.dtype.kind == "f" and array.dtype != self.dtype:
            array = array.astype(self.dtype)
        return Tensor(backend.to_device(np.ascontiguousarray(array), self.device))
