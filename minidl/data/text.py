"""Text preprocessing with Keras' semantics: `Tokenizer`, `text_to_word_sequence`, `pad_sequences`.

Pure Python + NumPy. Behaves like `keras.preprocessing.text` / `keras.preprocessing.sequence`
(keras-preprocessing 1.1.2, Keras 3's `pad_sequences`), with one deliberate difference: by
default the Tokenizer makes every Chinese, Japanese or Korean character its own token
(see `Tokenizer`).
"""
from __future__ import annotations

import json
import re
import unicodedata
import warnings
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

__all__ = ['FILTERS', 'text_to_word_sequence', 'Tokenizer', 'tokenizer_from_json', 'pad_sequences']

FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
"""Keras' default filters: ASCII punctuation except the apostrophe, plus tab and newline."""

MODES = ('binary', 'count', 'freq', 'tfidf')

# Characters that become one token each when cjk='split'.
_CJK_CHAR = re.compile(
    '['
    '\u3005-\u3007'          # 々 〆 〇
    '\u3040-\u309f'          # Hiragana
    '\u30a0-\u30ff'          # Katakana (its punctuation ・ ゠ is removed before this runs)
    '\u3400-\u4dbf'          # CJK Unified Ideographs Extension A
    '\u4e00-\u9fff'          # CJK Unified Ideographs
    '\uac00-\ud7af'          # Hangul syllables
    '\uf900-\ufaff'          # CJK Compatibility Ideographs
    '\uff66-\uff9d'          # half-width Katakana
    '\U00020000-\U0003134f'  # Extensions B-G and the compatibility supplement
    ']')


def _cjk_punctuation_class() -> str:
    """The regex class of CJK punctuation: separators (like Keras' filters) when cjk='split'.

    Every punctuation, symbol or space character (Unicode categories P*, S*, Z*) of the CJK
    Symbols and Punctuation, Hiragana/Katakana, vertical, compatibility, small and full-width
    form blocks, plus “ ” … — which Chinese text uses as its quotes, ellipsis and dash.
    The apostrophe-like ‘ ’ stay word characters, as Keras keeps ' inside words.
    """
    blocks = [(0x3000, 0x30FF), (0xFE10, 0xFE1F), (0xFE30, 0xFE6F), (0xFF00, 0xFF65)]
    chars = [chr(c) for low, high in blocks for c in range(low, high + 1)
             if unicodedata.category(chr(c))[0] in 'PSZ']
    return '[' + re.escape(''.join(chars) + '\u201c\u201d\u2026\u2014') + ']'


_CJK_PUNCTUATION = re.compile(_cjk_punctuation_class())


def text_to_word_sequence(text: str, filters: str = FILTERS, lower: bool = True,
                          split: str = ' ') -> list[str]:
    """Split a text into words exactly as Keras does.

    Lowercase (if `lower`), turn every character of `filters` into `split`, split on `split`
    and drop empty strings. `"Hello, world!"` → `['hello', 'world']`.
    """
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [word for word in text.split(split) if word]


def _separate_cjk(text: str, split: str) -> str:
    """Drop CJK punctuation and put `split` around every CJK character.

    `'我喜欢 deep learning！'` → `' 我  喜  欢  deep learning '` (with split=' ').
    """
    text = _CJK_PUNCTUATION.sub(lambda m: split, text)
    return _CJK_CHAR.sub(lambda m: split + m.group() + split, text)


def _checked_texts(texts: Iterable) -> Iterator:
    """Yield the texts, raising a TypeError at the first one that is neither str nor list."""
    if isinstance(texts, str):
        warnings.warn('`texts` is a single string, so each of its characters is treated as one '
                      'text (as Keras does). You probably meant a list of texts: [text].',
                      UserWarning, stacklevel=3)
    for position, text in enumerate(texts):
        if not isinstance(text, (str, list)):
            hint = " Decode it first: text.decode('utf-8')." if isinstance(text, bytes) else ''
            raise TypeError(f'texts[{position}] is {type(text).__name__}, expected str '
                            f'(or a list of tokens).{hint}')
        yield text


class Tokenizer:
    """Build a vocabulary from texts and turn texts into sequences of word indices (Keras' API).

    `fit_on_texts` counts words: `word_counts[w]` (occurrences), `word_docs[w]` (texts that
    contain w), `document_count`. `word_index` numbers the words from 1 by descending count,
    ties in order of first appearance; 0 is never assigned (it is left for padding), and
    `oov_token`, if given, always gets index 1. `num_words` never shrinks `word_index`: it is
    applied on conversion, keeping an index i only if `i < num_words`; a dropped or unknown
    word becomes the `oov_token` index if there is one, otherwise it is silently left out.

    Words are found as in Keras: lowercase, every `filters` character becomes `split`, split
    on `split`. With `char_level=True` (or when a text is given as a list of tokens) each
    character (list item) is a token and `filters`, `split` and `cjk` are ignored.
    `analyzer(text)`, if given, replaces the word splitting (and `cjk`).

    The one deliberate difference from Keras, `cjk`: Chinese and Japanese are written without
    spaces, so Keras turns a whole Chinese sentence into a single "word":

        >>> t = Tokenizer(cjk='keras')
        >>> t.fit_on_texts(['我喜欢编程', '我讨厌编程', '我喜欢编程'])
        >>> t.word_index, t.texts_to_sequences(['我喜欢编程', '我喜欢学习'])
        ({'我喜欢编程': 1, '我讨厌编程': 2}, [[1], []])

    Every new sentence is then unknown. With the default `cjk='split'` each CJK character
    (CJK ideographs incl. extension A and compatibility ideographs, Hiragana, Katakana,
    Hangul syllables) is its own token, and in a text that has CJK characters CJK punctuation
    (`，。！？；：、“”（）…`, full-width forms, also “ ” … —) separates words like Keras'
    filters do:

        >>> t = Tokenizer()
        >>> t.fit_on_texts(['我喜欢 deep learning！'])
        >>> list(t.word_index)
        ['我', '喜', '欢', 'deep', 'learning']

    Text without CJK characters is split exactly as Keras splits it (curly quotes, ellipses,
    dashes and full-width punctuation stay inside words there, as in Keras).
    `cjk='keras'` reproduces Keras exactly. `cjk` is saved by `to_json` where Keras' loader
    ignores it; JSON written by Keras itself has no `cjk` and loads as `cjk='keras'`, so it
    tokenizes as before.
    """

    def __init__(self, num_words: Optional[int] = None, filters: str = FILTERS,
                 lower: bool = True, split: str = ' ', char_level: bool = False,
                 oov_token: Optional[str] = None,
                 analyzer: Optional[Callable[[str], list]] = None,
                 cjk: str = 'split', **kwargs: Any) -> None:
        if 'nb_words' in kwargs:
            warnings.warn('The `nb_words` argument of Tokenizer has been renamed `num_words`.',
                          DeprecationWarning, stacklevel=2)
            num_words = kwargs.pop('nb_words')
        document_count = kwargs.pop('document_count', 0)
        if kwargs:
            raise TypeError(f'Tokenizer got unexpected keyword arguments {sorted(kwargs)}; it '
                            'takes num_words, filters, lower, split, char_level, oov_token, '
                            'analyzer and cjk.')
        if cjk not in ('split', 'keras'):
            raise ValueError(f"cjk must be 'split' (one token per CJK character) or 'keras' "
                             f"(Keras' splitting), got {cjk!r}")
        if num_words is not None and num_words < 0:
            raise ValueError(f'num_words must be None or >= 0, got {num_words}')
        self.num_words = num_words
        self.filters = filters
        self.lower = lower
        self.split = split
        self.char_level = char_level
        self.oov_token = oov_token
        self.analyzer = analyzer
        self.cjk = cjk
        self.document_count = document_count
        self.word_counts: dict[str, int] = {}
        self.word_docs: dict[str, int] = {}
        self.index_docs: dict[int, int] = {}
        self.word_index: dict[str, int] = {}
        self.index_word: dict[int, str] = {}

    def _tokens(self, text: str | list) -> list:
        """The tokens of one text, as this tokenizer sees them."""
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [token.lower() for token in text] if isinstance(text, list) else text.lower()
            return list(text)
        if self.analyzer is not None:
            return list(self.analyzer(text))
        if self.cjk == 'split' and _CJK_CHAR.search(text):  # text without CJK: Keras' split
            text = _separate_cjk(text, self.split)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts: Iterable[str | list]) -> None:
        """Count the words of `texts` and (re)build `word_index`; may be called repeatedly."""
        texts = list(_checked_texts(texts))  # check them all before changing any count
        for text in texts:
            tokens = self._tokens(text)
            self.document_count += 1
            for word in tokens:
                self.word_counts[word] = self.word_counts.get(word, 0) + 1
            for word in dict.fromkeys(tokens):  # each distinct word once, in order
                self.word_docs[word] = self.word_docs.get(word, 0) + 1
        # sorted() is stable, so equal counts keep their first-occurrence order.
        by_count = sorted(self.word_counts, key=self.word_counts.__getitem__, reverse=True)
        vocabulary = [] if self.oov_token is None else [self.oov_token]
        vocabulary += by_count
        # As Keras: an oov_token that also occurs in the texts is numbered again at its place
        # by count (the later number wins), and index 1 is then unused.
        self.word_index = {word: i for i, word in enumerate(vocabulary, start=1)}
        self.index_word = {i: word for word, i in self.word_index.items()}
        for word, n_docs in self.word_docs.items():
            self.index_docs[self.word_index[word]] = n_docs

    def fit_on_sequences(self, sequences: Sequence[Sequence[int]]) -> None:
        """Count documents per index (needed by tfidf) from already-converted sequences."""
        self.document_count += len(sequences)
        for seq in sequences:
            for i in set(seq):
                self.index_docs[i] = self.index_docs.get(i, 0) + 1

    def _keep(self, i: int) -> bool:
        return not self.num_words or i < self.num_words

    def texts_to_sequences(self, texts: Iterable[str | list]) -> list[list[int]]:
        """Turn each text into a list of word indices. `['the cat']` → `[[1, 4]]`."""
        return list(self.texts_to_sequences_generator(texts))

    def texts_to_sequences_generator(self, texts: Iterable[str | list]) -> Iterator[list[int]]:
        """Yield one list of word indices per text (see `texts_to_sequences`)."""
        oov_index = self.word_index.get(self.oov_token)
        for text in _checked_texts(texts):
            sequence = []
            for word in self._tokens(text):
                i = self.word_index.get(word)
                if i is not None and self._keep(i):
                    sequence.append(i)
                elif oov_index is not None:
                    sequence.append(oov_index)
            yield sequence

    def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
        """Turn index sequences back into texts: the words joined by a space."""
        return list(self.sequences_to_texts_generator(sequences))

    def sequences_to_texts_generator(self, sequences: Iterable[Sequence[int]]) -> Iterator[str]:
        """Yield one text per index sequence (see `sequences_to_texts`)."""
        oov_word = self.oov_token if self.oov_token in self.word_index else None  # fitted?
        for sequence in sequences:
            words = []
            for i in sequence:
                word = self.index_word.get(i)
                if word is not None and self._keep(i):
                    words.append(word)
                elif oov_word is not None:
                    words.append(oov_word)
            yield ' '.join(words)

    def texts_to_matrix(self, texts: Iterable[str | list], mode: str = 'binary') -> np.ndarray:
        """One row per text of per-word scores; see `sequences_to_matrix` for the modes."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def sequences_to_matrix(self, sequences: Sequence[Sequence[int]],
                            mode: str = 'binary') -> np.ndarray:
        """One row per sequence, one column per word index; column 0 is never used.

        Shape: (len(sequences), num_words or len(word_index) + 1), float64; indices beyond
        the width are skipped. With c = occurrences of index j in the sequence:
        binary: 1;  count: c;  freq: c / len(sequence);
        tfidf: (1 + ln c) · ln(1 + document_count / (1 + index_docs[j])).
        """
        if mode not in MODES:
            raise ValueError(f'Unknown vectorization mode {mode!r}; use one of {MODES}.')
        if self.num_words:
            width = self.num_words
        elif self.word_index:
            width = len(self.word_index) + 1
        else:
            raise ValueError('Specify a dimension (`num_words` argument), '
                             'or fit on some text data first.')
        if mode == 'tfidf' and not self.document_count:
            raise ValueError('Fit the Tokenizer on some data before using tfidf mode.')
        x = np.zeros((len(sequences), width))
        for row, sequence in enumerate(sequences):
            counts: dict[int, int] = {}
            for j in sequence:
                if j < 0:
                    raise ValueError(f'sequences[{row}] holds the negative index {j}; '
                                     'word indices start at 1.')
                if j < width:
                    counts[j] = counts.get(j, 0) + 1
            for j, c in counts.items():
                if mode == 'binary':
                    x[row, j] = 1
                elif mode == 'count':
                    x[row, j] = c
                elif mode == 'freq':
                    x[row, j] = c / len(sequence)
                else:
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[row, j] = (1 + np.log(c)) * idf
        return x

    def get_config(self) -> dict[str, Any]:
        """The settings and counts, as Keras stores them (the dicts as JSON strings)."""
        return {
            'num_words': self.num_words, 'filters': self.filters, 'lower': self.lower,
            'split': self.split, 'char_level': self.char_level, 'oov_token': self.oov_token,
            'document_count': self.document_count,
            'word_counts': json.dumps(self.word_counts), 'word_docs': json.dumps(self.word_docs),
            'index_docs': json.dumps(self.index_docs), 'index_word': json.dumps(self.index_word),
            'word_index': json.dumps(self.word_index),
        }

    def to_json(self, **kwargs: Any) -> str:
        """Keras' JSON: `{"class_name": "Tokenizer", "config": {...}}`; kwargs go to json.dumps.

        Keras' `tokenizer_from_json` loads it: minidl's own setting `cjk` is stored beside
        `config` (`{"minidl": {"cjk": ...}}`), where Keras does not look (an unknown key inside
        `config` would make Keras' Tokenizer raise). `analyzer` is not saved (a function cannot
        be written as JSON), as in Keras.
        """
        return json.dumps({'class_name': 'Tokenizer', 'config': self.get_config(),
                           'minidl': {'cjk': self.cjk}}, **kwargs)


def tokenizer_from_json(json_string: str) -> Tokenizer:
    """Rebuild a Tokenizer from `Tokenizer.to_json()` output, minidl's or Keras' own.

    Keras' JSON has no `cjk` key; it loads as `cjk='keras'` so texts tokenize as they did.
    """
    stored = json.loads(json_string)
    config = dict(stored['config'])
    counts = {key: json.loads(config.pop(key))
              for key in ('word_counts', 'word_docs', 'index_docs', 'index_word', 'word_index')}
    config.setdefault('cjk', stored.get('minidl', {}).get('cjk', 'keras'))
    tokenizer = Tokenizer(**config)
    tokenizer.word_counts = counts['word_counts']
    tokenizer.word_docs = counts['word_docs']
    tokenizer.word_index = counts['word_index']
    # JSON object keys are strings; the index dicts are keyed by int.
    tokenizer.index_docs = {int(i): n for i, n in counts['index_docs'].items()}
    tokenizer.index_word = {int(i): w for i, w in counts['index_word'].items()}
    return tokenizer


def pad_sequences(sequences: Sequence, maxlen: Optional[int] = None, dtype: Any = 'int32',
                  padding: str = 'pre', truncating: str = 'pre', value: Any = 0.0) -> np.ndarray:
    """Pad (or cut) every sequence to the same length `maxlen` (Keras' `pad_sequences`).

    Shape: (len(sequences), maxlen) + sample_shape, where sample_shape is the shape of one
    element (`()` for plain token lists) and maxlen defaults to the longest length.
    `truncating='pre'` keeps the last maxlen items, `'post'` the first; `padding='pre'` puts
    `value` before the sequence, `'post'` after it. Values are cast to `dtype` (1.7 → 1).
    `[[1, 2, 3], [4]]` → `[[1, 2, 3], [0, 0, 4]]`.

    Deliberate difference from Keras: a value that `dtype` cannot represent is a ValueError
    naming the value and the dtype — `value=nan` (or inf) into an integer dtype, where Keras
    writes -2147483648, and 300 (or -1) into `'uint8'`, where Keras writes 44 (255) — and so
    is a number too large for a float dtype (1e40 into float32). Whole-number truncation of
    floats into integers (1.7 → 1) is kept, as in Keras.
    """
    if padding not in ('pre', 'post'):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ('pre', 'post'):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    if not hasattr(sequences, '__len__'):
        raise ValueError('`sequences` must be iterable.')
    lengths, sample_shape = [], None
    for s in sequences:
        try:
            lengths.append(len(s))
        except TypeError as error:
            raise ValueError(f'`sequences` must be a list of iterables. '
                             f'Found non-iterable: {s!r}') from error
        if sample_shape is None and len(s):
            sample_shape = np.asarray(s).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        if not lengths:
            raise ValueError('Cannot infer maxlen from an empty list of sequences; pass maxlen.')
        maxlen = max(lengths)
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
        raise TypeError(f'maxlen must be an int or None, got {type(maxlen).__name__} {maxlen!r}')
    if maxlen < 0:
        raise ValueError(f'maxlen must be >= 0, got {maxlen}')
    is_text_dtype = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and np.dtype(dtype) != object and not is_text_dtype:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
                         'You should set `dtype=object` for variable length strings.')
    if not isinstance(value, str):
        _check_representable(np.asarray(value), dtype, 'value')
    # BEGIN EXERCISE pad_sequences
    x = np.full((len(lengths), maxlen) + sample_shape, value, dtype=dtype)
    for row, s in enumerate(sequences):
        if maxlen == 0 or not len(s):
            continue
        kept = s[-maxlen:] if truncating == 'pre' else s[:maxlen]
        kept = _check_representable(np.asarray(kept), dtype, f'sequences[{row}]')
        kept = kept.astype(dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(f'Shape of sample {kept.shape[1:]} of sequence at position {row} '
                             f'is different from expected shape {sample_shape}')
        if padding == 'pre':
            x[row, maxlen - len(kept):] = kept
        else:
            x[row, :len(kept)] = kept
    return x
    # END EXERCISE


def _check_representable(values: np.ndarray, dtype: Any, what: str) -> np.ndarray:
    """`values`, after checking that `dtype` can hold every one of them (integers: finite and
    within its range after truncation; floats: not overflowing to inf); a ValueError names the
    first that cannot be held, `what` holds it, and the dtype."""
    target = np.dtype(dtype)
    if values.dtype.kind not in 'biuf' or target.kind not in 'iuf':
        return values
    if target.kind in 'iu':
        info = np.iinfo(target)
        whole = np.trunc(values) if values.dtype.kind == 'f' else values
        bad = (whole < info.min) | (whole > info.max)
        if values.dtype.kind == 'f':
            bad |= ~np.isfinite(values)
        holds = f'integers from {info.min} to {info.max}'
        wider = 'float32' if values.dtype.kind == 'f' and not np.isfinite(values).all() \
            else 'int64'
    elif values.dtype.kind == 'f' and values.dtype.itemsize <= target.itemsize:
        return values
    else:
        largest = np.finfo(target).max
        bad = np.isfinite(values) & (np.abs(values) > largest)
        holds = f'numbers up to ±{largest:.4g}'
        wider = 'float64'
    if bool(np.any(bad)):
        first = np.asarray(values)[bad].flat[0].item()
        found = f'value={first!r}' if what == 'value' else f'{first!r} in {what}'
        raise ValueError(f'pad_sequences: {found} cannot be represented in dtype {target}, '
                         f"which holds {holds}; pass a dtype that holds it (dtype='{wider}') "
                         f'or change the value — Keras would silently write another number')
    return values
