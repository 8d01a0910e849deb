"""Keras' layers (``tensorflow.keras.layers``), each a thin wrapper of a ``minidl.nn`` module.

    Embedding(input_dim, output_dim, mask_zero=False, input_length=None)  → nn.Embedding
    LSTM(units, return_sequences=False, return_state=False)               → nn.LSTM
    GRU(units, ...), SimpleRNN(units, ...)                                 → nn.GRU, nn.RNN
    Dense(units, activation=None)                                          → nn.Linear + activation
    Dropout(rate), Flatten(), GlobalAveragePooling1D(), Activation(name), Input(shape)
    Conv1D, Conv2D, MaxPooling1D/2D, GlobalMaxPooling1D                    → F.conv1d/conv2d ...
    Bidirectional(layer), TimeDistributed(layer)                           wrappers
    Concatenate(), Add(), ...                                              merge (functional API)
    BatchNormalization(), LayerNormalization()                             → F.batch_norm, F.layer_norm

Where they live, as in Keras (``layers/layer.py`` apart from the concrete layers):

    layer.py          the ``Layer`` base: lazy building, names, modes, weights, configs;
                      ``Input`` and the symbolic ``KerasTensor`` of the functional API
    core.py           Dense, Activation, Dropout, SpatialDropout1D, Flatten, Embedding,
                      GlobalAveragePooling1D
    recurrent.py      LSTM, GRU, SimpleRNN
    convolutional.py  Conv1D, Conv2D, MaxPooling1D, MaxPooling2D, GlobalMaxPooling1D
    merging.py        Concatenate, Add, Subtract, Multiply, Average, Maximum, Minimum
    normalization.py  BatchNormalization, LayerNormalization
    wrappers.py       Bidirectional, TimeDistributed

**Lazy building**, as Keras: a layer creates its weights the first time it sees an input
shape (``build(input_shape)``), so ``Dense(1)`` needs no input size. Shapes have the batch
axis first, written ``None`` when unknown: ``(None, 10)``.

**Masking**, as Keras: ``Embedding(mask_zero=True)`` marks token id 0 as padding; the mask
travels to the next layers of a ``Sequential`` model. Recurrent layers leave their state
unchanged at masked steps, so a pre-padded sequence gives the same final output as the
unpadded one; ``GlobalAveragePooling1D`` averages over the unmasked steps only.

**Modes**: layers run in inference mode (dropout off) unless ``fit`` is training them or they
are called with ``training=True``.

Weights and defaults are Keras': Dense and recurrent kernels glorot-uniform, recurrent kernels
orthogonal, biases zero (LSTM forget gate 1), embeddings U(−0.05, 0.05).
"""
from minidl.keras.layers.convolutional import (Conv1D, Conv2D, Convolution1D, Convolution2D,
                                               GlobalMaxPool1D, GlobalMaxPooling1D, MaxPool1D,
                                               MaxPool2D, MaxPooling1D, MaxPooling2D)
from minidl.keras.layers.core import (Activation, Dense, Dropout, Embedding, Flatten,
                                      GlobalAveragePooling1D, SpatialDropout1D)
from minidl.keras.layers.layer import Input, InputLayer, KerasTensor, Layer
# The base's helpers, importable from here as when layers was one module (minidl.keras.models
# imports them from layers.layer).
from minidl.keras.layers.layer import Shape, to_input_tensor, training_mode, unique_name  # noqa: F401
from minidl.keras.layers.merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply,
                                         Subtract, add, average, concatenate, maximum, minimum,
                                         multiply, subtract)
from minidl.keras.layers.normalization import BatchNormalization, LayerNormalization
from minidl.keras.layers.recurrent import GRU, LSTM, SimpleRNN
from minidl.keras.layers.wrappers import Bidirectional, TimeDistributed, Wrapper

GlobalAvgPool1D = GlobalAveragePooling1D

__all__ = ["Layer", "InputLayer", "Input", "KerasTensor", "Dense", "Activation", "Dropout",
           "SpatialDropout1D", "Flatten", "GlobalAveragePooling1D", "GlobalAvgPool1D",
           "Embedding", "LSTM", "GRU", "SimpleRNN", "Conv1D", "Conv2D", "Convolution1D",
           "Convolution2D", "MaxPooling1D", "MaxPooling2D", "MaxPool1D", "MaxPool2D",
           "GlobalMaxPooling1D", "GlobalMaxPool1D", "Concatenate", "Add", "Subtract",
           "Multiply", "Average", "Maximum", "Minimum", "concatenate", "add", "subtract",
           "multiply", "average", "maximum", "minimum", "BatchNormalization",
           "LayerNormalization", "Bidirectional", "TimeDistributed", "Wrapper", "serialize",
           "deserialize"]


def serialize(layer: Layer) -> dict:
    """``{'class_name': ..., 'config': layer.get_config()}``."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict, custom_objects: dict = None) -> Layer:
    """The layer ``serialize`` described (its weights are new)."""
    from minidl.keras.models.saving import deserialize_layer
    return deserialize_layer(config, custom_objects)
