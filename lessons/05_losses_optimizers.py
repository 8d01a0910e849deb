# %% [markdown]
# # Lesson 5 — Losses and optimizers
#
# **What you will learn**
# - the losses you will use — mean squared error, binary cross-entropy, softmax cross-entropy —
#   and why each is computed in a **numerically stable** form;
# - the update rules of SGD, SGD with momentum and Adam, each next to the code that runs it;
# - how they behave: trajectories on a narrow valley, and training curves on the digits MLP;
# - gradient clipping and learning-rate schedules.
#
# **Key terms 关键术语**: loss function 损失函数 · mean squared error 均方误差 ·
# binary cross-entropy 二元交叉熵 · logit 对数几率 · numerical stability 数值稳定性 ·
# optimizer 优化器 · stochastic gradient descent (SGD) 随机梯度下降 · momentum 动量 ·
# Adam · learning rate 学习率 · gradient clipping 梯度裁剪 · learning-rate schedule 学习率调度

# %%
import os
import tempfile

import numpy as np
from matplotlib.figure import Figure

import minidl as md
import minidl.functions as F
from minidl import metrics, nn, optim
from minidl.data.datasets import load_digits
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": more epochs on the digits
EPOCHS = {"small": 10, "large": 40}[SIZE]
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson05-")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# ## 1. Losses 损失函数
#
# | loss | formula (per example) | use |
# |---|---|---|
# | mean squared error | (ŷ − y)² | regression |
# | binary cross-entropy | −[y ln p + (1 − y) ln(1 − p)],  p = σ(z) | two classes (one sigmoid output) |
# | softmax cross-entropy | −ln softmax(z)[y] | K classes (K logits) |
#
# All are averaged over the batch. Cross-entropy is the negative log-likelihood of the
# labels: minimising it is maximum-likelihood training.
#
# **Stability.** Computed literally, −ln σ(z) breaks down for a confidently wrong prediction:
# σ(−100) underflows to 0 in float32 and ln 0 = −∞. minidl offers two remedies:
# `F.binary_cross_entropy(p, y)` clips p to [10⁻⁷, 1 − 10⁻⁷] as Keras does (so the loss is at
# most −ln 10⁻⁷ ≈ 16.1), and `F.binary_cross_entropy_with_logits(z, y)` takes the logit z and
# uses the identity −[y ln σ(z) + (1 − y) ln(1 − σ(z))] = max(z, 0) − z·y + ln(1 + e^(−|z|)),
# which never exponentiates a large number and is exact for any z.

# %%
z = md.tensor([-100.0, 0.0, 3.0], requires_grad=True)
y = np.array([1.0, 1.0, 1.0], dtype=np.float32)
with np.errstate(divide="ignore"):
    naive = -F.log(F.sigmoid(z))
print("naive −ln σ(z):           ", naive.numpy())
print("binary_cross_entropy (clipped):",
      F.binary_cross_entropy(F.sigmoid(z), y, reduction="none").numpy())
print("…_with_logits (exact):    ",
      F.binary_cross_entropy_with_logits(z, y, reduction="none").numpy())
F.binary_cross_entropy_with_logits(z, y, reduction="sum").backward()
print("its gradient σ(z) − y:    ", z.grad.numpy())

# %% [markdown]
# **Stable sigmoid, softmax and log-softmax.** The same care goes into the functions under the
# losses. σ(x) = 1/(1 + e⁻ˣ) computes e⁻ˣ, which overflows float32 for x < −88; the equal form
# σ(x) = ½·tanh(x/2) + ½ never exponentiates anything large, and minidl's `sigmoid_array` uses
# it. Softmax is unchanged when the same constant is subtracted from every score (it cancels in
# the ratio), so subtracting the row's maximum m makes every exponent ≤ 0 — no overflow — and
# leaves one term equal to 1 — no division by 0. For its logarithm never take the log of a
# softmax: a probability that underflows to 0 gives −∞. Use log-sum-exp instead:
# log softmax(x)ᵢ = xᵢ − m − ln Σⱼ exp(xⱼ − m).

# %%
scores = np.array([1000.0, 1000.0, 999.0], dtype=np.float32)
with np.errstate(over="ignore", invalid="ignore"):
    naive_softmax = np.exp(scores) / np.exp(scores).sum()
print("naive softmax of [1000, 1000, 999]:", naive_softmax)
print("F.softmax (max subtracted):        ", F.softmax(md.tensor(scores)).numpy().round(4))
with np.errstate(divide="ignore"):
    naive_log = np.log(F.softmax(md.tensor([-1000.0, 0.0])).numpy())
print("log of softmax of [-1000, 0]:", naive_log, "| F.log_softmax:",
      F.log_softmax(md.tensor([-1000.0, 0.0])).numpy())
print("σ(-1000) =", F.sigmoid(md.tensor([-1000.0])).item(), "| σ(1000) =",
      F.sigmoid(md.tensor([1000.0])).item())

# %% [markdown]
# The gradient σ(z) − y is bounded and never zero for a wrong answer, which is why the
# sigmoid + cross-entropy pair trains well. (Squared error on a sigmoid output has gradient
# 2(p − y)·p(1 − p), which vanishes when p saturates at the wrong end.) Softmax cross-entropy
# is the K-class version, with gradient softmax(z) − onehot(y):

# %%
logits = md.tensor([[2.0, 1.0, -1.0], [0.0, 0.0, 0.0]], requires_grad=True)
loss = F.cross_entropy(logits, [0, 2])
loss.backward()
print("cross-entropy:", round(loss.item(), 4), "| gradient (softmax − onehot) / N:")
print(logits.grad.numpy().round(4))
print("mse_loss([1, 2], [1.5, 2]) =", F.mse_loss(md.tensor([1.0, 2.0]), [1.5, 2.0]).item())

# %% [markdown]
# ## 2. Optimizers 优化器
#
# With g = ∂L/∂θ the gradient of the current minibatch and η the learning rate:
#
# - **SGD**: θ ← θ − η g
# - **SGD with momentum** μ: u ← μ u + g,  θ ← θ − η u (a running sum of past gradients: steps
#   grow along directions where gradients agree and cancel where they oscillate)
# - **Adam**: m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g²  (elementwise),
#   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ),  θ ← θ − η m̂ / (√v̂ + ε) — a momentum direction
#   divided by a running RMS of the gradient, so every parameter takes steps of about η
#   whatever the scale of its gradient. The (1 − βᵗ) terms undo the bias of starting m, v at 0.
#   m and v belong to each parameter and persist from step to step (t counts the steps); the
#   gradient g itself is only read — it belongs to whoever computed it.
#
# Where ε goes is a convention: PyTorch adds it to √v̂, as above; Keras (and the paper's
# "efficient" version) adds it to √v, i.e. θ ← θ − η·√(1 − β₂ᵗ)/(1 − β₁ᵗ)·m/(√v + ε). The two
# differ only while v is tiny. minidl follows PyTorch (`optim.Adam(..., epsilon_hat=True)` gives
# Keras' form, which `minidl.keras` uses); the kit exercise `adam_step` grades PyTorch's rule.
#
# `minidl.optim` implements them with PyTorch's rules; each has `step()` (apply the update to
# every parameter that has a `.grad`) and `zero_grad()`.
#
# ### A narrow valley
#
# f(a, b) = a²/50 + b² has its minimum at (0, 0) and is 50 times more curved across the valley
# (b) than along it (a) — like many loss surfaces. Start at (−4, 2) and take 60 steps with each
# optimizer.

# %%
curvature = md.tensor([1 / 50, 1.0])


def run(make_optimizer, steps: int = 60) -> np.ndarray:
    point = nn.Parameter(md.tensor([-4.0, 2.0]))
    optimizer = make_optimizer([point])
    path = [point.numpy()]
    for _ in range(steps):
        value = (curvature * point * point).sum()
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        path.append(point.numpy())
    return np.array(path)


paths = {
    "SGD η=0.9": run(lambda p: optim.SGD(p, lr=0.9)),
    "momentum η=0.5, μ=0.8": run(lambda p: optim.SGD(p, lr=0.5, momentum=0.8)),
    "Adam η=0.1": run(lambda p: optim.Adam(p, lr=0.1)),
}
for name, path in paths.items():
    print(f"{name:<24} distance to the minimum after 60 steps: {np.linalg.norm(path[-1]):.4f}")

figure = Figure(figsize=(7, 4))
axes = figure.add_subplot(1, 1, 1)
a, b = np.meshgrid(np.linspace(-4.5, 1.5, 120), np.linspace(-2.5, 2.5, 100))
axes.contour(a, b, a ** 2 / 50 + b ** 2, levels=15, colors="0.8")
for name, path in paths.items():
    axes.plot(path[:, 0], path[:, 1], ".-", label=name, markersize=3)
axes.plot(0, 0, "k*", markersize=12)
axes.set_title("60 steps on f(a, b) = a²/50 + b²")
axes.set_xlabel("a (the flat direction)")
axes.set_ylabel("b (the steep direction)")
axes.legend(loc="lower right")
figure.tight_layout()
show(figure, os.path.join(OUT, "lesson05_valley.png"))

# %% [markdown]
# SGD's learning rate is capped by the steep direction (above η = 1 it would diverge across
# the valley: each step multiplies b by 1 − 2η), so along the flat direction it crawls — a
# shrinks by only a factor 1 − η/25 per step. Momentum accumulates the consistent push along
# the valley; Adam rescales each coordinate by its own gradient size, so both move at a
# similar pace. You should see SGD still about 0.4 from the minimum after 60 steps, Adam
# within about 0.04 and momentum within about 0.004. (The plot is saved in the output folder.)
#
# ### The digits MLP with three optimizers
#
# The same network as Lesson 4 (with a ReLU hidden layer), the same initial weights and the same
# minibatches, trained for a few epochs by each optimizer at a typical learning rate.

# %%
X_train, y_train = load_digits(split="train")
X_test, y_test = load_digits(split="test")


def train(make_optimizer, epochs: int = EPOCHS, batch_size: int = 32):
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = make_optimizer(model.parameters())
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(X_train))
        total = 0.0
        for first in range(0, len(order), batch_size):
            batch = order[first:first + batch_size]
            loss = F.cross_entropy(model(md.tensor(X_train[batch])), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(X_train))
    with md.no_grad():
        accuracy = metrics.accuracy_score(y_test, model(md.tensor(X_test)).numpy().argmax(1))
    return losses, accuracy


curves = {}
for name, make in (("SGD η=0.05", lambda p: optim.SGD(p, lr=0.05)),
                   ("momentum η=0.05, μ=0.9", lambda p: optim.SGD(p, lr=0.05, momentum=0.9)),
                   ("Adam η=0.001", lambda p: optim.Adam(p, lr=1e-3))):
    curves[name], accuracy = train(make)
    print(f"{name:<24} final training loss {curves[name][-1]:.4f}   test accuracy {accuracy:.4f}")

figure = Figure(figsize=(6, 3.8))
axes = figure.add_subplot(1, 1, 1)
for name, losses in curves.items():
    axes.semilogy(range(1, len(losses) + 1), losses, "o-", label=name)
axes.set_xlabel("epoch")
axes.set_ylabel("training loss (log scale)")
axes.set_title("Digits MLP: three optimizers")
axes.grid(alpha=0.3)
axes.legend()
figure.tight_layout()
show(figure, os.path.join(OUT, "lesson05_optimizers.png"))
print("plots in", OUT)

# %% [markdown]
# You should see momentum reach the lowest training loss in 10 epochs (about 0.06, with about
# 95 % test accuracy), Adam next and plain SGD last. Comparisons like this depend on the
# learning rates chosen: a fair comparison tunes each
# optimizer's η (on a validation set). Adam's appeal is that its default η = 10⁻³ works
# reasonably almost everywhere, which is why Keras' `optimizer='adam'` is the usual first try.
#
# ## 3. Two more tools
#
# **Gradient clipping 梯度裁剪.** If the global norm ‖g‖ = √(Σ over all parameters of Σ g²)
# exceeds a threshold c, scale every gradient by c/‖g‖. Recurrent networks need this: one long
# sequence can produce a huge gradient (Lesson 8). `optim.clip_grad_norm(params, c)` does it
# between `backward()` and `step()` and returns the norm before clipping.
#
# **Learning-rate schedules 学习率调度.** Large steps early, small steps late. Cosine annealing:
# η_t = η_min + (η₀ − η_min)(1 + cos(π t / T)) / 2.

# %%
w = nn.Parameter(md.tensor([3.0, 4.0]))
(w * md.tensor([100.0, 100.0])).sum().backward()
print("gradient norm before clipping:", optim.clip_grad_norm([w], max_norm=1.0),
      "→ after:", round(float(np.linalg.norm(w.grad.numpy())), 4))
optimizer = optim.SGD([w], lr=0.1)
schedule = optim.CosineAnnealingLR(optimizer, T_max=10, eta_min=0.001)
lrs = []
for _ in range(11):
    lrs.append(round(schedule.get_last_lr()[0], 4))
    schedule.step()
print("cosine schedule:", lrs)

# %% [markdown]
# **Summary.** Use cross-entropy for classification, on logits or with clipping; SGD is
# θ ← θ − ηg; momentum and Adam are cheap improvements that matter most on ill-conditioned
# surfaces. Clip gradients for recurrent networks, and decay the learning rate.
#
# **Exercises.** (1) Give SGD η = 1.05 on the valley and watch b. (2) Add
# `optim.SGD(p, lr=0.5, momentum=0.8, nesterov=True)` to the valley. (3) Tune SGD's learning rate
# on the digits until it matches Adam; how many tries did it take?
#
# **Kit exercises for this lesson** (`minidl exercises export kit/`, then `minidl grade kit/`):
# `sigmoid_forward`, `softmax_forward` and `log_softmax_forward` (the stable forms above) and
# `adam_step` (PyTorch's rule).
