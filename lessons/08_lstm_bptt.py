# %% [markdown]
# # Lesson 8 — Recurrent networks, the LSTM cell and back-propagation through time
#
# **What you will learn**
# - the simple recurrent network h_t = tanh(x_t W_x + h_{t−1} W_h + b), and how back-propagation
#   through time multiplies one Jacobian per step — so gradients **vanish** (or explode);
# - the LSTM cell, gate by gate, and why its additive cell state lets gradients survive;
# - that minidl's fast fused LSTM and the readable step-by-step one compute the same thing;
# - masking padded steps, and truncated back-propagation through time.
#
# **Key terms 关键术语**: recurrent neural network (RNN) 循环神经网络 · hidden state 隐藏状态 ·
# long short-term memory (LSTM) 长短期记忆网络 · cell state 细胞状态 · gate 门 ·
# input / forget / output gate 输入门 / 遗忘门 / 输出门 · back-propagation through time (BPTT)
# 随时间反向传播 · vanishing / exploding gradient 梯度消失 / 梯度爆炸 · mask 掩码 ·
# truncated BPTT 截断的随时间反向传播

# %%
import os
import tempfile
import time

import numpy as np
from matplotlib.figure import Figure

import minidl as md
from minidl import nn

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": longer sequences, bigger timing
STEPS, TIMING = {"small": (60, (32, 50, 64)), "large": (120, (64, 100, 128))}[SIZE]
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson08-")
os.makedirs(OUT, exist_ok=True)
md.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A simple recurrent network 循环神经网络
#
# A recurrent layer reads a sequence x_1 … x_T one step at a time and keeps a **hidden state**
# h_t that summarises what it has read so far, with the same weights at every step:
#
#   h_t = tanh(x_t W_x + h_{t−1} W_h + b),    h_0 = 0.
#
# Unrolled over T steps, this is a deep network with T layers that share weights, and
# back-propagation through this unrolled graph is **back-propagation through time (BPTT)**.
# The gradient reaching step t from the last step is a product of T − t Jacobians:
#
#   ∂h_T/∂h_t = Π_{k=t+1..T} diag(1 − h_k²) W_hᵀ.
#
# Each factor has a norm that is usually below 1 (tanh′ ≤ 1, and W_h is initialised orthogonal,
# with norm 1), so the product shrinks geometrically: early steps get almost no gradient, and
# the network cannot learn long-range dependencies. (If the factors are above 1, it explodes
# instead — hence gradient clipping, Lesson 5.)
#
# ## 2. Measuring it
#
# Take a random batch of sequences, a loss that depends only on the **last** state,
# L = Σ g ⊙ h_T for a random g, and look at ‖∂L/∂x_t‖ for every step t:

# %%
B, D, H = 16, 8, 32
x = md.tensor(rng.standard_normal((B, STEPS, D)), dtype="float32", requires_grad=True)
g = rng.standard_normal((B, H)).astype(np.float32)
norms = {}
for name, layer in (("RNN", nn.RNN(D, H)), ("LSTM", nn.LSTM(D, H))):
    x.grad = None
    _, state = layer(x)
    h_last = state[0] if isinstance(state, tuple) else state   # LSTM returns (h, c)
    (h_last * md.tensor(g)).sum().backward()
    per_step = np.linalg.norm(x.grad.numpy(), axis=(0, 2))       # one norm per step
    norms[name] = per_step / per_step[-1]                          # relative to the last step
    print(f"{name:4}: ‖∂L/∂x_t‖ relative to the last step: 10 steps earlier "
          f"{norms[name][-11]:.1e}, at the first step {norms[name][0]:.1e}")

figure = Figure(figsize=(6, 3.8))
axes = figure.add_subplot(1, 1, 1)
for name, values in norms.items():
    axes.semilogy(np.arange(1, STEPS + 1), values, label=name)
axes.set_xlabel("time step t")
axes.set_ylabel("‖∂L/∂x_t‖ / ‖∂L/∂x_T‖ (log scale)")
axes.set_title(f"Gradient reaching each step from h_T (T = {STEPS})")
axes.grid(alpha=0.3)
axes.legend()
figure.tight_layout()
figure.savefig(os.path.join(OUT, "lesson08_gradients.png"), dpi=100)
print("plot:", os.path.join(OUT, "lesson08_gradients.png"))

# %% [markdown]
# On the log scale both curves are straight lines — geometric decay — but with very different
# slopes: you should see the RNN's gradient fall by a factor of about 10⁸–10⁹ over 60 steps and
# the LSTM's by about 10⁵. Even at initialisation the LSTM keeps three orders of magnitude more
# signal from the start of the sequence, and training can push its forget gates (below) towards
# 1 where a long memory pays off — a plain RNN has no such knob.
#
# ## 3. The LSTM cell 长短期记忆
#
# The LSTM adds a **cell state** c_t that is changed only by elementwise multiplication and
# addition, under the control of three **gates** (values in (0, 1)) and a candidate g:
#
#   z = x_t W_x + h_{t−1} W_h + b            (four blocks, in the order i, f, g, o)
#   i = σ(z_i)   input gate     — how much of the candidate to write
#   f = σ(z_f)   forget gate    — how much of the old cell to keep
#   g = tanh(z_g) candidate     — what to write
#   o = σ(z_o)   output gate    — how much of the cell to show
#   c_t = f ⊙ c_{t−1} + i ⊙ g,     h_t = o ⊙ tanh(c_t)
#
# Backwards along the cell-state path, ∂c_t/∂c_{t−1} = diag(f): no squashing and no matrix
# product. When the
# forget gate is near 1 the gradient flows through many steps almost unchanged. That is why the
# forget-gate bias starts at 1 (Keras' `unit_forget_bias`): the cell remembers by default.
#
# `nn.LSTMCell` is that step written with primitive ops (read it in `minidl/nn/recurrent.py`);
# its parameters are W_x (D, 4H), W_h (H, 4H) and b (4H,):

# %%
lstm = nn.LSTM(D, H)
print("parameters:", [(name, p.shape) for name, p in lstm.named_parameters()])
print("forget-gate bias block:", lstm.cell.b.numpy()[H:2 * H][:4], "...")

# %% [markdown]
# ## 4. Fast and readable paths agree
#
# `nn.LSTM` has two implementations. `fast=False` applies `LSTMCell` step by step — T steps of
# small ops, each recorded in the graph. `fast=True` (the default) is one fused `Function` for
# the whole sequence: one big matmul for the input projections of all steps, preallocated
# buffers, and a hand-written backward through time. Same parameters, same numbers:

# %%
x_small = md.tensor(rng.standard_normal((4, 12, D)), dtype="float32", requires_grad=True)
results = {}
for fast in (True, False):
    lstm.fast = fast
    lstm.zero_grad()
    x_small.grad = None
    outputs, (h, c) = lstm(x_small)
    (outputs * md.tensor(np.linspace(-1, 1, H, dtype=np.float32))).sum().backward()
    results[fast] = (outputs.numpy(), x_small.grad.numpy(), lstm.cell.W_h.grad.numpy())
print("largest difference: outputs %.1e, dL/dx %.1e, dL/dW_h %.1e" % tuple(
    np.abs(a - b).max() for a, b in zip(results[True], results[False])))

# %% [markdown]
# The fused backward is also checked numerically (Lesson 3), in float64:

# %%
tiny = nn.LSTM(3, 4)
xs = md.tensor(rng.standard_normal((2, 5, 3)), dtype="float64", requires_grad=True)
print("fused LSTM gradcheck:", md.gradcheck(lambda a: tiny(a)[0], xs,
                                             wrt=dict(tiny.named_parameters())))

# %% [markdown]
# And it is much faster — the reason it exists. Forward + backward on a batch:

# %%
batch, length, hidden = TIMING
x_time = md.tensor(rng.standard_normal((batch, length, hidden)), dtype="float32")
layer = nn.LSTM(hidden, hidden)
for fast in (True, False):
    layer.fast = fast
    start = time.perf_counter()
    for _ in range(3):
        outputs, _ = layer(x_time)
        outputs.sum().backward()
    per_step = (time.perf_counter() - start) / 3
    print(f"fast={fast!s:5}: {per_step * 1000:7.1f} ms per forward+backward "
          f"(batch {batch}, {length} steps, {hidden} units)")

# %% [markdown]
# You should see the fused path about 2–3 times faster here; the gap grows with the number of
# steps, because the step-by-step path pays Python and graph overhead for every small op.
#
# ## 5. Masking padded steps 掩码
#
# Sequences padded with id 0 at the front (Lesson 6) should not be read as real input: after an
# embedding layer, id 0 is a vector like any other. A mask (1 for real steps, 0 for padding)
# makes a padded step leave the state unchanged, so a pre-padded sequence ends in exactly the
# state of the unpadded one:

# %%
lstm.fast = True
embed = nn.Embedding(10, D)
real_ids = np.array([[3, 5, 2, 7, 1]])
padded_ids = np.array([[0, 0, 0, 3, 5, 2, 7, 1]])
mask = padded_ids != 0
_, (h_real, _) = lstm(embed(real_ids))
_, (h_masked, _) = lstm(embed(padded_ids), mask=mask)
_, (h_unmasked, _) = lstm(embed(padded_ids))
print("masked vs unpadded:  ", np.abs(h_masked.numpy() - h_real.numpy()).max())
print("unmasked vs unpadded:", np.abs(h_unmasked.numpy() - h_real.numpy()).max(),
      "(the padding was read as input)")

# %% [markdown]
# In Keras this is `Embedding(..., mask_zero=True)`: id 0 marks padding and the mask is passed
# on to the LSTM (Lesson 9).
#
# ## 6. Truncated BPTT 截断的随时间反向传播
#
# A language model reads a text of millions of characters (Lesson 10). Back-propagating
# through all of it at once is impossible, so the text is read in **windows** of, say, 64
# steps: the final state of one window is the initial state of the next (the model keeps its
# memory), but it is **detached** from the graph (the gradient stops at the window's start):
#
# ```python
# state = None
# for inputs, targets in windows:
#     if state is not None:
#         state = (state[0].detach(), state[1].detach())   # keep the values, cut the graph
#     logits, state = model(inputs, state)
#     loss = F.cross_entropy(logits, targets)
#     optimizer.zero_grad(); loss.backward()
#     optim.clip_grad_norm(model.parameters(), 1.0); optimizer.step()
# ```
#
# `.detach()` returns the same values as a new leaf with no history:

# %%
_, (h_window, c_window) = lstm(x_small)
print("h has a creator:", h_window.creator is not None,
      "| detached:", h_window.detach().creator, h_window.detach().requires_grad)

# %% [markdown]
# **Summary.** An RNN applies one cell T times; BPTT multiplies T Jacobians, so plain RNN
# gradients vanish with distance. The LSTM's gated, additive cell state keeps them alive.
# Mask padding; truncate long texts into windows and detach the state between them.
#
# **Exercises.** (1) Set the LSTM's forget-gate bias to −3 (`lstm.cell.b.data[H:2*H] = -3`) and
# redo the gradient plot. (2) Multiply the RNN's `W_h` by 3: what happens to the gradients?
# (3) Write one GRU step by hand from the formulas in `nn.GRUCell` and compare with it.
