# %% [markdown]
# # Lesson 2 — Computational graphs and reverse-mode autograd
#
# **What you will learn**
# - how every operation on tensors records a node of a **computational graph**, and how to draw it;
# - how `backward()` walks that graph from the loss back to the weights, applying the chain rule
#   once per node (**reverse-mode automatic differentiation**, i.e. back-propagation);
# - the same gradients computed by hand, to see there is no magic;
# - the rules you must know: gradients **accumulate**, broadcast inputs get gradients of their
#   own shape, `backward()` needs a scalar, `no_grad()` stops recording.
#
# **Key terms 关键术语**: computational graph 计算图 · node 节点 · leaf 叶子节点 ·
# forward pass 前向传播 · back-propagation 反向传播 · automatic differentiation 自动微分 ·
# chain rule 链式法则 · gradient 梯度 · gradient accumulation 梯度累加 · topological order 拓扑序

# %%
import os
import shutil
import tempfile

import numpy as np

import minidl as md
import minidl.functions as F
from minidl import nn, plot

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # nothing here is slow
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson02-")
os.makedirs(OUT, exist_ok=True)
md.manual_seed(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. A graph is recorded as you compute
#
# One σ(Wx+b) neuron on a batch of two inputs, and a squared-error loss:
#
# z = x W + b,  y = σ(z),  L = (1/N) Σₙ (yₙ − tₙ)²
#
# Tensors made with `requires_grad=True` are the **leaves** we want gradients for. Every op on
# them creates a `Function` object (`MatMul`, `Add`, `Sigmoid`, ...) stored as the `creator` of
# its result, with links to its inputs: that chain of links *is* the graph.

# %%
x = md.tensor(rng.standard_normal((2, 3)), dtype="float32")  # data: no gradient needed
t = md.tensor([[1.0], [0.0]])                          # targets
W = md.tensor(rng.standard_normal((3, 1)), dtype="float32", requires_grad=True)  # weights
b = md.tensor([0.1], requires_grad=True)

z = x @ W + b
y = F.sigmoid(z)
loss = ((y - t) ** 2).mean()
print("loss =", loss.item())
print("y.creator =", y.creator, "| its input is z, whose creator is", z.creator)
print("W is a leaf:", W.is_leaf, "| loss is a leaf:", loss.is_leaf)

# %% [markdown]
# `minidl.plot` draws the graph: `graph_to_text` as a tree (output on top, leaves at the bottom;
# `[requires grad]` marks the leaves that will receive gradients), `graph_to_dot` as Graphviz
# source, and `computation_graph` renders it to an image when Graphviz's `dot` is installed.
# (`mean` is not a primitive: it is written as `sum() * (1/N)`, so it appears as `Sum` and `Mul`
# with the constant 1/N as an unnamed leaf.)

# %%
names = {"x": x, "t": t, "W": W, "b": b, "z": z, "y": y, "loss": loss}
print(plot.graph_to_text(loss, names))
with open(os.path.join(OUT, "lesson02_graph.dot"), "w", encoding="utf-8") as f:
    f.write(plot.graph_to_dot(loss, names))
if shutil.which("dot"):
    print("drawn:", plot.computation_graph(loss, os.path.join(OUT, "lesson02_graph.png"), names))
else:
    print(f"Graphviz source written to {OUT}/lesson02_graph.dot "
          f"(install graphviz and run `dot -Tpng lesson02_graph.dot -o graph.png` to see it)")

# %% [markdown]
# ## 2. Reverse mode: one backward pass gives every gradient
#
# The chain rule, written for the *upstream gradient* ḡ = ∂L/∂(output) that flows backwards:
# a node y = f(u, v) receives ∂L/∂y and sends ∂L/∂u = ∂L/∂y · ∂y/∂u to each input. Starting from
# ∂L/∂L = 1 and visiting the nodes in **reverse topological order** (a node only after every
# node that used its output), each Function applies its own local rule — the `backward` written
# next to its `forward` in `minidl/functions/`. One pass costs a small multiple (typically
# about two) of the forward pass and yields ∂L/∂θ for *all* parameters θ at once; this is why
# training networks with millions of weights is feasible. (Forward mode would need one pass
# per input.)
#
# For our neuron, by hand:
#
# | node | forward | backward (local chain rule) |
# |---|---|---|
# | mean of squares | L = (1/N) Σ (y − t)² | ∂L/∂y = 2 (y − t) / N |
# | sigmoid | y = σ(z) | ∂L/∂z = ∂L/∂y ⊙ y (1 − y) |
# | add bias | z = a + b | ∂L/∂a = ∂L/∂z,  ∂L/∂b = Σₙ ∂L/∂zₙ  (b was broadcast over the batch) |
# | matmul | a = x W | ∂L/∂W = xᵀ ∂L/∂a,  ∂L/∂x = ∂L/∂a Wᵀ |

# %%
loss.backward()

xv, tv, Wv, yv = x.numpy(), t.numpy(), W.numpy(), y.numpy()
N = len(xv)
dL_dy = 2 * (yv - tv) / N
dL_dz = dL_dy * yv * (1 - yv)
dL_dW = xv.T @ dL_dz
dL_db = dL_dz.sum(axis=0)
print("dL/dW by hand:    ", dL_dW.ravel())
print("dL/dW by autograd:", W.grad.numpy().ravel())
print("dL/db by hand:", dL_db, "| by autograd:", b.grad.numpy())
print("max difference:", float(np.abs(dL_dW - W.grad.numpy()).max()))
print("x needs no gradient, so x.grad is", x.grad)

# %% [markdown]
# **The order of the walk.** A Function may run its backward only when the gradients of its
# outputs are complete — that is, after *every* Function that used those outputs has sent its
# share. minidl's `backward()` (in `minidl/autograd.py`) finds such an order without recursion,
# so a graph thousands of steps deep (an RNN over a long text) is fine: it first counts, for each
# Function, how many inputs of other Functions its outputs feed; then it starts from the loss's
# creator and runs a Function as soon as all of its consumers are done, adding up the
# gradients that arrive for the same tensor (Kahn's algorithm for a topological order). In the
# diamond below, x feeds two Functions, so x's gradient has two shares; running `a`'s
# producer after only one of them would lose the other. Writing this walk yourself is the kit
# exercise `engine_backward`.

# %%
x_d = md.tensor(1.5, dtype="float64", requires_grad=True)
a_d, b_d = x_d * 2.0, x_d * 3.0      # x is used twice ...
y_d = a_d * b_d                      # ... so y = 6x² reaches x along two paths
y_d.backward()
print("dy/dx =", x_d.grad.item(), "= 12x =", 12 * 1.5)

# %% [markdown]
# ## 3. The rules
#
# **Gradients accumulate** (梯度累加). A value used twice gets the *sum* of both contributions —
# that is just the multivariate chain rule: for y = x·x + x, dy/dx = 2x + 1.
# And calling `backward()` again adds the same gradients once more: `.grad` is a running sum
# until you clear it (`x.grad = None`, or `optimizer.zero_grad()` for a model). Forgetting to clear
# it between training steps is a classic bug: each step then uses the sum of all past gradients.

# %%
s = md.tensor(3.0, requires_grad=True)
u = s * s + s
u.backward()
print("dy/dx at 3 =", s.grad.item(), "(2·3 + 1 = 7)")
u.backward()
print("after a second backward():", s.grad.item(), "(accumulated)")
s.grad = None
u.backward()
print("cleared, then backward():", s.grad.item())

# %% [markdown]
# **A broadcast input gets a gradient of its own shape.** A bias of shape (3,) added to a (4, 3)
# matrix is copied onto each of the 4 rows, so it receives one gradient per row, and these are
# summed: the upstream gradient has shape (4, 3), the bias's gradient shape (3,). (Above, `b`
# had shape (1,) and the upstream gradient (2, 1): summed over the 2 rows and the result kept
# as (1,) — the same rule, only the shapes do not show it.) The function that does this
# summing, `sum_to`, is a kit exercise; every broadcasting op's backward calls it.

# %%
bias = md.tensor([0.0, 0.0, 0.0], requires_grad=True)
h = md.tensor(rng.standard_normal((4, 3)), dtype="float32") + bias  # bias broadcast to (4, 3)
upstream = np.arange(12, dtype=np.float32).reshape(4, 3)
h.backward(upstream)
print("upstream gradient, shape", upstream.shape, ":\n", upstream)
print("bias.grad, shape", bias.grad.shape, ":", bias.grad.numpy(),
      "= the column sums", upstream.sum(axis=0))

# %% [markdown]
# **`backward()` without an argument needs a single number** — a loss. For a non-scalar output,
# reduce it first or pass the upstream gradient yourself (a vector–Jacobian product):

# %%
v = md.tensor([1.0, 2.0, 3.0], requires_grad=True)
w = v * v
try:
    w.backward()
except md.GradientError as error:
    print("GradientError:", error)
w.backward(np.array([1.0, 0.0, 10.0], dtype=np.float32))  # ḡ · ∂w/∂v = ḡ ⊙ 2v
print("with grad=[1, 0, 10]:", v.grad)

# %% [markdown]
# **`md.no_grad()`** stops recording: use it for evaluation and for weight updates, which
# must not become part of the next step's graph.

# %%
with md.no_grad():
    y_eval = F.sigmoid(x @ W + b)
print("under no_grad: creator =", y_eval.creator, ", requires_grad =", y_eval.requires_grad)

# %% [markdown]
# ## 4. A whole model's graph
#
# A module's `named_parameters()` gives the names for the drawing. Here is a two-layer
# perceptron; Lesson 4 trains one.

# %%
mlp = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1))
out = F.mse_loss(mlp(x), t)
print(plot.graph_to_text(out, dict(mlp.named_parameters())))

# %% [markdown]
# ## 5. Differentiating the backward pass (optional)
#
# With `create_graph=True` the backward pass is itself recorded, so a gradient can be
# differentiated again. For y = tanh(x): y′ = 1 − tanh²x and y″ = −2 tanh x (1 − tanh²x).

# %%
q = md.tensor(0.5, dtype="float64", requires_grad=True)
(dq,) = md.grad(F.tanh(q), [q], create_graph=True)
(d2q,) = md.grad(dq, [q])
th = np.tanh(0.5)
print(f"tanh'(0.5)  = {dq.item():.6f}  (formula {1 - th ** 2:.6f})")
print(f"tanh''(0.5) = {d2q.item():.6f}  (formula {-2 * th * (1 - th ** 2):.6f})")

# %% [markdown]
# **Summary.** Operations record a graph; `backward()` visits it in reverse topological order and
# each node applies its local chain rule; leaves collect ∂L/∂leaf in `.grad`, adding to what is
# there. Clear gradients between steps.
#
# **Exercises.** (1) Draw the graph of `F.tanh(x) * F.tanh(x)` — how many `Tanh` nodes are there,
# and how many if you store `h = F.tanh(x)` and compute `h * h`? Check that both give the same
# gradient. (2) Add a second neuron sharing `W`; verify that `W.grad` is the sum of the two
# contributions.
#
# **Kit exercises for this lesson** (`minidl exercises export kit/`, then `minidl grade kit/`):
# `engine_backward` (the walk above), `sum_to` (undoing broadcasting) and `sigmoid_backward`
# (the table's sigmoid row).
