"""The activations, losses and optimizers added for Keras/PyTorch users (issue 14): each
gradient checked in float64 with a random upstream gradient, each value against its formula,
the stable ones at extreme inputs."""
import math

import numpy as np
import pytest

import minidl as md
import minidl.functions as F
from minidl.functions import elementwise_loss as EL
from minidl.keras import activations, losses, metrics, optimizers


def randn(*shape, seed=0, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return md.tensor(rng.standard_normal(shape) * scale + shift, requires_grad=True,
                     dtype="float64")


# ----------------------------------------------------------------------------- activations
ACTIVATIONS = {
    "elu": (lambda x: F.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    "selu": (F.selu, lambda x: 1.0507009873554805 * np.where(
        x > 0, x, 1.6732632423543772 * np.expm1(x))),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x))),
    "softsign": (F.softsign, lambda x: x / (1 + np.abs(x))),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x))),
    "mish": (F.mish, lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "relu6": (F.relu6, lambda x: np.clip(x, 0, 6)),
    "hard_sigmoid": (F.hard_sigmoid, lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
    "abs": (F.abs, np.abs),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values_follow_the_formula(name):
    fn, reference = ACTIVATIONS[name]
    x = randn(4, 5, scale=4.0)
    np.testing.assert_allclose(fn(x).numpy(), reference(x.numpy()), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(3, 4), (1,), (2, 1, 3)])
def test_activation_gradients_are_checked(name, shape):
    fn, _ = ACTIVATIONS[name]
    x = randn(*shape, seed=len(name), scale=3.0)  # away from the kinks at 0 (and ±2.5, 6)
    assert md.gradcheck(fn, x)


def test_maximum_and_minimum_broadcast_and_split_ties():
    a, b = randn(3, 4), randn(4, seed=1)
    assert md.gradcheck(F.maximum, a, b) and md.gradcheck(F.minimum, a, b)
    x = md.tensor([1.0, 2.0], requires_grad=True)
    y = md.tensor([1.0, 1.0], requires_grad=True)
    F.maximum(x, y).sum().backward()
    assert x.grad.tolist() == [0.5, 1.0] and y.grad.tolist() == [0.5, 0.0]
    assert F.maximum(x, 1.5).tolist() == [1.5, 2.0]


def test_smooth_activations_are_stable_at_extreme_inputs():
    x = md.tensor([-1e4, -50.0, 0.0, 50.0, 1e4], requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        for fn in (F.softplus, F.elu, F.selu, F.silu, F.mish, F.softsign):
            y = fn(x)
            y.sum().backward()
            assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad.numpy()).all()
            x.grad = None
    assert F.softplus(x).numpy()[-1] == 1e4


@pytest.mark.parametrize("name", ["elu", "selu", "softplus", "softsign", "swish", "silu",
                                  "gelu", "hard_sigmoid", "relu6", "leaky_relu", "mish",
                                  "log_softmax"])
def test_keras_activation_names_resolve(name):
    fn = activations.get(name)
    assert fn(md.tensor([[0.5, -0.5]])).shape == (1, 2)


def test_keras2_hard_sigmoid_is_the_piecewise_linear_one():
    assert activations.get("hard_sigmoid")(md.tensor([-3.0, 0.0, 1.0, 3.0])).tolist() == \
        pytest.approx([0.0, 0.5, 0.7, 1.0])


# ----------------------------------------------------------------------------- losses
def _keras_values(name, y, p):
    """The formulas of Keras 2's losses (tf.keras losses.py), in NumPy."""
    eps = 1e-7
    if name == "mape":
        return 100 * np.mean(np.abs((y - p) / np.maximum(np.abs(y), eps)), axis=-1)
    if name == "msle":
        return np.mean((np.log(np.maximum(p, eps) + 1) - np.log(np.maximum(y, eps) + 1)) ** 2,
                       axis=-1)
    signed = 2 * y - 1
    if name == "hinge":
        return np.mean(np.maximum(1 - signed * p, 0), axis=-1)
    if name == "squared_hinge":
        return np.mean(np.maximum(1 - signed * p, 0) ** 2, axis=-1)
    if name == "kld":
        yc, pc = np.clip(y, eps, 1), np.clip(p, eps, 1)
        return np.sum(yc * np.log(yc / pc), axis=-1)
    if name == "poisson":
        return np.mean(p - y * np.log(p + eps), axis=-1)
    if name == "log_cosh":
        return np.mean(np.log(np.cosh(p - y)), axis=-1)
    if name == "huber":
        d = np.abs(p - y)
        return np.mean(np.where(d <= 1, 0.5 * d * d, d - 0.5), axis=-1)
    if name == "cosine_similarity":
        def unit(v):
            return v / np.sqrt(np.maximum((v * v).sum(-1, keepdims=True), 1e-12))
        return -np.sum(unit(y) * unit(p), axis=-1)
    raise KeyError(name)


LOSS_NAMES = ["mape", "msle", "hinge", "squared_hinge", "kld", "poisson", "log_cosh", "huber",
              "cosine_similarity"]


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_keras_losses_by_name_follow_keras2_formulas(name):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (4, 3)).astype("float64") if "hinge" in name else \
        rng.uniform(0.1, 2.0, (4, 3))
    p = rng.uniform(0.05, 1.5, (4, 3))
    got = losses.get(name)(y, md.tensor(p, dtype="float64")).numpy()
    np.testing.assert_allclose(got, _keras_values(name, y, p), rtol=1e-6)


ELEMENTWISE_LOSSES = {
    "clipped_binary_cross_entropy": (EL.clipped_binary_cross_entropy, "probability"),
    "absolute_percentage_error": (EL.absolute_percentage_error, "any"),
    "squared_log_error": (EL.squared_log_error, "positive"),
    "hinge": (EL.hinge, "sign"),
    "squared_hinge": (EL.squared_hinge, "sign"),
    "kl_divergence": (EL.kl_divergence, "probability"),
    "poisson": (EL.poisson, "positive"),
    "log_cosh": (EL.log_cosh, "any"),
    "huber": (EL.huber, "any"),
    "cosine_similarity": (EL.cosine_similarity, "any"),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_LOSSES))
def test_loss_gradients_are_checked(name):
    fn, kind = ELEMENTWISE_LOSSES[name]
    rng = np.random.default_rng(7)
    if kind == "probability":
        p = md.tensor(rng.uniform(0.1, 0.9, (3, 4)), requires_grad=True, dtype="float64")
        y = rng.uniform(0.1, 0.9, (3, 4))
    elif kind == "positive":
        p = md.tensor(rng.uniform(0.2, 3.0, (3, 4)), requires_grad=True, dtype="float64")
        y = rng.uniform(0.2, 3.0, (3, 4))
    elif kind == "sign":
        p = randn(3, 4, seed=2)
        y = rng.choice([-1.0, 1.0], (3, 4))
    else:
        p = randn(3, 4, seed=2, scale=2.0)
        y = rng.standard_normal((3, 4))
    y = md.tensor(y, requires_grad=kind == "any", dtype="float64")
    assert md.gradcheck(fn, p, y)


def test_keras2_binary_crossentropy_at_saturated_probabilities():
    values = losses.binary_crossentropy([[0], [1], [1], [0], [1]],
                                        [[.1], [.8], [1.], [0.], [1e-9]]).numpy()
    np.testing.assert_allclose(values, [0.10536, 0.22314, 0.0, 0.0, 15.4249], atol=1e-4)
    assert values[2] == 0.0 and values[3] == 0.0


def test_log_cosh_does_not_overflow_for_large_differences():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        value = EL.log_cosh(md.tensor([1e4, -1e4]), md.tensor([0.0, 0.0])).numpy()
    np.testing.assert_allclose(value, [1e4 - math.log(2)] * 2)


def test_hinge_reads_zero_one_labels_as_minus_one_one():
    p = np.array([[0.3, -0.8]])
    assert losses.hinge([[1, 0]], p).item() == pytest.approx(losses.hinge([[1, -1]], p).item())


@pytest.mark.parametrize("loss_class", [losses.Huber, losses.LogCosh, losses.KLDivergence,
                                        losses.Poisson, losses.Hinge, losses.SquaredHinge,
                                        losses.MeanAbsolutePercentageError,
                                        losses.MeanSquaredLogarithmicError,
                                        losses.CosineSimilarity])
def test_loss_classes_reduce_to_the_batch_mean(loss_class):
    y, p = np.array([[0.2, 1.0], [1.0, 0.5]]), np.array([[0.3, 0.9], [0.8, 0.6]])
    loss = loss_class()
    assert loss(y, p).item() == pytest.approx(loss.per_sample(y, p).numpy().mean())


# ----------------------------------------------------------------------------- metrics
def test_precision_and_recall_count_over_all_batches():
    y = np.array([1, 0, 1, 1, 0, 0])
    p = np.array([[0.9], [0.8], [0.3], [0.6], [0.2], [0.51]])
    precision, recall = metrics.Precision(), metrics.Recall()
    for lo, hi in ((0, 2), (2, 6)):
        precision.update_state(y[lo:hi], p[lo:hi])
        recall.update_state(y[lo:hi], p[lo:hi])
    assert precision.result() == pytest.approx(2 / 4) and recall.result() == pytest.approx(2 / 3)
    precision.reset_state()
    assert precision.result() == 0.0


def test_auc_matches_the_exact_roc_area_on_separated_thresholds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.round(np.clip(y * 0.3 + rng.uniform(0, 0.7, 200), 0, 1), 2)  # on the 200-grid
    positives, negatives = p[y == 1], p[y == 0]
    exact = ((positives[:, None] > negatives[None, :]).mean()
             + 0.5 * (positives[:, None] == negatives[None, :]).mean())
    auc = metrics.AUC()
    auc.update_state(y, p)
    assert auc.result() == pytest.approx(exact, abs=0.01)


def test_stateful_metrics_log_their_own_results_in_fit_and_evaluate():
    from minidl.keras import layers as L
    from minidl.keras.models import Sequential
    md.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = Sequential([L.Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile("adam", "binary_crossentropy", metrics=["AUC", metrics.Precision(),
                                                          "recall", "mape"])
    history = model.fit(x, y, batch_size=7, epochs=2, validation_split=0.25, verbose=0)
    assert set(history.history) >= {"auc", "precision", "recall", "val_auc", "val_precision"}
    loss, auc, precision, recall, mape = model.evaluate(x, y, batch_size=7, verbose=0)
    p = model.predict(x, verbose=0)
    whole = metrics.AUC()
    whole.update_state(y, p)
    assert auc == pytest.approx(whole.result())
    tp = ((p[:, 0] > 0.5) & (y == 1)).sum()
    assert precision == pytest.approx(tp / (p > 0.5).sum())
    assert recall == pytest.approx(tp / (y == 1).sum())


# ----------------------------------------------------------------------------- optimizers
def _reference_steps(name, grads, lr=0.01, b1=0.9, b2=0.999, eps=1e-7):
    """Keras 2's update rules (tf_keras ≥ 2.11 optimizers), written out in NumPy."""
    theta = np.array([0.5, -0.3])
    m = v = u = np.zeros(2)
    accumulator = np.full(2, 0.1)
    accumulated_delta = np.zeros(2)
    mu_product = 1.0
    for t, g in enumerate(grads, start=1):
        if name == "adagrad":
            accumulator = accumulator + g * g
            theta = theta - lr * g / np.sqrt(accumulator + eps)
        elif name == "adadelta":
            rho = 0.95
            accumulator = rho * (accumulator if t > 1 else 0) + (1 - rho) * g * g
            delta = np.sqrt(accumulated_delta + eps) / np.sqrt(accumulator + eps) * g
            accumulated_delta = rho * accumulated_delta + (1 - rho) * delta * delta
            theta = theta - lr * delta
        elif name == "adamax":
            m = b1 * m + (1 - b1) * g
            u = np.maximum(b2 * u, np.abs(g))
            theta = theta - lr / (1 - b1 ** t) * m / (u + eps)
        elif name == "nadam":
            mu = b1 * (1 - 0.5 * 0.96 ** (0.004 * t))
            mu_next = b1 * (1 - 0.5 * 0.96 ** (0.004 * (t + 1)))
            mu_product *= mu
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat = mu_next * m / (1 - mu_product * mu_next) + (1 - mu) * g / (1 - mu_product)
            theta = theta - lr * m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return theta


@pytest.mark.parametrize("name", ["adagrad", "adadelta", "adamax", "nadam"])
def test_keras_optimizers_follow_keras2_update_rules(name):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(2) for _ in range(5)]
    optimizer = optimizers.get(name)
    optimizer.learning_rate = 0.01
    w = md.nn.Parameter(md.tensor([0.5, -0.3], dtype="float64"))
    optimizer.build([w])
    for g in grads:
        w.grad = md.tensor(g, dtype="float64")
        optimizer.step()
    np.testing.assert_allclose(w.numpy(), _reference_steps(name, grads), rtol=1e-10)


@pytest.mark.parametrize("cls", [md.optim.Adagrad, md.optim.Adadelta, md.optim.Adamax,
                                 md.optim.NAdam])
def test_new_optimizers_minimise_a_quadratic_and_resume(cls):
    w = md.nn.Parameter(md.tensor([3.0, -2.0], dtype="float64"))
    optimizer = cls([w], lr=0.5 if cls is not md.optim.Adadelta else 5.0)
    for _ in range(200):
        optimizer.zero_grad()
        (w * w).sum().backward()
        optimizer.step()
    assert np.abs(w.numpy()).max() < 0.5  # from 3
    other = cls([md.nn.Parameter(md.tensor([3.0, -2.0], dtype="float64"))], lr=0.5)
    other.load_state_dict(optimizer.state_dict())
    assert other.steps == optimizer.steps


def test_pytorch_adamax_puts_eps_inside_the_max():
    w = md.nn.Parameter(md.tensor([1.0], dtype="float64"))
    optimizer = md.optim.Adamax([w], lr=0.1)
    w.grad = md.tensor([0.0], dtype="float64")
    optimizer.step()  # u = max(0, 0 + eps): a finite step of 0
    assert w.numpy()[0] == 1.0


def test_optim_names_pytorch_code_imports():
    from minidl.optim.lr_scheduler import StepLR
    assert md.optim.lr_scheduler.StepLR is StepLR is md.optim.StepLR
    assert md.optim.clip_grad_norm_ is md.optim.clip_grad_norm


# ----------------------------------------------------------------------------- devices
def test_new_ops_run_on_every_device(device):
    """The strict device refuses implicit host copies as CuPy does: the new ops must stay on
    the device of their inputs (forward and backward)."""
    from minidl.functions.batch_norm import batch_norm
    rng = np.random.default_rng(0)
    x = md.tensor(rng.standard_normal((2, 5, 5, 3)), requires_grad=True, dtype="float64",
                  device=device)
    W = md.tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True, dtype="float64",
                  device=device)
    y = F.conv2d(x, W, None, 2, "same")
    y = F.max_pool2d(F.relu6(F.elu(y)), 2, None, "same")
    seq = F.conv1d(x[:, 0], W[0], None, 1, "valid")
    running = md.tensor(np.zeros(4), dtype="float64", device=device).data
    variance = md.tensor(np.ones(4), dtype="float64", device=device).data
    normed = batch_norm(seq, running, variance, training=True)
    p = F.sigmoid(normed)
    total = (y.sum() + F.mish(normed).sum() + F.softsign(normed).sum() + F.silu(normed).sum()
             + EL.log_cosh(p, p * 0.5).sum() + EL.huber(p, p * 0.5).sum()
             + EL.clipped_binary_cross_entropy(p, p * 0 + 1).sum()
             + EL.cosine_similarity(normed, normed + 1).sum() + F.maximum(normed, 0.1).sum())
    total.backward()
    assert x.grad.device == device and W.grad.device == device
    assert np.isfinite(x.grad.numpy()).all()
    lstm = md.nn.LSTM(4, 3, num_layers=2, bidirectional=True, batch_first=True,
                      dtype="float64").to(device)
    outputs, (h, c) = lstm(seq)
    assert outputs.device == device and h.shape == (4, 2, 3)
