"""``tensorflow.keras.utils``: ``to_categorical`` and ``pad_sequences`` (Keras 3's home for it)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from minidl.data.text import pad_sequences

__all__ = ["to_categorical", "pad_sequences"]


def to_categorical(y: Any, num_classes: Optional[int] = None, dtype: Any = "float32") -> np.ndarray:
    """Integer class labels as one-hot rows. Shape: (n,) or (n, 1) -> (n, num_classes)
    (labels of shape (n, ...) -> (n, ..., num_classes)); num_classes defaults to max(y) + 1."""
    y = np.asarray(y)
    if y.dtype.kind not in "biu":
        if y.dtype.kind != "f" or not np.array_equal(y, np.round(y)):
            raise ValueError(f"to_categorical needs integer class labels, got dtype {y.dtype}")
        y = y.astype("int64")
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), got values from "
                         f"{y.min()} to {y.max()}")
    return np.eye(num_classes, dtype=dtype)[y]
