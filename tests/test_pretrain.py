"""``minidl pretrain``: the schedule, the data mixture, checkpoints and exact resume."""
import json
import os

import numpy as np
import pytest

import minidl as md
from minidl.apps import pretrain
from minidl.apps.pretrain import PretrainConfig, Run, learning_rate, sample_batch

TEXTS = {"corpus_train": ["人民日报今天发表社论", "我们要努力学习科学"] * 20,
         "corpus_val": ["今天的天气很好我们学习"] * 4,
         "reviews_train": ["这个手机很好用", "质量太差了不推荐"] * 20,
         "reviews_val": ["手机很好质量不错推荐"] * 4}


def tiny_config(**changes):
    cfg = PretrainConfig(steps=6, batch=3, accumulate=2, lr=1e-2, warmup=2, eval_every=3,
                         eval_windows=2, checkpoint_every=3, vocab=40,
                         model=dict(context_length=6, d_model=8, n_layers=1, n_heads=2,
                                    dropout=0.1))
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg


def test_learning_rate_warms_up_then_decays_by_cosine_to_the_floor():
    cfg = PretrainConfig(steps=100, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert learning_rate(0, cfg) == pytest.approx(0.1)
    assert learning_rate(9, cfg) == pytest.approx(1.0)
    assert learning_rate(55, cfg) == pytest.approx(0.55)        # half way down the cosine
    assert learning_rate(100, cfg) == pytest.approx(0.1)
    assert learning_rate(500, cfg) == pytest.approx(0.1)


def test_batches_mix_the_sources_in_the_asked_proportion():
    a, b = np.full(100, 1, dtype=np.int32), np.full(100, 2, dtype=np.int32)
    batch = sample_batch([a, b], [0.25, 0.75], 4000, 5, np.random.default_rng(0))
    assert batch.shape == (4000, 5) and batch.dtype == np.int64
    assert abs((batch[:, 0] == 2).mean() - 0.75) < 0.03


def test_a_run_writes_its_config_vocabulary_log_and_checkpoint(tmp_path):
    run = Run(str(tmp_path / "run"), tiny_config(), texts=TEXTS, verbose=0)
    result = run.train()
    assert result["step"] == 6 and run.tokens == 6 * 3 * 2 * 6
    files = set(os.listdir(tmp_path / "run"))
    assert {"config.json", "vocab.json", "checkpoint.npz", "log.jsonl"} <= files
    log = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    assert [r["step"] for r in log] == [0, 3, 6]
    assert all(r["ppl_corpus"] > 1 and r["ppl_reviews"] > 1 for r in log)


def test_a_killed_and_resumed_run_follows_the_same_loss_curve(tmp_path):
    straight = Run(str(tmp_path / "straight"), tiny_config(), texts=TEXTS, verbose=0)
    reference = straight.train()["losses"]

    folder = str(tmp_path / "killed")
    first = Run(folder, tiny_config(), texts=TEXTS, verbose=0)
    losses = [first.train_step() for _ in range(3)]
    first.save()                       # the checkpoint written at step 3 ...
    first.train_step()                 # ... then killed during step 4: this work is lost
    del first
    resumed = Run(folder, tiny_config(), texts=TEXTS, verbose=0)
    assert resumed.step == 3
    losses += resumed.train()["losses"]
    assert losses == reference
    for (name, a), (_, b) in zip(straight.model.named_parameters(),
                                 resumed.model.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_a_finished_run_can_be_extended_with_more_steps(tmp_path):
    folder = str(tmp_path / "run")
    Run(folder, tiny_config(steps=3), texts=TEXTS, verbose=0).train()
    run = Run(folder, tiny_config(steps=5), texts=TEXTS, verbose=0)
    assert run.step == 3 and run.cfg.steps == 5
    assert run.train()["step"] == 5


def test_keep_every_keeps_copies_for_the_scaling_curve(tmp_path):
    Run(str(tmp_path / "run"), tiny_config(keep_every=3), texts=TEXTS, verbose=0).train()
    kept = sorted(f for f in os.listdir(tmp_path / "run") if f.startswith("checkpoint-"))
    assert kept == ["checkpoint-000003.npz", "checkpoint-000006.npz"]
    state = md.load(str(tmp_path / "run" / kept[0]))
    assert state["step"] == 3


def test_command_line_refuses_a_negative_step_count(capsys):
    from minidl.cli import main
    assert main(["pretrain", "somewhere", "--steps", "-5"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err


def test_export_writes_a_float16_checkpoint_that_loads_by_name_with_its_provenance(tmp_path):
    from minidl.apps.pretrain import export
    folder = str(tmp_path / "run")
    Run(folder, tiny_config(), texts=TEXTS, verbose=0).train()
    provenance = export(folder, "tiny-test", str(tmp_path / "weights"), texts=TEXTS)
    assert provenance["steps"] == 6 and provenance["weights_dtype"] == "float16"
    assert set(provenance["held_out_perplexity"]) == {"corpus", "reviews"}
    loaded = md.pretrained.load("tiny-test", folder=str(tmp_path / "weights"))
    assert loaded.provenance == provenance
    stored = md.load(str(tmp_path / "weights" / "tiny-test.npz"))
    assert all(v.dtype == np.float16 for v in stored["weights"].values())
    assert loaded.model.tok.W.dtype == np.float32
    run = Run(folder, verbose=0, texts=TEXTS)
    streams = {"corpus": run.streams["corpus_val"], "reviews": run.streams["reviews_val"]}
    check = md.pretrained.check_perplexities(loaded.model, streams)
    assert check == {k: v for k, v in provenance["check_perplexity"].items() if k != "windows"}
    with pytest.raises(ValueError, match="no pretrained checkpoint 'nope'"):
        md.pretrained.load("nope", folder=str(tmp_path / "weights"))


def test_keep_every_keeps_copies_between_regular_checkpoints(tmp_path):
    Run(str(tmp_path / "run"), tiny_config(keep_every=2, checkpoint_every=5), texts=TEXTS,
        verbose=0).train()
    kept = sorted(f for f in os.listdir(tmp_path / "run") if f.startswith("checkpoint-"))
    assert kept == ["checkpoint-000002.npz", "checkpoint-000004.npz", "checkpoint-000006.npz"]
