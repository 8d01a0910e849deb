"""Keras' layers (``tensorflow.keras.layers``), each a thin wrapper of a ``minidl.nn`` module.

    Embedding(input_dim, output_dim, mask_zero=False, input_length=None)  → nn.Embedding
    LSTM(units, return_sequences=False, return_state=False)               → nn.LSTM
    GRU(units, ...), SimpleRNN(units, ...)                                 → nn.GRU, nn.RNN
    Dense(units, activation=None)                                          → nn.Linear + activation
    Dropout(rate), Flatten(), GlobalAveragePooling1D(), Activation(name), Input(shape)

Where they live, as in Keras (``layers/layer.py`` apart from ``layers/core/``):

    layer.py      the ``Layer`` base: lazy building, names, modes, weights; ``Input``
    core.py       Dense, Activation, Dropout, Flatten, Embedding, GlobalAveragePooling1D
    recurrent.py  LSTM, GRU, SimpleRNN

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
from minidl.keras.layers.core import (Activation, Dense, Dropout, Embedding, Flatten,
                                      GlobalAveragePooling1D)
from minidl.keras.layers.layer import Input, InputLayer, Layer
# The base's helpers, importable from here as when layers was one module (minidl.keras.models
# imports them from layers.layer).
from minidl.keras.layers.layer import Shape, to_input_tensor, training_mode, unique_name  # noqa: F401
from minidl.keras.layers.recurrent import GRU, LSTM, SimpleRNN

__all__ = ["Layer", "InputLayer", "Input", "Dense", "Activation", "Dropout", "Flatten",
           "GlobalAveragePooling1D", "Embedding", "LSTM", "GRU", "SimpleRNN"]
