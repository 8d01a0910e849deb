"""Optimizers match hand-computed updates; clipping, schedules, and exact resumption."""
import math

import numpy as np
import pytest

import minidl as md
from minidl import nn, optim


def param_with_grad(value, grad):
    p = nn.Parameter(md.tensor(value, dtype="float64"))
    p.grad = md.tensor(grad, dtype="float64")
    return p


def test_sgd_step():
    p = param_with_grad([1.0, 2.0], [0.5, -1.0])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.numpy(), [0.95, 2.1])


def test_sgd_momentum_and_nesterov_follow_pytorch():
    for nesterov in (False, True):
        p = param_with_grad([1.0], [1.0])
        opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=nesterov)
        opt.step()      # u = g = 1
        p.grad = md.tensor([2.0], dtype="float64")
        opt.step()      # u = 0.9 + 2 = 2.9
        second = 2.0 + 0.9 * 2.9 if nesterov else 2.9
        first = 1.0 + 0.9 * 1.0 if nesterov else 1.0
        np.testing.assert_allclose(p.numpy(), [1.0 - 0.1 * first - 0.1 * second])


def test_sgd_weight_decay():
    p = param_with_grad([2.0], [0.0])
    optim.SGD([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.numpy(), [2.0 - 0.1 * 0.5 * 2.0])


def adam_reference(theta, grads, lr, b1, b2, eps, keras=False):
    m = v = 0.0
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if keras:
            theta -= lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (math.sqrt(v) + eps)
        else:
            theta -= lr * (m / (1 - b1 ** t)) / (math.sqrt(v / (1 - b2 ** t)) + eps)
    return theta


@pytest.mark.parametrize("keras", [False, True])
def test_adam_matches_hand_computed_steps(keras):
    grads = [0.5, -0.2, 1e-4]
    p = param_with_grad([1.0], [grads[0]])
    opt = optim.Adam([p], lr=0.1, eps=1e-3, epsilon_hat=keras)
    for g in grads:
        p.grad = md.tensor([g], dtype="float64")
        opt.step()
    np.testing.assert_allclose(p.numpy(), [adam_reference(1.0, grads, 0.1, 0.9, 0.999, 1e-3,
                                                          keras)], rtol=1e-12)


def test_adam_defaults_are_pytorchs():
    group = optim.Adam([nn.Parameter(md.tensor([1.0]))]).param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == \
        (1e-3, (0.9, 0.999), 1e-8, 0.0)


def test_adamw_decays_weights_directly():
    p = param_with_grad([2.0], [0.0])
    optim.AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.numpy(), [2.0 * (1 - 0.1 * 0.5)])


def _lazy_adam_reference(theta, m, v, grads, lr=0.1, b1=0.9, b2=0.999, eps=1e-8):
    """Lazy Adam row by row, from its definition: a row moves only in steps where its
    gradient is not zero."""
    theta, m, v = theta.copy(), m.copy(), v.copy()
    for t, g in enumerate(grads, start=1):
        for r in range(len(theta)):
            if not np.any(g[r]):
                continue
            m[r] = b1 * m[r] + (1 - b1) * g[r]
            v[r] = b2 * v[r] + (1 - b2) * g[r] ** 2
            theta[r] -= lr * (m[r] / (1 - b1 ** t)) / (np.sqrt(v[r] / (1 - b2 ** t)) + eps)
    return theta


def test_sparse_adam_updates_only_the_rows_in_the_batch():
    rng = np.random.default_rng(0)
    theta = rng.standard_normal((5, 3))
    grads = [rng.standard_normal((5, 3)) * np.array([[1], [0], [1], [0], [1]]),
             rng.standard_normal((5, 3)) * np.array([[0], [1], [1], [0], [0]])]
    p = param_with_grad(theta, grads[0])
    opt = optim.SparseAdam([p], lr=0.1)
    for g in grads:
        p.grad = md.tensor(g, dtype="float64")
        opt.step()
    np.testing.assert_allclose(p.numpy(), _lazy_adam_reference(theta, 0 * theta, 0 * theta,
                                                               grads), rtol=1e-12)
    np.testing.assert_array_equal(p.numpy()[3], theta[3])        # never in a batch
    # rows in every batch follow dense Adam exactly; a row that sat out a step does not
    dense = param_with_grad(theta, grads[0])
    dense_opt = optim.Adam([dense], lr=0.1)
    for g in grads:
        dense.grad = md.tensor(g, dtype="float64")
        dense_opt.step()
    np.testing.assert_allclose(p.numpy()[2], dense.numpy()[2], rtol=1e-12)
    assert not np.allclose(p.numpy()[0], dense.numpy()[0])


def test_sparse_adam_trains_an_embedding_and_resumes_exactly(tmp_path):
    md.manual_seed(0)
    emb = nn.Embedding(50, 4)
    ids = np.random.default_rng(1).integers(0, 50, (6, 3))
    opt = optim.SparseAdam(emb.parameters(), lr=0.05)

    def step():
        opt.zero_grad()
        (emb(ids) ** 2).sum().backward()
        opt.step()
    before = emb.W.numpy().copy()
    step()
    untouched = np.setdiff1d(np.arange(50), ids)
    np.testing.assert_array_equal(emb.W.numpy()[untouched], before[untouched])
    md.save_checkpoint(str(tmp_path / "ck.npz"), emb, opt)
    step(), step()
    expected = emb.W.numpy().copy()
    md.load_checkpoint(str(tmp_path / "ck.npz"), emb, opt)
    step(), step()
    np.testing.assert_array_equal(emb.W.numpy(), expected)


def test_rmsprop_step():
    p = param_with_grad([1.0], [2.0])
    optim.RMSprop([p], lr=0.01, alpha=0.9, eps=0.0).step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.01 * 2.0 / math.sqrt(0.1 * 4.0)])


def test_rmsprop_with_epsilon_inside_the_root_as_keras():
    p = param_with_grad([1.0], [2.0])
    optim.RMSprop([p], lr=0.01, alpha=0.9, eps=0.5, eps_inside_sqrt=True).step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.01 * 2.0 / math.sqrt(0.1 * 4.0 + 0.5)])


def test_parameter_groups_have_their_own_learning_rates():
    a, b = param_with_grad([1.0], [1.0]), param_with_grad([1.0], [1.0])
    optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b]}], lr=0.01).step()
    np.testing.assert_allclose([a.item(), b.item()], [0.9, 0.99])


def test_frozen_parameters_are_not_updated():
    p = param_with_grad([1.0], [1.0])
    p.requires_grad = False
    optim.Adam([p]).step()
    assert p.item() == 1.0


def test_clip_grad_norm_scales_all_gradients_together():
    a, b = param_with_grad([0.0], [3.0]), param_with_grad([0.0], [4.0])
    total = optim.clip_grad_norm([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose([a.grad.item(), b.grad.item()], [0.6, 0.8], rtol=1e-5)


def test_clip_grad_value():
    p = param_with_grad([0.0, 0.0], [3.0, -0.5])
    optim.clip_grad_value([p], 1.0)
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, -0.5])


def test_schedules():
    opt = optim.SGD([nn.Parameter(md.tensor([1.0]))], lr=1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        step.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    opt.param_groups[0]["lr"] = 1.0
    cosine = optim.CosineAnnealingLR(opt, T_max=4)
    for _ in range(2):
        cosine.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)
    opt.param_groups[0]["lr"] = 1.0
    warm = optim.LinearWarmup(opt, warmup_steps=4)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
    for _ in range(5):
        warm.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)


def make_model_and_data(seed=0):
    md.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    rng = np.random.default_rng(seed)
    return model, md.tensor(rng.standard_normal((16, 4)), dtype="float32"), \
        rng.standard_normal((16, 1))


def train_steps(model, opt, x, y, n):
    for _ in range(n):
        opt.zero_grad()
        md.functions.mse_loss(model(x), y.astype(np.float32)).backward()
        opt.step()


@pytest.mark.parametrize("make_opt", [lambda p: optim.Adam(p, lr=0.01),
                                      lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
                                      lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5)],
                         ids=["adam", "sgd", "rmsprop"])
def test_resuming_from_a_checkpoint_continues_exactly(make_opt, tmp_path):
    model, x, y = make_model_and_data()
    opt = make_opt(model.parameters())
    train_steps(model, opt, x, y, 3)
    md.save_checkpoint(str(tmp_path / "ck.npz"), model, opt, epoch=3)
    train_steps(model, opt, x, y, 4)
    expected = model.state_dict()

    resumed, _, _ = make_model_and_data(seed=1)
    opt2 = make_opt(resumed.parameters())
    assert md.load_checkpoint(str(tmp_path / "ck.npz"), resumed, opt2)["epoch"] == 3
    train_steps(resumed, opt2, x, y, 4)
    for name, value in resumed.state_dict().items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_mlp_of_sigmoid_layers_learns_digits_or_xor():
    try:
        from minidl.data.datasets import load_digits
        X, y = load_digits(split="train")
    except ImportError:
        X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
        y = np.array([0, 1, 1, 0])
    md.manual_seed(0)
    classes = int(y.max()) + 1
    model = nn.Sequential(nn.Linear(X.shape[1], 32), nn.Sigmoid(), nn.Linear(32, classes))
    opt = optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(60 if len(X) > 4 else 500):
        order = np.random.default_rng(epoch).permutation(len(X))
        for start in range(0, len(X), 64):
            batch = order[start:start + 64]
            opt.zero_grad()
            md.functions.cross_entropy(model(md.tensor(X[batch])), y[batch]).backward()
            opt.step()
    with md.no_grad():
        accuracy = (model(md.tensor(X)).numpy().argmax(1) == y).mean()
    assert accuracy > 0.95
