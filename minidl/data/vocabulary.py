"""Character vocabularies for language models: one place that turns Chinese text into ids.

Id 0 is padding, 1 the unknown character (``<unk>``), then the most frequent characters. Each
text ends with a newline, which a language model learns as "end of text". The seed's LSTM
language model (``apps.charlm``), the GPT pretraining (``apps.pretrain``) and the classifier
bundles (``apps.bundle``) all use these functions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from minidl.data.text import Tokenizer, pad_sequences

UNKNOWN = "<unk>"


def build_char_vocabulary(texts: Sequence[str], max_size: int = 4000) -> Tokenizer:
    """A character-level Tokenizer over ``texts``: id 0 is padding, 1 the unknown character,
    then the ``max_size − 2`` most frequent characters (newline included)."""
    tokenizer = Tokenizer(num_words=max_size, char_level=True, oov_token=UNKNOWN, lower=True)
    tokenizer.fit_on_texts([t + "\n" for t in texts])
    return tokenizer


def vocabulary_size(tokenizer: Tokenizer) -> int:
    """Number of ids the models need: ids run from 0 to this minus one."""
    return min(tokenizer.num_words or 10 ** 9, len(tokenizer.word_index) + 1)


def encode_stream(tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """All texts as one stream of character ids (int32), each ended by the newline id.
    Shape: (total characters + number of texts,)."""
    sequences = tokenizer.texts_to_sequences([t + "\n" for t in texts])
    return np.fromiter((i for s in sequences for i in s), dtype=np.int32)


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], maxlen: int) -> np.ndarray:
    """Texts as a (n, maxlen) int64 id matrix, pre-padded with 0 and keeping each text's end
    (Keras' defaults), for classifiers."""
    return pad_sequences(tokenizer.texts_to_sequences(list(texts)), maxlen=maxlen,
                         padding="pre", truncating="pre").astype(np.int64)
