"""Saving whole models: ``model.save(path)`` / ``load_model(path)``, ``to_json`` /
``model_from_json``, ``get_config`` / ``from_config``.

The file ``model.save`` writes is a zip (any name; written to a temporary file, then renamed,
so a crash never leaves half a file) holding

    config.json    {"format": "minidl-keras-model", "version": 1,
                    "model": {"class_name": "Sequential" | "Functional", "config": {...}},
                    "compile": {"optimizer": {...}, "loss": ..., "metrics": [...]} or null}
    weights.npz    each layer's weights in Keras' layout, keys "<layer name>/<i>"
    optimizer.npz  the optimizer's state (moments, step count), when it has one

Nothing is pickled: JSON and ``.npz`` arrays are read with ``allow_pickle=False``. Keras' own
formats are HDF5 (``.h5``, Keras 2) and a zip with ``model.weights.h5`` (``.keras``, Keras 3);
minidl writes neither — it uses its own format whatever the name (with a warning for ``.h5``
and ``.keras`` names), and ``load_model`` given a file from Keras says so.

Custom objects (your own loss, metric or activation functions) are stored by name; pass them
back with ``load_model(path, custom_objects={'my_loss': my_loss})``, as in Keras.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
import zipfile
from typing import Any, Dict, List, Optional

import numpy as np

from minidl import io as minidl_io
from minidl.keras import layers as layers_module
from minidl.keras import losses as losses_module
from minidl.keras import metrics as metrics_module
from minidl.keras import optimizers as optimizers_module
from minidl.keras.layers.layer import InputLayer, KerasTensor, Layer, Node

FORMAT = "minidl-keras-model"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class UnknownObjectError(ValueError):
    """A config names a layer, loss, metric or activation that minidl does not know."""


# ----------------------------------------------------------------------------- layers
def serialize_layer(layer: Layer) -> Dict[str, Any]:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(config: Dict[str, Any], custom_objects: Optional[Dict] = None) -> Layer:
    """A layer from ``{'class_name', 'config'}`` (wrapped layers and activations too)."""
    custom_objects = custom_objects or {}
    name = config["class_name"]
    cls = custom_objects.get(name) or getattr(layers_module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise UnknownObjectError(f"Unknown layer: {name!r}. Please ensure you are using a "
                                 f"minidl.keras layer, or pass custom_objects={{'{name}': ...}}")
    arguments = {}
    for key, value in config["config"].items():
        if isinstance(value, dict) and "class_name" in value and "config" in value:
            value = deserialize_layer(value, custom_objects)
        elif isinstance(value, str) and value in custom_objects:
            value = custom_objects[value]
        arguments[key] = value
    if cls is InputLayer:
        arguments.pop("trainable", None)
        return cls(**arguments)
    return cls.from_config(arguments)


# ----------------------------------------------------------------------------- models
def _node_key(graph: Any, tensor: KerasTensor) -> List[Any]:
    """``[layer name, node index, tensor index]``: which call of which layer made ``tensor``."""
    layer_nodes = [n for n in graph.nodes if n.layer is tensor.node.layer]
    return [tensor.node.layer.name, layer_nodes.index(tensor.node), tensor.index]


def model_config(model: Any) -> Dict[str, Any]:
    """``{'class_name', 'config'}`` of a Sequential or functional model."""
    from minidl.keras.models.sequential import Sequential
    if isinstance(model, Sequential):
        layers = []
        if model._input_layer is not None:
            layers.append(serialize_layer(model._input_layer))
        layers += [serialize_layer(layer) for layer in model.layers]
        config = {"name": model.name, "layers": layers,
                  "build_input_shape": list(model.input_shape) if model.built else None}
        return {"class_name": "Sequential", "config": config}
    graph = model.graph
    if graph is None:
        raise NotImplementedError(f"{type(model).__name__}: a subclassed model (with its own "
                                  f"call) has no config; save its weights with save_weights")
    layers = []
    for layer in graph.layers:
        entry = serialize_layer(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [[_node_key(graph, t) + [{}] for t in node.inputs]
                                  for node in graph.nodes if node.layer is layer and node.inputs]
        layers.append(entry)
    outputs = [_node_key(graph, t) for t in graph.outputs]
    config = {"name": model.name, "layers": layers,
              "input_layers": [_node_key(graph, graph.input)],
              "output_layers": outputs if graph.several_outputs else outputs[0]}
    return {"class_name": "Functional", "config": config}


def model_from_config(config: Dict[str, Any], custom_objects: Optional[Dict] = None) -> Any:
    """A new, untrained model from ``model_config``'s dict (or Keras' ``{'class_name',
    'config'}`` of ``to_json``)."""
    from minidl.keras.models.model import Model
    from minidl.keras.models.sequential import Sequential
    kind, body = config["class_name"], config["config"]
    if kind == "Sequential":
        model = Sequential(name=body.get("name"))
        for entry in body["layers"]:
            layer = deserialize_layer(entry, custom_objects)
            if isinstance(layer, InputLayer):
                model.add(Node(layer, [], layer.batch_input_shape,
                               layer.input_dtype).returned())
            else:
                model.add(layer)
        if not model.built and body.get("build_input_shape"):
            model.build(tuple(body["build_input_shape"]))
        return model
    if kind not in ("Functional", "Model"):
        raise UnknownObjectError(f"Unknown model class {kind!r}")
    made: Dict[tuple, Any] = {}
    pending = []
    for entry in body["layers"]:
        layer = deserialize_layer(entry, custom_objects)
        if isinstance(layer, InputLayer):
            made[(layer.name, 0)] = [Node(layer, [], layer.batch_input_shape,
                                          layer.input_dtype).outputs[0]]
        for node_index, inbound in enumerate(entry.get("inbound_nodes", [])):
            pending.append((layer, node_index, inbound))
    while pending:  # call each layer once its inputs exist (shared layers may wait)
        waiting = []
        for layer, node_index, inbound in pending:
            keys = [(name, index) for name, index, _, *_ in inbound]
            if not all(key in made for key in keys):
                waiting.append((layer, node_index, inbound))
                continue
            inputs = [made[(name, index)][tensor] for name, index, tensor, *_ in inbound]
            result = layer(inputs if layer.takes_list else inputs[0])
            made[(layer.name, node_index)] = result if isinstance(result, list) else [result]
        if len(waiting) == len(pending):
            raise ValueError("the model config has layers whose inputs are never made")
        pending = waiting

    def tensor(key: List[Any]) -> KerasTensor:
        return made[(key[0], key[1])][key[2]]
    outputs = body["output_layers"]
    outputs = [tensor(k) for k in outputs] if isinstance(outputs[0], list) else tensor(outputs)
    return Model(tensor(body["input_layers"][0]), outputs, name=body.get("name"))


def to_json(model: Any, **kwargs: Any) -> str:
    """The architecture as JSON (``json.dumps`` options such as ``indent`` pass through)."""
    config = model_config(model)
    return json.dumps({**config, "keras_version": "minidl", "backend": "minidl"}, **kwargs)


def model_from_json(json_string: str, custom_objects: Optional[Dict] = None) -> Any:
    """A new, untrained model from ``model.to_json()``."""
    return model_from_config(json.loads(json_string), custom_objects)


# ----------------------------------------------------------------------------- compile state
def _name_of(obj: Any) -> Any:
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (losses_module.Loss, metrics_module.Metric,
                        metrics_module.StatefulMetric)):
        return {"class_name": type(obj).__name__, "name": obj.name}
    return getattr(obj, "__name__", type(obj).__name__)


def _from_name(entry: Any, module: Any, what: str, custom_objects: Dict) -> Any:
    if entry is None:
        return None
    if isinstance(entry, dict):
        name = entry["class_name"]
        cls = custom_objects.get(name) or getattr(module, name, None)
        if cls is None:
            raise UnknownObjectError(f"Unknown {what}: {name!r}")
        return cls(name=entry["name"]) if "name" in entry else cls()
    if entry in custom_objects:
        return custom_objects[entry]
    try:
        module.get(entry)
    except (ValueError, TypeError):
        raise UnknownObjectError(
            f"Unknown {what}: {entry!r}. Please ensure this object is passed to the "
            f"`custom_objects` argument (load_model(path, custom_objects={{'{entry}': "
            f"{entry}}})), or load with compile=False") from None
    return entry


def _compile_config(model: Any) -> Optional[Dict[str, Any]]:
    if model.optimizer is None:
        return None
    optimizer = model.optimizer
    saved = getattr(model, "_compile_config", {})
    return {"optimizer": {"class_name": type(optimizer).__name__,
                          "config": optimizer.get_config()},
            "loss": _name_of(model.loss),
            "metrics": [_name_of(m) for m in saved.get("metrics") or []]}


def _compile(model: Any, config: Dict[str, Any], custom_objects: Dict) -> None:
    optimizer_config = config["optimizer"]
    cls = getattr(optimizers_module, optimizer_config["class_name"], None)
    if cls is None:
        raise UnknownObjectError(f"Unknown optimizer: {optimizer_config['class_name']!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decay's warning was given when it was first made
        optimizer = cls.from_config(optimizer_config["config"])
    model.compile(optimizer=optimizer,
                  loss=_from_name(config["loss"], losses_module, "loss function",
                                  custom_objects),
                  metrics=[_from_name(m, metrics_module, "metric", custom_objects)
                           for m in config.get("metrics") or []])


# ----------------------------------------------------------------------------- files
def _npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _check_name(filepath: str, save_format: Optional[str]) -> None:
    extension = os.path.splitext(filepath)[1].lower()
    if extension in (".h5", ".hdf5", ".keras") or save_format in ("h5", "tf", "keras"):
        warnings.warn(f"{filepath!r}: minidl writes its own format (a zip of config.json and "
                      f".npz weights, no pickle), not Keras' HDF5 or .keras files, whatever the "
                      f"name; minidl.keras.models.load_model reads it back, Keras cannot.",
                      UserWarning, stacklevel=4)


def save_model(model: Any, filepath: str, overwrite: bool = True,
               include_optimizer: bool = True, save_format: Optional[str] = None) -> None:
    """Write ``model`` (architecture, weights, compile settings and, if ``include_optimizer``,
    the optimizer's state) to ``filepath``; see the module docstring for the format."""
    filepath = os.fspath(filepath)
    if not model.built:
        raise ValueError(f"model {model.name!r} has not been built yet, so it has no weights "
                         f"to save: fit it, call it on data or build it first")
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath!r} exists and overwrite=False")
    _check_name(filepath, save_format)
    config = {"format": FORMAT, "version": 1, "model": model_config(model),
              "compile": _compile_config(model)}
    weights = {f"{layer.name}/{i}": w for layer in model.layers
               for i, w in enumerate(layer.get_weights())}
    directory = os.path.dirname(os.path.abspath(filepath))
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("config.json", json.dumps(config, indent=1))
            archive.writestr("weights.npz", _npz_bytes(weights))
            core = model.optimizer.core if model.optimizer is not None else None
            if include_optimizer and core is not None:
                state_path = temporary + ".optimizer"
                try:
                    minidl_io.save(core.state_dict(), state_path)
                    archive.write(state_path, "optimizer.npz")
                finally:
                    if os.path.exists(state_path):
                        os.remove(state_path)
        os.replace(temporary, filepath)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _open(filepath: str) -> zipfile.ZipFile:
    with open(filepath, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        raise ValueError(f"{filepath!r} is an HDF5 file (Keras 2's .h5 format). minidl does not "
                         f"read HDF5: it reads the zip of config.json + weights.npz that "
                         f"minidl's model.save writes. To bring Keras weights over, build the "
                         f"same model in minidl and call model.set_weights(keras_model."
                         f"get_weights()).")
    if not zipfile.is_zipfile(filepath):
        raise ValueError(f"{filepath!r} is not a model file written by minidl's model.save (a "
                         f"zip of config.json + weights.npz); for weights written by "
                         f"save_weights use model.load_weights")
    archive = zipfile.ZipFile(filepath)
    names = set(archive.namelist())
    if "config.json" not in names or "weights.npz" not in names:
        archive.close()
        keras3 = "model.weights.h5" in names
        raise ValueError(f"{filepath!r} is " + ("a Keras 3 .keras file (weights in HDF5), which "
                                                 "minidl cannot read" if keras3 else
                                                 "a zip file but not a minidl model")
                         + "; minidl reads the files of its own model.save (config.json + "
                           "weights.npz). Move Keras weights with model.set_weights("
                           "keras_model.get_weights()).")
    return archive


def load_model(filepath: str, custom_objects: Optional[Dict] = None, compile: bool = True,
               **kwargs: Any) -> Any:
    """The model ``model.save`` wrote: same architecture, weights and (``compile=True``)
    optimizer, loss and metrics, so ``predict`` gives the same numbers and ``fit`` resumes."""
    filepath = os.fspath(filepath)
    custom_objects = dict(custom_objects or {})
    with _open(filepath) as archive:
        config = json.loads(archive.read("config.json"))
        if config.get("format") != FORMAT:
            raise ValueError(f"{filepath!r}: unknown model format {config.get('format')!r}")
        with np.load(io.BytesIO(archive.read("weights.npz")), allow_pickle=False) as npz:
            weights = {key: npz[key] for key in npz.files}
        optimizer_bytes = archive.read("optimizer.npz") \
            if "optimizer.npz" in archive.namelist() else None
    model = model_from_config(config["model"], custom_objects)
    for layer in model.layers:
        count = len(layer.get_weights())
        if count:
            layer.set_weights([weights[f"{layer.name}/{i}"] for i in range(count)])
    if compile and config.get("compile"):
        _compile(model, config["compile"], custom_objects)
        if optimizer_bytes is not None:
            model.optimizer.build(model.parameters())
            handle, temporary = tempfile.mkstemp(suffix=".npz")
            os.close(handle)
            try:
                with open(temporary, "wb") as f:
                    f.write(optimizer_bytes)
                model.optimizer.load_state_dict(minidl_io.load(temporary))
            finally:
                os.remove(temporary)
    return model


def read_weights(path: str) -> Any:
    """Weights written by ``save_weights`` (minidl's ``.npz``); a whole-model file from
    ``model.save`` gives its state dict too."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "config.json" in archive.namelist():
                model = load_model(path, compile=False)
                return model.state_dict()
    return minidl_io.load(path)
