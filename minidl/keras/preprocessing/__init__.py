"""``tensorflow.keras.preprocessing``: ``text`` (Tokenizer) and ``sequence`` (pad_sequences)."""
from minidl.keras.preprocessing import sequence, text

__all__ = ["text", "sequence"]
