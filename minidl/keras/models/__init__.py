"""``tensorflow.keras.models``: ``Sequential``, ``Model`` (the functional API), and whole-model
saving (``load_model``, ``model_from_json``).

    model.py       Model: compile/fit/evaluate/predict, *_on_batch, weights, functional API
    sequential.py  Sequential: a chain of layers
    functional.py  the graph of a functional model, replayed on data
    saving.py      model.save / load_model (a zip of JSON config + .npz weights; no pickle),
                   to_json / model_from_json, get_config / from_config
"""
from minidl.keras.models.model import Model
from minidl.keras.models.saving import (load_model, model_from_config, model_from_json,
                                        save_model)
from minidl.keras.models.sequential import Sequential

__all__ = ["Model", "Sequential", "load_model", "save_model", "model_from_json",
           "model_from_config"]
