"""Pretraining and fine-tuning: the language model learns, weights transfer exactly, freezing
freezes."""

import numpy as np
import pytest

import minidl as md
from minidl.apps import charlm as tr

TEXTS = ["我喜欢编程，编程让我快乐。", "这本书很好看，我很喜欢。", "质量太差了，不喜欢。",
         "服务很好，下次还来。", "东西不错，物流也快。", "太失望了，再也不买了。"] * 8


def small_models(seed=0):
    md.manual_seed(seed)
    tokenizer = tr.build_vocabulary(TEXTS, max_size=60)
    V = tr.vocabulary_size(tokenizer)
    return tokenizer, tr.CharLanguageModel(V, 8, 16, dropout=0.0), \
        tr.SentimentClassifier(V, 8, 16, dropout=0.0)


def test_vocabulary_reserves_padding_and_unknown():
    tokenizer, _, _ = small_models()
    assert tokenizer.word_index["<unk>"] == 1 and 0 not in tokenizer.index_word
    ids = tr.encode_texts(tokenizer, ["我喜欢", "齉"], maxlen=4)
    assert ids.shape == (2, 4) and ids[0, 0] == 0 and ids[1, -1] == 1


def test_encode_stream_ends_each_text_with_a_newline():
    tokenizer, _, _ = small_models()
    stream = tr.encode_stream(tokenizer, ["我", "你"])
    newline = tokenizer.word_index["\n"]
    assert list(stream) == [tokenizer.word_index["我"], newline, 1, newline]


def test_language_model_loss_falls_on_a_small_slice():
    tokenizer, lm, _ = small_models()
    stream = tr.encode_stream(tokenizer, TEXTS)
    before = tr.perplexity(lm, stream, batch_size=4, bptt=16)
    losses = tr.pretrain(lm, stream, steps=200, batch_size=4, bptt=16, lr=2e-2, verbose=0)
    after = tr.perplexity(lm, stream, batch_size=4, bptt=16)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5
    assert after < before / 2


def test_unigram_bias_makes_the_untrained_model_predict_character_frequencies():
    tokenizer, lm, _ = small_models()
    stream = tr.encode_stream(tokenizer, TEXTS)
    before = tr.perplexity(lm, stream, batch_size=4, bptt=16)
    tr.set_unigram_bias(lm, stream)
    counts = np.bincount(stream, minlength=lm.head.out_features) + 1.0
    p = counts / counts.sum()
    np.testing.assert_allclose(np.exp(lm.head.b.numpy()), p, rtol=1e-5)
    assert tr.perplexity(lm, stream, batch_size=4, bptt=16) < before


def test_generate_continues_the_prompt_with_known_characters():
    tokenizer, lm, _ = small_models()
    text = tr.generate(lm, tokenizer, "我喜", length=10, temperature=0.8, seed=1)
    assert text.startswith("我喜") and "<unk>" not in text and len(text) <= 12
    assert text == tr.generate(lm, tokenizer, "我喜", length=10, temperature=0.8, seed=1)
    with pytest.raises(ValueError, match="temperature"):
        tr.generate(lm, tokenizer, "我", temperature=0)


def test_encoder_weights_transfer_exactly_and_are_copies():
    _, lm, clf = small_models()
    tr.transfer_encoder(lm, clf)
    for a, b in ((lm.embedding, clf.embedding), (lm.lstm, clf.lstm)):
        for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
            np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
            assert p.data is not q.data


def test_frozen_encoder_is_bit_identical_after_a_step_and_head_moves():
    tokenizer, lm, clf = small_models()
    tr.transfer_encoder(lm, clf)
    before = {k: v.copy() for k, v in clf.state_dict().items()}
    x = tr.encode_texts(tokenizer, TEXTS[:12], maxlen=12)
    y = np.array([1, 1, 0, 1, 1, 0] * 2)
    tr.fine_tune(clf, x, y, epochs=1, batch_size=12, freeze_epochs=1, verbose=0)
    after = clf.state_dict()
    for name in before:
        if name.startswith(("embedding", "lstm")):
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
        else:
            assert not np.array_equal(after[name], before[name]), name
    assert all(p.requires_grad for p in clf.parameters())  # unfrozen again afterwards


def test_classifier_ignores_pre_padding():
    tokenizer, _, clf = small_models()
    clf.eval()
    short = tr.encode_texts(tokenizer, ["我喜欢编程"], maxlen=5)
    padded = tr.encode_texts(tokenizer, ["我喜欢编程"], maxlen=9)
    np.testing.assert_allclose(tr.predict_proba(clf, short), tr.predict_proba(clf, padded),
                               atol=1e-6)


def test_evaluate_reports_the_standard_metrics():
    tokenizer, _, clf = small_models()
    x = tr.encode_texts(tokenizer, TEXTS[:6], maxlen=8)
    scores = tr.classification_scores(clf, x, [1, 1, 0, 1, 1, 0])
    assert set(scores) == {"accuracy", "precision", "recall", "f1", "confusion_matrix"}
    assert np.array(scores["confusion_matrix"]).sum() == 6
