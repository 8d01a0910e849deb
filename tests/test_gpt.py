"""The GPT-style language model, its classifier, and LoRA adapters."""
import numpy as np
import pytest

import minidl as md
from minidl import backend, nn
from minidl.models import GPT, GPTClassifier, GPTConfig
from conftest import randn


def tiny_gpt(seed=0, dropout=0.0, vocab=11, context=8):
    md.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, context_length=context, d_model=8, n_layers=2,
                         n_heads=2, dropout=dropout))


def ids(shape, vocab=11, seed=0):
    return np.random.default_rng(seed).integers(1, vocab, shape)


def classifier(body, seed=1):
    """A GPTClassifier with a random head (a fresh head is zero: its logits would not depend
    on the body at all, and tests of the body through it could not fail)."""
    clf = GPTClassifier(body, n_outputs=1, dropout=0.0)
    clf.head.W.data[...] = backend.to_device_array(
        np.random.default_rng(seed).standard_normal(clf.head.W.shape), clf.head.W.device)
    return clf


def test_logits_have_one_row_per_position_and_token():
    model = tiny_gpt()
    assert model(ids((3, 5))).shape == (3, 5, 11)


def test_output_layer_is_tied_to_the_token_embedding():
    model = tiny_gpt()
    names = [n for n, _ in model.named_parameters()]
    assert "tok.W" in names and not any("head" in n or "out" in n for n in names)
    x = ids((2, 4))
    model.loss(x[:, :-1], x[:, 1:]).backward()
    # every row gets gradient through the output layer, not just the rows of the input ids
    assert np.all(np.abs(model.tok.W.grad.numpy()).sum(axis=1) > 0)


def test_gpt_gradcheck_through_the_whole_model():
    model = tiny_gpt().astype("float64")
    x = ids((2, 4))
    params = {k: v for k, v in model.named_parameters() if k in ("tok.W", "pos.W",
                                                                  "block1.attn.qkv.W", "ln_f.weight")}
    assert md.gradcheck(lambda: model.loss(x[:, :-1], x[:, 1:]), wrt=params)


def test_causal_model_does_not_look_ahead():
    model = tiny_gpt()
    a, b = ids((1, 6), seed=1), ids((1, 6), seed=1)
    b[0, 4:] = (b[0, 4:] % 10) + 1
    with md.no_grad():
        np.testing.assert_allclose(model(a).numpy()[:, :4], model(b).numpy()[:, :4], rtol=1e-5)


def test_key_value_cache_gives_the_same_logits_as_the_full_pass():
    model = tiny_gpt()
    x = ids((2, 8), seed=2)
    with md.no_grad():
        full = model(x).numpy()
        caches = [{} for _ in model.blocks]
        parts = [model(x[:, :5], caches, 0).numpy()]
        for t in range(5, 8):
            parts.append(model(x[:, t:t + 1], caches, t).numpy())
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-6)


def test_generation_is_seeded_top_k_limited_and_runs_past_the_context():
    model = tiny_gpt()
    a = model.generate([1, 2, 3], 20, temperature=0.8, top_k=3, seed=5)
    assert a == model.generate([1, 2, 3], 20, temperature=0.8, top_k=3, seed=5)
    assert len(a) == 20 and all(0 <= t < 11 for t in a)
    with md.no_grad():
        top3 = set(np.argsort(model(np.array([[1, 2, 3]])).numpy()[0, -1])[-3:])
    assert a[0] in top3
    with pytest.raises(ValueError, match="temperature"):
        model.generate([1], 2, temperature=0)


def test_perplexity_of_an_untrained_model_is_near_the_vocabulary_size():
    model = tiny_gpt()
    ppl = model.perplexity(ids((200,), seed=3))
    assert 5 < ppl < 25  # uniform guessing over 11 ids gives 11
    with pytest.raises(ValueError, match="more than 8 tokens"):
        model.perplexity(ids((5,)))


def test_training_lowers_the_loss_on_a_repeating_pattern():
    model = tiny_gpt(seed=1)
    opt = md.optim.AdamW(model.parameters(), lr=1e-2)
    x = np.tile(np.arange(1, 5), (4, 3))[:, :9]
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = model.loss(x[:, :-1], x[:, 1:])
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first


def test_state_dict_round_trip_rebuilds_the_same_model(tmp_path):
    model = tiny_gpt(seed=3)
    md.save(model.state_dict(), str(tmp_path / "gpt.npz"))
    other = tiny_gpt(seed=4)
    other.load_state_dict(md.load(str(tmp_path / "gpt.npz")))
    x = ids((1, 5))
    with md.no_grad():
        np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


def test_classifier_pools_only_real_tokens():
    clf = classifier(tiny_gpt())
    x = np.array([[0, 0, 3, 4], [5, 6, 7, 8]])
    assert clf(x).shape == (2, 1)
    clf.eval()
    with md.no_grad():
        alone = clf(np.array([[0, 0, 3, 4]])).numpy()
        np.testing.assert_allclose(clf(x).numpy()[:1], alone, rtol=1e-5)



def test_padding_is_invisible_to_the_real_tokens():
    model = tiny_gpt()
    padded = np.array([[0, 0, 0, 3, 4, 5], [9, 8, 7, 6, 5, 4]])
    with md.no_grad():
        h = model.features(padded, padding_mask=padded != 0).numpy()
        alone = model.features(np.array([[3, 4, 5]])).numpy()
        other = model.features(np.array([[9, 8, 7, 6, 5, 4]])).numpy()
    np.testing.assert_allclose(h[0, 3:], alone[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h[1], other[0], rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(h))                          # padding rows attend to themselves


def test_classifier_logits_do_not_depend_on_padding_or_batch_mates():
    clf = classifier(tiny_gpt())
    clf.eval()
    with md.no_grad():
        short = clf(np.array([[3, 4]])).numpy()
        padded = clf(np.array([[0, 0, 0, 0, 3, 4]])).numpy()
        batch = clf(np.array([[0, 0, 0, 0, 3, 4], [1, 2, 3, 4, 5, 6]])).numpy()
    np.testing.assert_allclose(padded, short, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch[:1], short, rtol=1e-5, atol=1e-6)


def test_classifier_gradcheck_with_padding():
    clf = classifier(tiny_gpt()).astype("float64")
    x = np.array([[0, 0, 3, 4], [0, 5, 6, 7], [1, 2, 3, 4]])
    params = {k: v for k, v in clf.named_parameters() if k in (
        "body.tok.W", "body.pos.W", "body.block0.attn.qkv.W", "head.W")}
    upstream = randn(3, 1, seed=4, requires_grad=False)           # a random cotangent
    assert md.gradcheck(lambda: (clf(x) * upstream).sum(), wrt=params)


def test_a_fresh_classifier_head_starts_at_loss_ln2():
    clf = GPTClassifier(tiny_gpt(), n_outputs=1)
    x, y = ids((4, 5)), md.tensor(np.array([[0.0], [1.0], [1.0], [0.0]]))
    loss = md.functions.binary_cross_entropy_with_logits(clf(x), y)
    assert abs(loss.item() - np.log(2)) < 1e-6


def test_padding_mask_is_checked():
    model = tiny_gpt()
    x = ids((2, 4))
    with pytest.raises(ValueError, match="shape of ids"):
        model.features(x, padding_mask=np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="cache"):
        model.features(x, caches=[{} for _ in model.blocks], padding_mask=x != 0)
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        GPTClassifier(model)(np.array([1, 2, 3]))

# ----------------------------------------------------------------------------- LoRA
def test_lora_starts_as_the_pretrained_layer_and_trains_only_the_adapters():
    md.manual_seed(0)
    base = nn.Linear(6, 4)
    x = randn(3, 6, seed=1, dtype="float32", requires_grad=False)
    before = base(x).numpy()
    lora = nn.LoRALinear(base, r=2, alpha=4.0)
    np.testing.assert_array_equal(lora(x).numpy(), before)          # B = 0
    assert [n for n, p in lora.named_parameters() if p.requires_grad] == ["A", "B"]
    assert lora.A.shape == (6, 2) and lora.B.shape == (2, 4) and lora.scaling == 2.0


def test_lora_gradcheck_of_the_adapters():
    md.manual_seed(0)
    lora = nn.LoRALinear(nn.Linear(5, 3).astype("float64"), r=2, alpha=3.0)
    lora.B.data[...] = backend.to_device(np.random.default_rng(0).standard_normal((2, 3)),
                                         lora.B.device)
    x = randn(4, 5, seed=2)
    assert md.gradcheck(lambda x: lora(x), x, wrt={"A": lora.A, "B": lora.B})


def test_merged_lora_gives_the_same_outputs_as_unmerged():
    md.manual_seed(1)
    lora = nn.LoRALinear(nn.Linear(5, 3).astype("float64"), r=2, alpha=8.0)
    lora.B.data[...] = backend.to_device(np.random.default_rng(1).standard_normal((2, 3)),
                                         lora.B.device)
    x = randn(4, 5, seed=3, requires_grad=False)
    unmerged = lora(x).numpy()
    merged = lora.merge()
    assert isinstance(merged, nn.Linear)
    np.testing.assert_allclose(merged(x).numpy(), unmerged, rtol=1e-12)


def test_apply_lora_wraps_the_named_projections_of_a_gpt_and_merges_back():
    model = tiny_gpt().astype("float64")
    wrapped = nn.apply_lora(model, r=2, alpha=4.0, targets=("qkv", "proj", "fc"))
    assert len(wrapped) == 2 * 4  # per block: attn.qkv, attn.proj, mlp.fc, mlp.proj
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)
    order = [n for n, _ in model.named_parameters()]
    assert order.index("block0.attn.qkv.base.W") < order.index("block0.attn.proj.base.W")
    for _, p in model.named_parameters():
        if p.requires_grad and p.shape[0] == 2:
            p.data[...] = backend.to_device(np.random.default_rng(0).standard_normal(p.shape)
                                            * 0.1, p.device)
    x = ids((2, 5))
    with md.no_grad():
        before = model(x).numpy()
    adapters = nn.lora_state_dict(model)
    assert set(adapters) == {n for n in trainable}
    assert nn.merge_lora(model) == 8
    assert not any(isinstance(m, nn.LoRALinear) for m in model.modules())
    with md.no_grad():
        np.testing.assert_allclose(model(x).numpy(), before, rtol=1e-10)


def test_lora_rank_must_be_positive():
    with pytest.raises(ValueError, match="rank"):
        nn.LoRALinear(nn.Linear(2, 2), r=0)
