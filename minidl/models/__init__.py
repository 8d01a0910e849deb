"""Reusable architectures built from ``minidl.nn``: the GPT-style language model and its
classifier. (The seed's character LSTM lives with its application in ``minidl.apps.charlm``.)"""
from minidl.models.gpt import GPT, GPTClassifier, GPTConfig

__all__ = ["GPT", "GPTConfig", "GPTClassifier"]
