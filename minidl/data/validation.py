"""Validation of training data: what ``fit``, ``evaluate`` and ``predict`` accept as x and y.

Errors name the argument (``x``, ``y_val`` ...) and the first bad index, so a NaN in row 4,217
of a data set is found before any training happens.
"""
from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from minidl import backend
from minidl.autograd import Tensor


def checked_array(data: Any, name: str) -> np.ndarray:
    """``data`` (array, list, Tensor) as a host NumPy array of numbers, with a sample axis.

    Raises ValueError naming ``name`` for ragged lists, non-numbers, scalars and NaN/inf values.
    """
    if isinstance(data, Tensor):
        data = data.numpy()
    elif hasattr(data, "shape") and backend.device_of(data) != "cpu":
        data = backend.to_numpy(data)
    try:
        array = np.asarray(data)
    except ValueError as error:
        raise ValueError(f"{name} cannot be made into one array ({error}); sequences of "
                         f"different lengths must be padded first (pad_sequences)") from None
    if array.dtype.kind not in "biuf":
        hint = " (sequences of different lengths? pad them with pad_sequences)" \
            if array.dtype == object else ""
        raise ValueError(f"{name} must hold numbers, got an array of dtype {array.dtype}{hint}")
    if array.ndim == 0:
        raise ValueError(f"{name} must have a first axis of samples, got a single number")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        value = "NaN" if np.isnan(array[where]) else array[where]
        raise ValueError(f"{name} contains {value} at index {where}; inputs and targets "
                         f"must be finite numbers (clean or impute the data first)")
    return array


def check_data(x: Any, y: Any = None, names: Tuple[str, str] = ("x", "y")) -> Tuple[Any, Any]:
    """``x`` and ``y`` as arrays (see ``checked_array``) with the same number of samples."""
    x = checked_array(x, names[0])
    if len(x) == 0:
        raise ValueError(f"{names[0]} is empty: there is nothing to train on or predict")
    if y is None:
        return x, None
    y = checked_array(y, names[1])
    if len(x) != len(y):
        raise ValueError(f"{names[0]} and {names[1]} must have the same number of samples, got "
                         f"{len(x)} and {len(y)} (shapes {x.shape} and {y.shape})")
    return x, y
