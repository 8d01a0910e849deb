"""Neural-network building blocks: Module, Parameter, layers, losses, initialisers."""
from minidl.nn import init
from minidl.nn.layers import (Dropout, Embedding, Flatten, Linear, ReLU, Sequential, Sigmoid,
                              Softmax, Tanh)
from minidl.nn.lora import LoRALinear, apply_lora, lora_state_dict, merge_lora
from minidl.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from minidl.nn.module import Module, Parameter, StateDictError
from minidl.nn.normalization import LayerNorm
from minidl.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from minidl.nn.transformer import (MLP, MultiHeadSelfAttention, PositionalEmbedding,
                                   TransformerBlock)

__all__ = ["Module", "Parameter", "StateDictError", "Linear", "Sequential", "Sigmoid", "Tanh",
           "ReLU", "Softmax", "Dropout", "Embedding", "Flatten", "LSTMCell", "LSTM", "GRUCell",
           "GRU", "RNNCell", "RNN", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
           "MSELoss", "init", "LayerNorm", "MultiHeadSelfAttention", "MLP", "TransformerBlock",
           "PositionalEmbedding", "LoRALinear", "apply_lora", "merge_lora", "lora_state_dict"]
