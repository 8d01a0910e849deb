"""Neural-network building blocks: Module, Parameter, layers, losses, initialisers."""
from minidl.nn import init
from minidl.nn.layers import (Dropout, Embedding, Flatten, Linear, ReLU, Sequential, Sigmoid,
                              Softmax, Tanh)
from minidl.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from minidl.nn.module import Module, Parameter, StateDictError
from minidl.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = ["Module", "Parameter", "StateDictError", "Linear", "Sequential", "Sigmoid", "Tanh",
           "ReLU", "Softmax", "Dropout", "Embedding", "Flatten", "LSTMCell", "LSTM", "GRUCell",
           "GRU", "RNNCell", "RNN", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
           "MSELoss", "init"]
