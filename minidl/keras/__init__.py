"""``minidl.keras``: the import paths of ``tensorflow.keras`` on minidl, so that Keras code runs
with only its imports changed:

    from minidl.keras.preprocessing.text import Tokenizer
    from minidl.keras.preprocessing.sequence import pad_sequences
    from minidl.keras.models import Sequential
    from minidl.keras.layers import Embedding, LSTM, Dense

A thin facade: layers wrap ``minidl.nn`` modules, optimizers run ``minidl.optim``, training is
``minidl.training.fit``; it adds no math of its own. Keras' argument names and defaults
throughout; the differences are listed in each module's docstring.
"""
from minidl.keras import (activations, backend, callbacks, initializers, layers, losses, metrics,
                          models, optimizers, preprocessing, utils)
from minidl.keras.layers import Input
from minidl.keras.models import Model, Sequential

__all__ = ["activations", "backend", "callbacks", "initializers", "layers", "losses", "metrics",
           "models", "optimizers", "preprocessing", "utils", "Input", "Model", "Sequential"]
