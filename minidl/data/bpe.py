"""Byte-pair encoding (BPE): subword tokens learned from a corpus.

Characters make short vocabularies and long sequences; words make short sequences and huge
vocabularies full of unknown words. BPE (Sennrich, Haddow & Birch, 2016, after Gage's 1994
compression scheme) sits in between: start from the characters, then repeatedly merge the most
frequent pair of adjacent symbols into a new symbol, until the vocabulary has the size asked
for. Frequent words and word pieces become single tokens (in Chinese reviews: 不错, 质量,
没有 …), rare ones stay split into characters, and no text seen character by character in
training is ever unknown.

    bpe = BPETokenizer().train(texts, num_merges=1000)
    ids = bpe.encode("质量很好，物流也快")        # [..] — fewer ids than characters
    bpe.decode(ids)                               # '质量很好，物流也快'
    bpe.tokenize("质量很好")                      # ['质量', '很好']

Text is first cut into *chunks* that merges never cross: runs of CJK characters, runs of
letters and digits (a Latin word), runs of white space, and single other characters
(punctuation). Decoding joins the tokens, so ``decode(encode(text)) == text`` whenever every
character of ``text`` was seen in training. Id 0 is padding (``pad_sequences``' default value)
and id 1 the unknown character.

This is character-level BPE, as in Sennrich et al.; GPT-2's byte-level variant starts from the
256 byte values instead, so that nothing is ever unknown, at the price of splitting each
Chinese character into three UTF-8 bytes before merging them back.
"""
from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

PAD, UNK = "<pad>", "<unk>"
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CHUNK = re.compile(rf"[{_CJK}]+|[^\W_]+|\s+|.", re.DOTALL)


def chunks(text: str) -> List[str]:
    """``text`` cut into the pieces that merges never cross (they join back to ``text``)."""
    return _CHUNK.findall(text)


class BPETokenizer:
    """A character-level byte-pair-encoding tokenizer.

    ``train`` learns the merges from texts; ``encode``/``decode`` map text to ids and back;
    ``tokenize`` gives the token strings. ``vocab`` maps token -> id (``<pad>`` 0, ``<unk>`` 1,
    the characters, then one token per merge, in the order learned); ``merges`` lists the
    merged pairs in that order.
    """

    def __init__(self) -> None:
        self.vocab: Dict[str, int] = {PAD: 0, UNK: 1}
        self.merges: List[Tuple[str, str]] = []
        self._ranks: Dict[Tuple[str, str], int] = {}
        self._cache: Dict[str, Tuple[str, ...]] = {}

    # ------------------------------------------------------------------ training
    def train(self, texts: Iterable[str], vocab_size: Optional[int] = None,
              num_merges: Optional[int] = None, min_frequency: int = 2) -> "BPETokenizer":
        """Learn merges until the vocabulary has ``vocab_size`` tokens (the two special ones,
        every character of the texts, the merged tokens) — or, with ``num_merges``, until that
        many merges are learned — or no pair occurs ``min_frequency`` times. Returns self.
        (Chinese text brings thousands of characters: 1,000 reviews hold about 2,400, so
        ``num_merges`` is often the easier knob.)

        Each step merges the most frequent adjacent pair (ties: the pair that sorts first), and
        only the chunks that contain it are updated, so training takes seconds on a corpus of
        megabytes.
        """
        if isinstance(texts, str):
            raise TypeError("train() takes a list of texts, not one string")
        if (vocab_size is None) == (num_merges is None):
            raise ValueError("train() takes one of vocab_size= and num_merges=")
        counts: Counter = Counter()
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"train() takes texts (str), got {type(text).__name__}")
            counts.update(chunks(text))
        characters = Counter()
        for chunk, n in counts.items():
            for ch in chunk:
                characters[ch] += n
        self.vocab = {PAD: 0, UNK: 1}
        for ch in sorted(characters, key=lambda c: (-characters[c], c)):
            self.vocab[ch] = len(self.vocab)
        self.merges, self._ranks, self._cache = [], {}, {}
        if num_merges is not None:
            vocab_size = len(self.vocab) + num_merges
        if vocab_size < len(self.vocab):
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(self.vocab)} "
                             f"characters (and 2 special tokens) of the texts; ask for more")

        words = [list(chunk) for chunk in counts if len(chunk) > 1]
        freqs = [counts[chunk] for chunk in counts if len(chunk) > 1]
        pairs: Counter = Counter()
        where: Dict[Tuple[str, str], set] = {}
        for w, (symbols, n) in enumerate(zip(words, freqs)):
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += n
                where.setdefault(pair, set()).add(w)
        heap = [(-n, pair) for pair, n in pairs.items()]
        heapq.heapify(heap)
        while len(self.vocab) < vocab_size and heap:
            n, pair = heapq.heappop(heap)
            if -n != pairs.get(pair, 0):
                continue  # a stale entry: the count changed since it was pushed
            if -n < min_frequency:
                break
            merged = pair[0] + pair[1]
            self._ranks[pair] = len(self.merges)
            self.merges.append(pair)
            if merged not in self.vocab:
                self.vocab[merged] = len(self.vocab)
            changed: Dict[Tuple[str, str], int] = {}
            for w in where.pop(pair, ()):
                symbols, f = words[w], freqs[w]
                new = _merge(symbols, pair, merged)
                if len(new) == len(symbols):
                    continue
                before = Counter(zip(symbols, symbols[1:]))
                after = Counter(zip(new, new[1:]))
                for p, c in before.items():  # only the pairs around each merge change
                    delta = after.get(p, 0) - c
                    if delta:
                        pairs[p] += delta * f
                        changed[p] = pairs[p]
                for p, c in after.items():
                    if p not in before:
                        pairs[p] += c * f
                        changed[p] = pairs[p]
                        where.setdefault(p, set()).add(w)
                words[w] = new
            pairs.pop(pair, None)
            for p, count in changed.items():
                if p != pair and count > 0:
                    heapq.heappush(heap, (-count, p))
        return self

    # ------------------------------------------------------------------ using it
    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary, the special ones included (the Embedding's rows)."""
        return len(self.vocab)

    def _encode_chunk(self, chunk: str) -> Tuple[str, ...]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        symbols = list(chunk)
        while len(symbols) > 1:
            ranked = [(self._ranks.get(p, len(self._ranks)), p) for p in zip(symbols, symbols[1:])]
            rank, pair = min(ranked)
            if rank == len(self._ranks):
                break  # no learned merge applies any more
            symbols = _merge(symbols, pair, pair[0] + pair[1])
        result = tuple(symbols)
        if len(self._cache) < 100_000:
            self._cache[chunk] = result
        return result

    def tokenize(self, text: str) -> List[str]:
        """The tokens of ``text`` as strings (characters never seen in training as they are)."""
        return [token for chunk in chunks(text) for token in self._encode_chunk(chunk)]

    def encode(self, text: str) -> List[int]:
        """The ids of ``text``'s tokens; a character never seen in training is ``<unk>`` (1)."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        unk = self.vocab[UNK]
        return [self.vocab.get(token, unk) for token in self.tokenize(text)]

    def encode_batch(self, texts: Iterable[str]) -> List[List[int]]:
        """``encode`` for each text (ready for ``pad_sequences``)."""
        return [self.encode(text) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``: tokens joined; padding is dropped, ``<unk>`` shown as '�'."""
        inverse = self._inverse()
        out = []
        for i in ids:
            i = int(i)
            if i < 0 or i >= len(inverse):
                raise ValueError(f"decode(): id {i} is outside the vocabulary of "
                                 f"{len(inverse)} tokens")
            if i == self.vocab[PAD]:
                continue
            out.append("\ufffd" if i == self.vocab[UNK] else inverse[i])
        return "".join(out)

    def _inverse(self) -> List[str]:
        inverse = [""] * len(self.vocab)
        for token, i in self.vocab.items():
            inverse[i] = token
        return inverse

    # ------------------------------------------------------------------ saving
    def to_json(self) -> str:
        """The vocabulary and merges as JSON (``BPETokenizer.from_json`` reads it back)."""
        return json.dumps({"kind": "minidl.BPETokenizer", "version": 1, "vocab": self._inverse(),
                           "merges": [list(p) for p in self.merges]}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "BPETokenizer":
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("kind") != "minidl.BPETokenizer":
            raise ValueError("not the JSON of a minidl BPETokenizer")
        tokenizer = cls()
        tokenizer.vocab = {token: i for i, token in enumerate(data["vocab"])}
        tokenizer.merges = [tuple(p) for p in data["merges"]]
        tokenizer._ranks = {p: r for r, p in enumerate(tokenizer.merges)}
        return tokenizer

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


def _merge(symbols: List[str], pair: Tuple[str, str], merged: str) -> List[str]:
    """``symbols`` with every non-overlapping occurrence of ``pair`` (left to right) joined."""
    out, i, n = [], 0, len(symbols)
    first, second = pair
    while i < n:
        if i + 1 < n and symbols[i] == first and symbols[i + 1] == second:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def sequence_lengths(tokenizer: Optional[BPETokenizer], texts: Iterable[str]) -> List[int]:
    """Tokens per text: characters when ``tokenizer`` is None, else its BPE tokens."""
    return [len(text) if tokenizer is None else len(tokenizer.tokenize(text)) for text in texts]
