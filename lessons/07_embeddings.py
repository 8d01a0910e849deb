# %% [markdown]
# # Lesson 7 — Embeddings
#
# **What you will learn**
# - an embedding layer is a lookup table: row `id` of a weight matrix W — the same as a one-hot
#   vector times W, without ever building the one-hot vector;
# - its backward pass: gradients are **added** into the rows that were used (a character used
#   twice gets both contributions), the padding row gets none;
# - a first text classifier on real reviews: the average of its characters' embeddings, then a
#   logistic-regression output — and what the learned vectors mean.
#
# **Key terms 关键术语**: embedding 嵌入 / 词向量 · lookup table 查找表 · one-hot encoding
# 独热编码 · embedding dimension 嵌入维度 · padding index 填充索引 · mean pooling 平均池化 ·
# bag of words 词袋模型 · logistic regression 逻辑回归 · cosine similarity 余弦相似度

# %%
import os
import tempfile
import time

import numpy as np

import minidl as md
import minidl.functions as F
from minidl import metrics, nn, optim
from minidl.data.datasets import load_reviews
from minidl.data import pad_sequences
from minidl.data import Tokenizer

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": all 13,891 training reviews
N_TRAIN, EPOCHS = {"small": (3000, 8), "large": (None, 10)}[SIZE]
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson07-")
os.makedirs(OUT, exist_ok=True)
md.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A lookup table 查找表
#
# A vocabulary of V tokens and vectors of dimension d: W has shape (V, d), and the embedding of
# token i is its i-th row, eᵢ = W[i]. Written as linear algebra, eᵢ = onehot(i)ᵀ W: multiplying
# by a one-hot vector picks a row. The lookup gives the same numbers at a fraction of the cost
# (no V-long vectors, no multiplications by zero):

# %%
V, d = 6, 3
embedding = nn.Embedding(V, d)
ids = np.array([[2, 0, 5], [2, 2, 1]])           # a batch of 2 sequences of 3 ids
looked_up = embedding(ids)                        # (2, 3) ids -> (2, 3, d)
one_hot = np.eye(V, dtype=np.float32)[ids]        # (2, 3, V)
multiplied = md.tensor(one_hot) @ embedding.W     # (2, 3, V) @ (V, d)
print("shapes:", ids.shape, "->", looked_up.shape)
print("lookup == one-hot @ W:", np.allclose(looked_up.numpy(), multiplied.numpy()))

# %% [markdown]
# ## 2. The backward pass: gradients add up in the rows used
#
# Since e = onehot(i)ᵀ W, the gradient of the loss with respect to W is
# ∂L/∂W = Σ over positions p of onehot(idₚ) (∂L/∂eₚ)ᵀ — each position adds its upstream gradient
# into row idₚ. Id 2 appears three times above, so row 2 gets the sum of three gradients;
# ids 3 and 4 do not appear, so their rows get zero.

# %%
upstream = rng.standard_normal((2, 3, d)).astype(np.float32)
looked_up.backward(upstream)
print("row 2 of W.grad:           ", embedding.W.grad.numpy()[2])
print("sum of its three gradients:", upstream[0, 0] + upstream[1, 0] + upstream[1, 1])
print("rows 3 and 4:", embedding.W.grad.numpy()[3:5].tolist())

# %% [markdown]
# (On the CPU this is `np.add.at(W_grad, ids, upstream)`; a plain `W_grad[ids] += upstream`
# would keep only *one* of the repeated contributions — a classic bug. On a GPU, CuPy has the
# same `add.at`.)
#
# **Padding.** With `padding_idx=0`, id 0 (the padding of `pad_sequences`) maps to a zero
# vector and its row never receives a gradient, so padding cannot learn to mean something.
# **Out-of-range ids are errors**, never silently wrapped (NumPy would read `W[-1]` as the
# last row):

# %%
padded = nn.Embedding(V, d, padding_idx=0)
print("embedding of id 0 with padding_idx=0:", padded(np.array([0])).numpy())
try:
    embedding(np.array([1, 6]))
except IndexError as error:
    print("IndexError:", error)

# %% [markdown]
# ## 3. A bag-of-characters classifier 词袋模型
#
# The simplest use of embeddings for text: represent a review by the **average** of its
# characters' vectors (ignoring order — a "bag" of characters), then a logistic regression:
#
#   r = (1/|T|) Σ_{t ∈ T} W[id_t],    P(positive) = σ(r·w + b),
#
# where T are the non-padding positions. Trained end to end, the embeddings arrange themselves
# so that averaging is useful for the task.

# %%
reviews = load_reviews()
train_texts, y_train = reviews.train.texts[:N_TRAIN], reviews.train.labels[:N_TRAIN]
val_texts, y_val = reviews.val.texts, reviews.val.labels
tokenizer = Tokenizer(num_words=3000)
tokenizer.fit_on_texts(train_texts)
MAXLEN = 100
x_train = pad_sequences(tokenizer.texts_to_sequences(train_texts), maxlen=MAXLEN)
x_val = pad_sequences(tokenizer.texts_to_sequences(val_texts), maxlen=MAXLEN)
print(f"{len(x_train)} training and {len(x_val)} validation reviews, ids {x_train.shape}")


class BagOfCharacters(nn.Module):
    """Mean of the character embeddings, then one logit.  ids (B, T) -> logits (B, 1)."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.out = nn.Linear(dim, 1)

    def forward(self, ids: np.ndarray) -> md.Tensor:
        summed = self.embedding(ids).sum(axis=1)               # padding rows are zero
        counts = np.maximum((ids != 0).sum(axis=1, keepdims=True), 1).astype(np.float32)
        return self.out(summed / md.tensor(counts))


model = BagOfCharacters(3000, 16)
optimizer = optim.Adam(model.parameters(), lr=3e-3)
start = time.perf_counter()
for epoch in range(1, EPOCHS + 1):
    order = rng.permutation(len(x_train))
    for first in range(0, len(order), 32):
        batch = order[first:first + 32]
        loss = F.binary_cross_entropy_with_logits(
            model(x_train[batch]), y_train[batch].reshape(-1, 1).astype(np.float32))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with md.no_grad():
        predicted = (model(x_val).numpy().ravel() > 0).astype(int)   # logit > 0  <=>  p > 0.5
    if epoch in (1, EPOCHS // 2, EPOCHS):
        print(f"epoch {epoch}: validation accuracy {metrics.accuracy_score(y_val, predicted):.4f}")
print(f"trained in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# A model that ignores word order entirely gets most reviews right — you should see about
# 0.77 validation accuracy — because many characters carry sentiment on their own.
# (`SIZE = "large"` trains on all 13,891 training reviews, for about 0.78–0.79.)
#
# ## 4. What did the embeddings learn?
#
# The output weight w is a direction in embedding space; a character's score eᵢ·w says how
# much it pushes a review towards "positive". Among the 500 most frequent characters (rarer ones
# have had too few updates to mean much):

# %%
W = model.embedding.W.numpy()
w = model.out.W.numpy().ravel()
frequent = [(c, i) for c, i in tokenizer.word_index.items() if i <= 500]
scores = sorted((float(W[i] @ w), c) for c, i in frequent)
print("most negative:", " ".join(c for _, c in scores[:15]))
print("most positive:", " ".join(c for _, c in scores[-15:][::-1]))

# %% [markdown]
# **Similar characters have similar vectors.** Cosine similarity, cos(a, b) = a·b / (‖a‖‖b‖),
# is 1 for vectors pointing the same way. Nearest neighbours of a few characters:

# %%
unit = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-8)
frequent_ids = np.array([i for _, i in frequent])
for character in ("好", "差", "贵", "脏"):
    i = tokenizer.word_index[character]
    similarity = unit[frequent_ids] @ unit[i]
    nearest = [tokenizer.index_word[int(j)] for j in frequent_ids[np.argsort(-similarity)]
               if j != i][:8]
    print(f"{character}: {' '.join(nearest)}")

# %% [markdown]
# You should see clear sentiment words at both ends: 差 "bad", 失 (失望 "disappointed"),
# 太 "too (much)", 烦 "annoying", 慢 "slow" on the negative side; 错 (不错 "not bad", i.e.
# good), 爱 "love", 美 "beautiful", 漂 (漂亮 "pretty"), 值 (值得 "worth it") on the positive
# side. The neighbours are much noisier. Trained on sentiment alone, the vectors only need to
# encode one thing — which way a character pushes a review — so neighbours share a sentiment
# at best (差's include 太 and 失) and are otherwise close to random. Embeddings trained to
# *predict text* (the language model of Lesson 10) have a reason to encode more general
# similarity — which is the idea behind pretraining.
#
# **Summary.** An embedding is a trainable table; looking up is multiplying by one-hot vectors;
# gradients add into the rows used. Averaging embeddings gives a fast, order-blind baseline;
# Lesson 8 adds order with a recurrent network.
#
# **Exercises.** (1) Replace the mean by the sum (no division): what happens to long reviews?
# (2) Try `dim = 2` and plot the vectors of the 100 most frequent characters. (3) Order is
# ignored: why does 错 ("wrong") come out as a *positive* character, and what happens to 不?
