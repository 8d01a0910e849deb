"""Saving whole models (filled in below)."""
from __future__ import annotations

from typing import Any

from minidl.io import load


def read_weights(path: str) -> Any:
    """Weights written by ``save_weights`` (minidl's ``.npz``)."""
    return load(path)


def save_model(model: Any, filepath: str, **kwargs: Any) -> None:
    raise NotImplementedError


def load_model(filepath: str, **kwargs: Any) -> Any:
    raise NotImplementedError


def model_config(model: Any) -> Any:
    raise NotImplementedError


def model_from_config(config: Any, custom_objects: Any = None) -> Any:
    raise NotImplementedError


def to_json(model: Any, **kwargs: Any) -> str:
    raise NotImplementedError


def model_from_json(json_string: str, custom_objects: Any = None) -> Any:
    raise NotImplementedError
