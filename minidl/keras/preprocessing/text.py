"""``tensorflow.keras.preprocessing.text``, from ``minidl.data.text`` (Keras' semantics; CJK
characters become tokens of their own by default — see ``Tokenizer``)."""
from minidl.data.text import Tokenizer, text_to_word_sequence, tokenizer_from_json

__all__ = ["Tokenizer", "text_to_word_sequence", "tokenizer_from_json"]
