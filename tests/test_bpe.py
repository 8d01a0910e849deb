"""minidl.data.BPETokenizer: byte-pair encoding learned from a corpus."""
import numpy as np
import pytest

from minidl.data import BPETokenizer, pad_sequences
from minidl.data.bpe import chunks, sequence_lengths

SENNRICH = ["low " * 5 + "lower " * 2 + "newest " * 6 + "widest " * 3]


def test_the_most_frequent_pair_is_merged_first():
    """Sennrich et al.'s example: 'es' (9 times) then 'est', then 'lo', 'low'."""
    bpe = BPETokenizer().train(SENNRICH, num_merges=4)
    assert bpe.merges == [("e", "s"), ("es", "t"), ("l", "o"), ("lo", "w")]
    assert bpe.tokenize("lowest") == ["low", "est"]


def test_vocab_size_counts_the_special_tokens_the_characters_and_the_merges():
    bpe = BPETokenizer().train(SENNRICH, vocab_size=16)
    characters = len(set(SENNRICH[0]))
    assert bpe.vocab_size == 16 == 2 + characters + len(bpe.merges)
    assert bpe.vocab["<pad>"] == 0 and bpe.vocab["<unk>"] == 1
    with pytest.raises(ValueError, match="smaller than"):
        BPETokenizer().train(SENNRICH, vocab_size=5)
    with pytest.raises(ValueError, match="one of"):
        BPETokenizer().train(SENNRICH)


def test_merges_stop_at_min_frequency():
    bpe = BPETokenizer().train(["ab ab cd"], num_merges=10, min_frequency=2)
    assert bpe.merges == [("a", "b")]


def test_decode_inverts_encode_and_unknown_characters_are_unk():
    texts = ["质量很好，物流也快。", "质量不错，价格也不错！", "物流太慢了，质量一般。"] * 3
    bpe = BPETokenizer().train(texts, num_merges=20)
    for text in texts:
        assert bpe.decode(bpe.encode(text)) == text
    assert "质量" in bpe.vocab and "不错" in bpe.vocab and len(bpe.tokenize("质量很好")) < 4
    ids = bpe.encode("质量🙂")
    assert ids[-1] == 1 and bpe.decode(ids) == "质量\ufffd"
    assert bpe.decode([0, 0] + bpe.encode("很好")) == "很好"  # padding is dropped
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([bpe.vocab_size])


def test_merges_never_cross_chunks():
    assert chunks("我喜欢 deep learning，真的!") == ["我喜欢", " ", "deep", " ", "learning", "，",
                                                "真的", "!"]
    bpe = BPETokenizer().train(["好。好。好。好。"], num_merges=5)
    assert all("。" not in token or token == "。" for token in bpe.vocab)


def test_bpe_sequences_are_shorter_than_characters_and_pad():
    texts = ["这家酒店的服务不错，房间也很干净。", "酒店房间太小，服务一般。",
             "服务很好，下次还住这家酒店。"] * 5
    bpe = BPETokenizer().train(texts, num_merges=30)
    assert sum(sequence_lengths(bpe, texts)) < 0.7 * sum(sequence_lengths(None, texts))
    x = pad_sequences(bpe.encode_batch(texts[:3]), maxlen=12)
    assert x.shape == (3, 12) and x.dtype == np.int32 and x.max() < bpe.vocab_size


def test_training_is_deterministic_and_survives_json():
    texts = ["abcabcab", "bcabca", "cabcab ab"]
    first = BPETokenizer().train(texts, num_merges=6)
    second = BPETokenizer().train(list(reversed(texts)), num_merges=6)
    assert first.merges == second.merges
    loaded = BPETokenizer.from_json(first.to_json())
    assert loaded.vocab == first.vocab and loaded.merges == first.merges
    assert loaded.encode("cabbage") == first.encode("cabbage")
    with pytest.raises(ValueError):
        BPETokenizer.from_json('{"kind": "other"}')


def test_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match="list of texts"):
        BPETokenizer().train("one string", num_merges=2)
    with pytest.raises(TypeError, match="takes a str"):
        BPETokenizer().encode(["not", "a", "string"])
