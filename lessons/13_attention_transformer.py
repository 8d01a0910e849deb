# %% [markdown]
# # Lesson 13 — Attention and the Transformer block, forward and backward (注意力与 Transformer)
#
# **What you will learn**
# - scaled dot-product attention from scratch: scores, the softmax, why 1/√d, the causal mask,
#   and several heads at once;
# - its backward pass derived step by step (dV, dP, the softmax's dS, dQ, dK), written by hand
#   in NumPy and checked against autograd, against `md.gradcheck` and against the fused
#   `F.scaled_dot_product_attention`;
# - layer normalisation and its backward; the GELU activation;
# - the pre-LN Transformer block that GPT stacks, and what the key/value cache saves when
#   generating text.
#
# Lesson 14 pretrains a GPT made of these blocks; Lesson 15 fine-tunes one.
#
# **Key terms 关键术语**: attention 注意力 · self-attention 自注意力 · query / key / value
# 查询 / 键 / 值 · attention score 注意力分数 · scaled dot-product 缩放点积 · causal mask
# 因果掩码 · multi-head attention 多头注意力 · layer normalisation 层归一化 · GELU 高斯误差线性单元 ·
# residual connection 残差连接 · feed-forward network (MLP) 前馈网络 · Transformer block
# Transformer 块 · pre-LN 前置层归一化 · key/value cache (KV cache) 键值缓存 · Jacobian 雅可比矩阵

# %%
import math
import os
import tempfile
import time

import numpy as np
from matplotlib.figure import Figure

import minidl as md
from minidl import functions as F
from minidl import nn
from minidl.functions.attention import attention_reference
from minidl.functions.normalization import layer_norm_reference
from minidl.models.gpt import GPT, GPTConfig
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": a longer generation to time
GENERATE = {"small": 128, "large": 384}[SIZE]           # tokens generated in the KV-cache timing
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson13-")
os.makedirs(OUT, exist_ok=True)
md.manual_seed(0)
rng = np.random.default_rng(0)
np.set_printoptions(precision=3, suppress=True)

# %% [markdown]
# ## 1. Attention 注意力: every position reads from every other
#
# An LSTM (Lesson 8) carries the past in one state vector, step by step. Attention lets each
# position look at all positions directly. Every position t has three vectors, computed from its
# features x_t by three linear maps:
#
# - a **query** q_t (查询): what am I looking for?
# - a **key** k_s (键): what do I contain?
# - a **value** v_s (值): what do I pass on if I am chosen?
#
# Position t scores every position s by the dot product q_t · k_s, turns the scores into weights
# with a softmax, and outputs the weighted mean of the values. For all positions at once, with
# Q, K, V of shape (T, d):
#
#   S = Q Kᵀ / √d          (T, T) scores
#   P = softmax(S)         each row sums to 1: how much t attends to each s
#   O = P V                (T, d): each output row is a mixture of value rows
#
# Written in NumPy, that is three lines:

# %%
def attention_numpy(Q, K, V, mask=None):
    """softmax(Q Kᵀ/√d + mask) V for arrays of shape (..., T, d); returns (O, P)."""
    S = Q @ K.swapaxes(-1, -2) / math.sqrt(Q.shape[-1])
    if mask is not None:
        S = np.where(mask, S, -np.inf)                 # forbidden pairs get weight e^(−∞) = 0
    S = S - S.max(axis=-1, keepdims=True)              # stable softmax (Lesson 5)
    P = np.exp(S)
    P /= P.sum(axis=-1, keepdims=True)
    return P @ V, P


T, d = 6, 8
Q, K, V = (rng.standard_normal((T, d)) for _ in range(3))
O, P = attention_numpy(Q, K, V)
print("attention weights P (rows sum to 1):\n", P)
print("row sums:", P.sum(axis=1))

# %% [markdown]
# **Why divide by √d.** If the entries of q and k are independent with variance 1, their dot
# product is a sum of d such products and has variance d. Without the scaling the scores grow
# like √d, the softmax saturates (one weight near 1, the rest near 0) and its gradient vanishes —
# the same flat-σ problem as in Lesson 8. Dividing by √d keeps the scores' spread at 1 for any d:

# %%
for width in (16, 64, 256):
    q, k = rng.standard_normal((2, 1000, width))
    raw = np.einsum("nd,nd->n", q, k)
    print(f"d = {width:3d}: std of q·k {raw.std():5.1f}, "
          f"of q·k/√d {raw.std() / math.sqrt(width):.2f}")

# %% [markdown]
# ## 2. The causal mask 因果掩码
#
# A language model predicts token t+1 from tokens ≤ t, so position t must not read later
# positions: its scores for s > t are set to −∞ before the softmax (their weights become 0).
# The mask is lower-triangular. minidl's `F.scaled_dot_product_attention` has PyTorch's signature:
# inputs of shape (batch, heads, time, head_dim), `is_causal=True` for this mask, and a boolean
# `attn_mask` is True where attention is *allowed*.

# %%
causal = np.tril(np.ones((T, T), dtype=bool))
O_causal, P_causal = attention_numpy(Q, K, V, causal)
print("causal attention weights (zeros above the diagonal):\n", P_causal)

as_tensor = lambda a: md.tensor(a[None, None], dtype="float64")        # (1, 1, T, d)
fused = F.scaled_dot_product_attention(as_tensor(Q), as_tensor(K), as_tensor(V), is_causal=True)
masked = F.scaled_dot_product_attention(as_tensor(Q), as_tensor(K), as_tensor(V),
                                        attn_mask=causal)
print("F.scaled_dot_product_attention(is_causal=True) vs NumPy:",
      np.abs(fused.numpy()[0, 0] - O_causal).max())
print("attn_mask=lower-triangular booleans vs is_causal=True:    ",
      np.abs(masked.numpy() - fused.numpy()).max())

figure = Figure(figsize=(8, 3.4))
for i, (weights, title) in enumerate(((P, "full attention"), (P_causal, "causal attention"))):
    axes = figure.add_subplot(1, 2, i + 1)
    image = axes.imshow(weights, cmap="Blues", vmin=0, vmax=1)
    axes.set_xlabel("key position s")
    axes.set_ylabel("query position t")
    axes.set_title(title)
figure.colorbar(image, ax=figure.axes)
print("plot:", show(figure, os.path.join(OUT, "lesson13_attention_weights.png")))

# %% [markdown]
# ## 3. Several heads 多头注意力
#
# One softmax can only focus on one kind of relation at a time. **Multi-head attention** splits
# the d_model features into h heads of d_model/h features, runs attention in every head in
# parallel (one batched matmul: shape (batch, heads, time, head_dim)) and joins the heads again
# with an output projection. `nn.MultiHeadSelfAttention` computes Q, K and V with one Linear of
# width 3·d_model (`qkv`) and mixes the heads with `proj`. Here it is again by hand, from its own
# weights:

# %%
B, T, d_model, heads = 2, 5, 16, 4
attention = nn.MultiHeadSelfAttention(d_model, heads)
x = rng.standard_normal((B, T, d_model)).astype(np.float32)

W_qkv, b_qkv = attention.qkv.W.numpy(), attention.qkv.b.numpy()
qkv = x @ W_qkv + b_qkv                                                # (B, T, 3·d_model)
split = lambda a: a.reshape(B, T, heads, d_model // heads).transpose(0, 2, 1, 3)
q, k, v = (split(qkv[..., i * d_model:(i + 1) * d_model]) for i in range(3))
o, _ = attention_numpy(q, k, v, np.tril(np.ones((T, T), dtype=bool)))  # (B, heads, T, d/h)
by_hand = o.transpose(0, 2, 1, 3).reshape(B, T, d_model) @ attention.proj.W.numpy() \
    + attention.proj.b.numpy()
print(attention)
print("by hand vs nn.MultiHeadSelfAttention:",
      np.abs(by_hand - attention(md.tensor(x)).numpy()).max())

# %% [markdown]
# ## 4. The backward pass, step by step 反向传播推导
#
# Given the upstream gradient dO = ∂L/∂O, walk the three forward lines backwards (Lesson 2's
# chain rule, with matrices). Writing s = 1/√d:
#
# **Line 3, O = P V.** A matmul's backward is two matmuls (Lesson 4):
#
#   dV = Pᵀ dO        (T, d)     and     dP = dO Vᵀ        (T, T)
#
# **Line 2, P = softmax(S), row by row.** For one row p = softmax(z), ∂p_i/∂z_j = p_i(δ_ij − p_j):
# the Jacobian is J = diag(p) − p pᵀ. So dz = Jᵀ dp = p ⊙ dp − p (pᵀ dp), i.e.
#
#   dS = P ⊙ (dP − rowsum(dP ⊙ P))
#
# — one elementwise pass, without ever building the T × T Jacobian of each row.
#
# **Line 1, S = s · Q Kᵀ** (the mask adds a constant, so nothing flows through it; masked
# entries have P = 0 and hence dS = 0):
#
#   dQ = s · dS K     and     dK = s · dSᵀ Q
#
# First, the softmax step on one row, against the explicit Jacobian:

# %%
z = rng.standard_normal(5)
p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
dp = rng.standard_normal(5)
J = np.diag(p) - np.outer(p, p)
print("softmax backward, Jacobian vs the one-pass formula:",
      np.abs(J.T @ dp - p * (dp - (dp * p).sum())).max())

# %% [markdown]
# Now the whole backward by hand, in float64, with a causal mask and a random upstream gradient
# (a `sum()` would hide transposition mistakes — Lesson 3):

# %%
T, d = 7, 4
Q, K, V = (rng.standard_normal((T, d)) for _ in range(3))
dO = rng.standard_normal((T, d))
mask = np.tril(np.ones((T, T), dtype=bool))
s = 1 / math.sqrt(d)
O, P = attention_numpy(Q, K, V, mask)

dV = P.T @ dO                                          # line 3
dP = dO @ V.T
dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))   # line 2: the softmax backward
dQ = s * dS @ K                                        # line 1
dK = s * dS.T @ Q
print("dS is zero where the mask forbids attention:", np.all(dS[~mask] == 0))

# %% [markdown]
# Compare with (a) autograd through `attention_reference` — the same forward written with
# primitive ops (matmul, softmax), whose backward autograd assembles from their backwards — and
# (b) the fused `ScaledDotProductAttention` Function behind `F.scaled_dot_product_attention`,
# whose `backward` is exactly the five lines above (read it in `minidl/functions/attention.py`):

# %%
grads = {}
for name, attend in (("reference (autograd)", attention_reference),
                     ("fused Function", F.scaled_dot_product_attention)):
    q, k, v = (md.tensor(a[None, None], dtype="float64", requires_grad=True) for a in (Q, K, V))
    out = attend(q, k, v, is_causal=True)
    out.backward(dO[None, None])
    grads[name] = [t.grad.numpy()[0, 0] for t in (q, k, v)]
    errors = [np.abs(g - mine).max() for g, mine in zip(grads[name], (dQ, dK, dV))]
    print(f"by hand vs {name:<21}: dQ {errors[0]:.1e}  dK {errors[1]:.1e}  dV {errors[2]:.1e}")

# %% [markdown]
# And (c) the numerical check of Lesson 3, on a batch with two heads:

# %%
q, k, v = (md.tensor(rng.standard_normal((2, 2, 5, 3)), dtype="float64", requires_grad=True)
           for _ in range(3))
print("gradcheck, fused attention (causal):",
      md.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
                   q, k, v))

# %% [markdown]
# The fused Function is what the models use: it keeps P from the forward pass and computes the
# backward in five batched matmuls and one pass over P, instead of recording and replaying each
# primitive op. Same numbers, less time and memory:

# %%
q, k, v = (md.tensor(rng.standard_normal((8, 4, 64, 32)), dtype="float32", requires_grad=True)
           for _ in range(3))
g = rng.standard_normal((8, 4, 64, 32)).astype(np.float32)
for name, attend in (("reference", attention_reference),
                     ("fused", F.scaled_dot_product_attention)):
    start = time.perf_counter()
    for _ in range(5):
        attend(q, k, v, is_causal=True).backward(g)
    print(f"{name:9}: {(time.perf_counter() - start) / 5 * 1000:6.1f} ms per forward+backward "
          f"(batch 8, 4 heads, 64 positions)")

# %% [markdown]
# ## 5. Layer normalisation 层归一化
#
# Deep stacks train well only when each layer's inputs stay on a fixed scale. **LayerNorm**
# rescales every token's feature vector on its own (no batch statistics, unlike batch
# normalisation, so it works the same for one sequence or many, in training and generation):
#
#   μ = mean(x),  σ² = mean((x − μ)²),  x̂ = (x − μ)/√(σ² + ε),  y = w ⊙ x̂ + b
#
# with a learned gain w (starts at 1) and bias b (starts at 0). Its backward, with n features
# and g = w ⊙ dy, is
#
#   dx = (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)) / √(σ² + ε),    dw = Σ dy ⊙ x̂,    db = Σ dy
#
# The two subtracted means are the normalisation's own doing: adding a constant to all of x
# does not change x̂ (so dx has mean 0), and neither does scaling x (so dx is orthogonal to x̂).
# By hand, against the fused `F.layer_norm`, the primitive-op `layer_norm_reference`, and
# `md.gradcheck`:

# %%
n = 6
x = rng.standard_normal((3, 4, n)) * 3 + 1
w, b = rng.standard_normal(n), rng.standard_normal(n)
dy = rng.standard_normal(x.shape)
mu = x.mean(-1, keepdims=True)
rstd = 1 / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
x_hat = (x - mu) * rstd
g = w * dy
dx = (g - g.mean(-1, keepdims=True) - x_hat * (g * x_hat).mean(-1, keepdims=True)) * rstd
dw, db = (dy * x_hat).sum(axis=(0, 1)), dy.sum(axis=(0, 1))
print(f"largest |mean(dx)| per token {np.abs(dx.mean(-1)).max():.0e}; largest |dx · x̂| "
      f"{np.abs((dx * x_hat).sum(-1)).max():.0e} (zero but for ε), against |dx| ≈ "
      f"{np.abs(dx).mean():.2f}")

for name, normalise in (("F.layer_norm", F.layer_norm), ("reference", layer_norm_reference)):
    xt, wt, bt = (md.tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b))
    y = normalise(xt, n, wt, bt)
    y.backward(dy)
    print(f"by hand vs {name:<12}: y {np.abs(y.numpy() - (x_hat * w + b)).max():.1e}  "
          f"dx {np.abs(xt.grad.numpy() - dx).max():.1e}  "
          f"dw {np.abs(wt.grad.numpy() - dw).max():.1e}  "
          f"db {np.abs(bt.grad.numpy() - db).max():.1e}")
xt, wt, bt = (md.tensor(a, dtype="float64", requires_grad=True) for a in (x, w, b))
print("gradcheck, F.layer_norm:",
      md.gradcheck(lambda a, c, e: F.layer_norm(a, n, c, e), xt, wt, bt))

# %% [markdown]
# ## 6. GELU
#
# The Transformer's MLP uses **GELU**(x) = x · Φ(x), Φ the standard normal distribution
# function: a smooth ReLU that lets small negative values through a little and has a gradient
# everywhere. GPT-2 used a cheaper tanh approximation, which `F.gelu(x, approximate='tanh')`
# gives (as in PyTorch):

# %%
grid = np.linspace(-4, 4, 401)
exact = F.gelu(md.tensor(grid, dtype="float64")).numpy()
approx = F.gelu(md.tensor(grid, dtype="float64"), approximate="tanh").numpy()
print(f"largest |GELU − tanh approximation| on [−4, 4]: {np.abs(exact - approx).max():.1e}")
xg = md.tensor(rng.standard_normal(20), dtype="float64", requires_grad=True)
print("gradcheck, GELU exact and tanh:", md.gradcheck(F.gelu, xg),
      md.gradcheck(lambda a: F.gelu(a, approximate="tanh"), xg))

figure = Figure(figsize=(5.5, 3.5))
axes = figure.add_subplot(1, 1, 1)
axes.plot(grid, exact, label="GELU  x·Φ(x)")
axes.plot(grid, np.maximum(grid, 0), "--", label="ReLU")
axes.plot(grid, grid / (1 + np.exp(-grid)), ":", label="x·σ(x) (SiLU)")
axes.set_xlabel("x")
axes.grid(alpha=0.3)
axes.legend()
axes.set_title("GELU: a smooth ReLU")
figure.tight_layout()
show(figure, os.path.join(OUT, "lesson13_gelu.png"))

# %% [markdown]
# ## 7. The pre-LN Transformer block
#
# A block is two sub-layers, each wrapped in a **residual connection** (残差连接):
#
#   x = x + Attention(LayerNorm₁(x))      positions exchange information
#   x = x + MLP(LayerNorm₂(x))            each position is transformed on its own
#                                         (MLP: Linear(d, 4d) → GELU → Linear(4d, d))
#
# This is the **pre-LN** arrangement of GPT-2: the normalisation sits *before* each sub-layer,
# so the residual path x → x + … → x + … is an identity plus corrections, and the gradient
# reaches the first block of a deep stack undiminished (the LSTM's cell state had the same
# idea, Lesson 8). The original Transformer normalised *after* the addition ("post-LN"), which
# needs a careful learning-rate warmup to train at all. By hand, from the block's own layers:

# %%
block = nn.TransformerBlock(d_model=16, n_heads=4)
x = md.tensor(rng.standard_normal((2, 5, 16)), dtype="float32")
h = x + block.attn(block.ln1(x))
by_hand = h + block.mlp.proj(F.gelu(block.mlp.fc(block.ln2(h)), approximate="tanh"))
print(block)
print("by hand vs nn.TransformerBlock:", np.abs(by_hand.numpy() - block(x).numpy()).max())
print(f"{block.num_parameters():,} parameters = 12·d² + 13·d for d = 16 "
      f"({12 * 16 ** 2 + 13 * 16:,}): attention 4·d² + 4·d, MLP 8·d² + 5·d, two LayerNorms 4·d")

# %% [markdown]
# Causality survives the whole block: changing the last token changes no earlier output.

# %%
changed = x.numpy().copy()
changed[:, -1] += 1.0
difference = np.abs(block(md.tensor(changed)).numpy() - block(x).numpy()).max(axis=(0, 2))
print("largest change of each position's output after editing the last token:", difference)

# %% [markdown]
# ## 8. The key/value cache 键值缓存
#
# To generate text, a GPT predicts one token, appends it and predicts again. Naively each step
# runs the model on the whole prefix: generating N tokens touches 1 + 2 + … + N ≈ N²/2
# positions in every layer. But with causal attention the keys and values of earlier positions
# never change when a token is appended. So each layer keeps them in a **cache**, and each new
# step runs the model on *one* position: it computes that position's q, k, v, appends k and v
# to the cache, and attends over the cache. The work per step drops from the whole prefix to
# one position (plus one row of attention over the cache), at the price of memory:
# 2 · n_layers · T · d_model numbers per sequence.
#
# `GPT.forward(ids, caches, start)` takes the caches (one dict per block); `GPT.generate` uses
# them. The cached and the naive computation give the same logits:

# %%
md.manual_seed(0)
gpt = GPT(GPTConfig(vocab_size=200, context_length=GENERATE + 8, d_model=128, n_layers=4,
                    n_heads=4, dropout=0.0))
gpt.eval()
ids = list(rng.integers(2, 200, size=GENERATE + 4))
with md.no_grad():
    caches = [{} for _ in gpt.blocks]
    cached = [gpt(np.array([ids[:4]]), caches, 0).numpy()[0, -1]]   # the prompt, at once
    for t in range(4, 12):                                           # then one token per step
        cached.append(gpt(np.array([[ids[t]]]), caches, t).numpy()[0, -1])
    naive = [gpt(np.array([ids[:t + 1]])).numpy()[0, -1] for t in range(3, 12)]
print("largest difference of the next-token logits, cached vs naive:",
      max(np.abs(a - b).max() for a, b in zip(cached, naive)))
print("cache of block 0 after 12 tokens: keys", caches[0]["k"].shape, "and values",
      caches[0]["v"].shape, "(batch, heads, positions, head_dim)")

# %% [markdown]
# And the time it saves, generating greedily from a 4-token prompt:

# %%
def generate(n_tokens, use_cache):
    sequence = list(ids[:4])
    with md.no_grad():
        caches = [{} for _ in gpt.blocks] if use_cache else None
        pending, start = sequence, 0
        for _ in range(n_tokens):
            if use_cache:
                logits = gpt(np.array([pending]), caches, start).numpy()[0, -1]
                start += len(pending)
            else:
                logits = gpt(np.array([sequence])).numpy()[0, -1]
            sequence.append(int(logits.argmax()))
            pending = [sequence[-1]]
    return sequence


timings, tokens = {}, {}
for use_cache in (False, True):
    start = time.perf_counter()
    tokens[use_cache] = generate(GENERATE, use_cache)
    timings[use_cache] = time.perf_counter() - start
    print(f"{'with' if use_cache else 'without'} the cache: {GENERATE} tokens in "
          f"{timings[use_cache]:.2f} s")
print(f"the same tokens: {tokens[False] == tokens[True]}; "
      f"speed-up {timings[False] / timings[True]:.1f}×")

# %% [markdown]
# We saw 2–4× for 128 tokens on our 2-core CPU, depending on what else it was running. The
# speed-up grows with the length generated: the naive cost per token grows with the
# prefix, the cached one hardly at all (only the attention row over the cache grows). In a
# model this small, the fixed cost of each Python call is a large part of a step, so the gain
# here understates what it is for a large model on long texts.
#
# **Summary.** Attention is softmax(QKᵀ/√d)V: a learned, content-based average over positions;
# the causal mask makes it a language model; heads run several attentions side by side. Its
# backward is dV = PᵀdO, dP = dO Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = s·dS K, dK = s·dSᵀQ —
# checked three ways. LayerNorm keeps every token on one scale (its backward removes the mean
# and the x̂ direction), GELU is a smooth ReLU, and a pre-LN block is x + Attn(LN(x)) then
# x + MLP(LN(x)). The KV cache turns generation from quadratic into linear work per layer.
#
# **Exercises.** (1) Remove the 1/√d scaling (pass `scale=1.0`) with head_dim 256: print the
# largest attention weight of each row and the gradient norm. (2) Write the backward for a
# *post*-LN block by hand and compare its gradient at the first of 8 stacked blocks with the
# pre-LN one. (3) Give `F.scaled_dot_product_attention` a float `attn_mask` that adds −1 per
# position of distance (a linear bias, as in ALiBi) and plot the weights.
#
# **Kit exercises for this lesson** (`minidl exercises export kit/`, then `minidl grade kit/`):
# `attention_backward` (§4) and `layer_norm_backward` (§5).
