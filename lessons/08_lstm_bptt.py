# %% [markdown]
# # Lesson 8 — Recurrent networks, the LSTM cell and back-propagation through time
#
# **What you will learn**
# - the simple recurrent network h_t = tanh(x_t W_x + h_{t−1} W_h + b), and how back-propagation
#   through time multiplies one Jacobian per step — so gradients **vanish** (or explode);
# - the LSTM cell, gate by gate, and why its additive cell state lets gradients survive;
# - the backward pass written out: BPTT for the simple RNN and the gradients of one LSTM step;
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
from _notebook import show  # saves a figure; in a notebook it is also shown inline

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
print("plot:", show(figure, os.path.join(OUT, "lesson08_gradients.png")))

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
# ## 4. The backward pass, derived 反向传播推导
#
# Autograd derives all of this for `fast=False`; the fused path (and the kit exercises
# `rnn_bptt` and `lstm_cell_backward`) needs it written out. Only the chain rule is used, one
# node at a time, with the upstream gradients written ḡ.
#
# **BPTT for the simple RNN.** The loss may depend on every hidden state, so let
# ḡ_t = ∂L/∂h_t be the gradient that reaches h_t *directly* (from step t's output). But h_t
# also feeds step t + 1, so its total gradient has two shares:
#
#   δh_t = ḡ_t + (what step t + 1 sends back),        δh_T = ḡ_T   (nothing after the last step).
#
# Going back through step t, h_t = tanh(z_t) with z_t = x_t W_x + h_{t−1} W_h + b:
#
#   δz_t = δh_t ⊙ (1 − h_t²)                  (tanh′ written with its output)
#   ∂L/∂x_t = δz_t W_xᵀ,    what goes back to h_{t−1}:  δz_t W_hᵀ,
#
# and because the **same** W_x, W_h, b are used at every step, their gradients are sums over
# the steps:
#
#   ∂L/∂W_x = Σ_t x_tᵀ δz_t,   ∂L/∂W_h = Σ_t h_{t−1}ᵀ δz_t,   ∂L/∂b = Σ_t Σ_batch δz_t,
#
# with h_0 the initial state, whose gradient is what step 1 sends back. So the loop runs
# *backwards*, t = T, T−1, …, 1, carrying one (B, H) array from step to step. The vanishing
# gradient of §1 is visible here: each step back multiplies by (1 − h_t²) and by W_hᵀ.
#
# **One LSTM step.** From ḡ_h = ∂L/∂h_t and ḡ_c = ∂L/∂c_t (what later steps send back), follow
# the forward equations of §3 backwards:
#
#   h_t = o ⊙ tanh(c_t):   δo = ḡ_h ⊙ tanh(c_t),   and c_t gets a **second** share:
#   δc_t = ḡ_c + ḡ_h ⊙ o ⊙ (1 − tanh²(c_t))       (c_t reaches the loss directly *and* via h_t)
#   c_t = f ⊙ c_{t−1} + i ⊙ g:   δf = δc_t ⊙ c_{t−1},  δi = δc_t ⊙ g,  δg = δc_t ⊙ i,
#                                 ∂L/∂c_{t−1} = δc_t ⊙ f     (the cell path: only a product by f)
#   through the activations:     δz_i = δi ⊙ i(1 − i),  δz_f = δf ⊙ f(1 − f),
#                                 δz_g = δg ⊙ (1 − g²),   δz_o = δo ⊙ o(1 − o)
#   δz = [δz_i, δz_f, δz_g, δz_o]  (B, 4H), in the gate order i, f, g, o, and then, as for any
#   affine map z = x W_x + h W_h + b:
#   ∂L/∂x = δz W_xᵀ,  ∂L/∂h_{t−1} = δz W_hᵀ,  ∂L/∂W_x = xᵀ δz,  ∂L/∂W_h = h_{t−1}ᵀ δz,
#   ∂L/∂b = Σ_batch δz.
#
# Through time, the LSTM is the RNN's loop with this step inside: ∂L/∂h_{t−1} is added to the
# direct ḡ of step t − 1, ∂L/∂c_{t−1} becomes its ḡ_c, and the weights' gradients are summed over
# the steps. The usual mistakes, which the grader names: forgetting δc_t's second share,
# multiplying by σ instead of σ′ = σ(1 − σ), averaging ∂L/∂b over the batch instead of summing,
# and — through time — not carrying the gradient back to the previous step, or keeping only one
# step's share of the weight gradients. Autograd confirms the two shares of δc_t: here L = h_1
# summed, for a one-step LSTM whose c_1 is also in the loss.

# %%
cell = nn.LSTMCell(3, 2, dtype="float64")
x_1 = md.tensor(rng.standard_normal((1, 3)))
h_0 = md.tensor(np.zeros((1, 2)))
c_0 = md.tensor(rng.standard_normal((1, 2)), requires_grad=True)
h_1, c_1 = cell(x_1, (h_0, c_0))
(h_1.sum() + c_1.sum()).backward()
z = (x_1 @ cell.W_x + h_0 @ cell.W_h + cell.b).numpy()
f_gate = 1 / (1 + np.exp(-z[:, 2:4]))
o_gate = 1 / (1 + np.exp(-z[:, 6:8]))
tanh_c = np.tanh(c_1.numpy())
print("∂L/∂c_0 by autograd:          ", c_0.grad.numpy().round(6))
print("(1 + o(1 − tanh²c_1)) ⊙ f:   ", ((1 + o_gate * (1 - tanh_c ** 2)) * f_gate).round(6))
print("only the direct share, 1 ⊙ f:", f_gate.round(6))

# %% [markdown]
# ## 5. Fast and readable paths agree
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
# ## 6. Masking padded steps 掩码
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
# ## 7. Truncated BPTT 截断的随时间反向传播
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
#
# **Kit exercises for this lesson** (`minidl exercises export kit/`, then `minidl grade kit/`):
# `lstm_cell_forward` (§3), `lstm_cell_backward` and `rnn_bptt` (§4).
