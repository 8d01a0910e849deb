# %% [markdown]
# # Lesson 4 — The σ(Wx+b) layer, and a multi-layer perceptron on handwritten digits
#
# **What you will learn**
# - the fully-connected layer h = σ(Wx + b), written as a `Module` with two `Parameter`s;
# - how to initialise its weights (Glorot) and why;
# - softmax and cross-entropy for 10 classes;
# - a complete training loop — minibatches, forward, loss, backward, update — written out by hand,
#   on scikit-learn's 8×8 digits, reaching about 95 % test accuracy in a few seconds.
#
# **Key terms 关键术语**: fully-connected (dense) layer 全连接层 · weight 权重 · bias 偏置 ·
# activation function 激活函数 · sigmoid · multi-layer perceptron (MLP) 多层感知机 ·
# initialisation 初始化 · softmax · cross-entropy 交叉熵 · minibatch 小批量 · epoch 轮 ·
# gradient descent 梯度下降 · learning rate 学习率 · training / test set 训练集 / 测试集

# %%
import os
import tempfile
import time

import numpy as np

import minidl as md
import minidl.functions as F
from minidl import metrics, nn, plot
from minidl.data.datasets import load_digits
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": more epochs, a wider layer
EPOCHS, HIDDEN = {"small": (30, 32), "large": (100, 128)}[SIZE]
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson04-")
os.makedirs(OUT, exist_ok=True)
md.manual_seed(0)

# %% [markdown]
# ## 1. The data
#
# 1,797 grey-scale images of 8×8 pixels, digits 0–9, shipped inside scikit-learn. minidl's
# loader scales the pixels to [0, 1] and flattens each image into a row of 64 numbers; a
# stratified, seeded split keeps 20 % of every digit for testing.

# %%
X_train, y_train = load_digits(split="train")
X_test, y_test = load_digits(split="test")
print("train", X_train.shape, X_train.dtype, "| test", X_test.shape,
      "| labels", np.bincount(y_train))
image = X_train[0].reshape(8, 8)
print(f"the first training image (a {y_train[0]}):")
for row in image:
    print("  " + "".join(" .:-=+*#%@"[int(v * 9.99)] for v in row))

# %% [markdown]
# ## 2. The σ(Wx + b) layer 全连接层
#
# One layer maps an input vector x ∈ ℝⁿ to h = σ(Wx + b) ∈ ℝᵐ: each output unit is a weighted sum
# of all inputs plus a bias, squashed by the sigmoid σ(z) = 1 / (1 + e⁻ᶻ). For a **batch** stored
# as rows of X (N × n), the same thing reads H = σ(X W + b) with W of shape (n, m) — this is
# the layout minidl (and Keras) use, so that `X @ W` needs no transposes.
#
# **Initialisation.** If W is too large, Wx lands where σ is flat and gradients vanish; if too
# small, every unit computes nearly the same thing. Glorot (Xavier) initialisation draws
# W ~ U(−a, a) with a = √(6 / (n + m)), which keeps the variance of activations and of gradients
# roughly constant from layer to layer. Biases start at zero.

# %%
class SigmoidLayer(nn.Module):
    """h = σ(x W + b).  Shape: x (N, n_in) -> h (N, n_out)."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator):
        super().__init__()
        a = np.sqrt(6.0 / (n_in + n_out))  # Glorot-uniform bound
        self.W = nn.Parameter(md.tensor(rng.uniform(-a, a, (n_in, n_out)), dtype="float32"))
        self.b = nn.Parameter(md.tensor(np.zeros(n_out), dtype="float32"))

    def forward(self, x: md.Tensor) -> md.Tensor:
        return F.sigmoid(x @ self.W + self.b)


layer = SigmoidLayer(64, 5, np.random.default_rng(0))
print("parameters:", [(name, p.shape) for name, p in layer.named_parameters()])
print("h for two images:", layer(md.tensor(X_train[:2])).shape)

# %% [markdown]
# `nn.Linear(n, m)` is the same affine map x W + b (with the same Glorot initialisation, Keras'
# default) without the σ, so that any activation can follow.
#
# ## 3. A multi-layer perceptron 多层感知机
#
# Stack a hidden σ-layer and an output layer with one score (*logit*) per class:
# z = σ(X W₁ + b₁) W₂ + b₂, of shape (N, 10). Softmax turns scores into probabilities,
# pₖ = exp(zₖ) / Σⱼ exp(zⱼ), and the **cross-entropy** loss is the mean negative log-probability
# of the true class:
#
#   L = −(1/N) Σₙ log pₙ[yₙ] = −(1/N) Σₙ ( zₙ[yₙ] − log Σⱼ exp zₙ[j] )
#
# `F.cross_entropy(logits, labels)` computes it from the logits, through the log-sum-exp form
# (stable for any scores), and its gradient is simply ∂L/∂zₙ = (pₙ − onehot(yₙ)) / N.

# %%
class MLP(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_classes: int):
        super().__init__()
        self.hidden = SigmoidLayer(n_in, n_hidden, np.random.default_rng(1))
        self.out = nn.Linear(n_hidden, n_classes)

    def forward(self, x):
        return self.out(self.hidden(x))   # logits: no softmax here, the loss applies it


model = MLP(64, HIDDEN, 10)
print(model)
print("parameters:", model.num_parameters(), "| loss before training:",
      round(F.cross_entropy(model(md.tensor(X_train)), y_train).item(), 4),
      f"(a uniform guess over 10 classes gives ln 10 = {np.log(10):.4f})")

# %% [markdown]
# ## 4. Training by minibatch gradient descent 梯度下降
#
# Each **epoch** shuffles the training set and walks through it in minibatches of 32. For each
# batch: forward pass, loss, `backward()`, then the update θ ← θ − η ∂L/∂θ for every parameter
# (η is the learning rate), done under `no_grad()` so it is not recorded. Gradients are cleared
# before each backward, because they accumulate (Lesson 2). Lesson 5 replaces the hand-written
# update with `minidl.optim`.

# %%
def accuracy_of(model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with md.no_grad():
        predicted = model(md.tensor(X)).numpy().argmax(axis=1)
    return metrics.accuracy_score(y, predicted)


learning_rate, batch_size = 0.5, 32
rng = np.random.default_rng(0)
history = {"loss": [], "val_loss": [], "accuracy": [], "val_accuracy": []}
start = time.perf_counter()
for epoch in range(1, EPOCHS + 1):
    order = rng.permutation(len(X_train))
    total = 0.0
    for first in range(0, len(order), batch_size):
        batch = order[first:first + batch_size]
        loss = F.cross_entropy(model(md.tensor(X_train[batch])), y_train[batch])
        model.zero_grad()
        loss.backward()
        with md.no_grad():
            for p in model.parameters():
                p.data -= learning_rate * p.grad.data
        total += loss.item() * len(batch)
    with md.no_grad():
        val_loss = F.cross_entropy(model(md.tensor(X_test)), y_test).item()
    history["loss"].append(total / len(X_train))
    history["val_loss"].append(val_loss)
    history["accuracy"].append(accuracy_of(model, X_train, y_train))
    history["val_accuracy"].append(accuracy_of(model, X_test, y_test))
    if epoch == 1 or epoch % max(1, EPOCHS // 6) == 0:
        print(f"epoch {epoch:3d}  loss {history['loss'][-1]:.4f}  train acc "
              f"{history['accuracy'][-1]:.4f}  test acc {history['val_accuracy'][-1]:.4f}")
print(f"{EPOCHS} epochs in {time.perf_counter() - start:.1f} s")
show(plot.training_curves(history, title="MLP on digits"),
     os.path.join(OUT, "lesson04_curves.png"))

# %% [markdown]
# (Here the "validation" curves of the plot are the test set. That is fine for watching a
# fixed recipe train; as soon as you use a held-out set to *choose* something — epochs,
# sizes, learning rates — it must be a validation set separate from the test set, as in
# Lessons 9–11.)
#
# ## 5. What does it get wrong?
#
# **Accuracy** is the fraction of correct predictions. The **confusion matrix** C[i, j] counts
# test images of digit i predicted as j: the diagonal is correct, everything else is a mistake.

# %%
with md.no_grad():
    predicted = model(md.tensor(X_test)).numpy().argmax(axis=1)
print("test accuracy:", round(metrics.accuracy_score(y_test, predicted), 4))
C = metrics.confusion_matrix(y_test, predicted)
print(C)
off_diagonal = C - np.diag(np.diag(C))
i, j = np.unravel_index(off_diagonal.argmax(), C.shape)
print(f"most frequent confusion: {off_diagonal[i, j]} × a {i} taken for a {j}")
show(plot.confusion_matrix(C, title="digits (test)"), os.path.join(OUT, "lesson04_confusion.png"))
print("plots in", OUT)

# %% [markdown]
# **Summary.** A dense layer is σ(XW + b); stacking two gives an MLP; softmax cross-entropy
# trains it for classification; a training loop is forward → loss → zero grads → backward →
# update. With the default settings you should see about 95 % test accuracy after 30 epochs
# (about 96 % with `SIZE = "large"`, a layer of 128 units trained for 100 epochs).
#
# **Exercises.** (1) Replace `F.sigmoid` by `F.relu` in the hidden layer; what learning rate
# works now? (2) Set every initial weight to 0.01: what happens to the hidden units, and why?
# (3) Remove `model.zero_grad()` and watch the loss.
#
# **Kit exercises for this lesson** (`minidl exercises export kit/`, then `minidl grade kit/`):
# `linear_forward` (the dense layer) and `softmax_cross_entropy_backward` (the loss's gradient,
# softmax − onehot).
