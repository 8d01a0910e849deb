"""``tensorflow.keras.preprocessing.sequence``, from ``minidl.data.text``."""
from minidl.data.text import pad_sequences

__all__ = ["pad_sequences"]
