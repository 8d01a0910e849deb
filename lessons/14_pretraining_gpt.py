# %% [markdown]
# # Lesson 14 — Pretraining a GPT (预训练 GPT)
#
# **What you will learn**
# - the recipe every large language model follows, at a size a laptop runs: a mixture of
#   unlabelled text, random windows, AdamW with warmup and cosine decay, gradient clipping;
# - reading a loss curve, and what held-out **perplexity** means;
# - sampling text with a temperature and top-k;
# - why a long run must be resumable, and that minidl's resume is *exact*: a run killed and
#   resumed follows the same loss curve as one that never stopped;
# - what scale buys: the shipped checkpoint `gpt-zh-char-small`, the same recipe run much
#   longer, and its held-out perplexity against the number of tokens it has read.
#
# The model is Lesson 13's: token + position embeddings, pre-LN Transformer blocks with causal
# attention, a final LayerNorm and an output layer that shares the token embedding's weights.
#
# **Key terms 关键术语**: pretraining 预训练 · GPT (generative pre-trained Transformer)
# 生成式预训练 Transformer · language model 语言模型 · next-token prediction 下一个词元预测 ·
# context length 上下文长度 · token 词元 · perplexity 困惑度 · held-out data 留出数据 ·
# learning-rate warmup 学习率预热 · cosine decay 余弦衰减 · weight decay 权重衰减 · AdamW ·
# gradient clipping 梯度裁剪 · checkpoint 检查点 · resume 断点续训 · sampling 采样 ·
# temperature 温度 · top-k sampling top-k 采样 · weight tying 权重共享 · scaling 规模扩展

# %%
import json
import math
import os
import shutil
import tempfile
import time

import numpy as np
from matplotlib.figure import Figure

import minidl as md
from minidl.apps.pretrain import PretrainConfig, Run, corpora, learning_rate, sample_batch
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")
CONFIG = {  # "small": ~20 s of training on a 2-core CPU; "large": a wider model, ~15 minutes
    "small": dict(steps=150, batch=16, d_model=64, n_layers=2, context=64, eval_every=50),
    "large": dict(steps=1500, batch=32, d_model=128, n_layers=4, context=64, eval_every=250),
}[SIZE]
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson14-")
os.makedirs(OUT, exist_ok=True)
WEIGHTS = os.environ.get("MINIDL_WEIGHTS")   # None: the checkpoints shipped inside minidl
md.manual_seed(0)

# %% [markdown]
# ## 1. The data: unlabelled text, in random windows
#
# The texts are those of Lesson 10: the People's Daily corpus (January 1998, news) and the
# *training* reviews, without their labels. The last 5 % of the corpus and the validation
# reviews are **held out** (留出): the model never trains on them, and they measure it. The
# test reviews are never touched.
#
# `minidl.apps.pretrain` does what `minidl pretrain` does on the command line. Its vocabulary is
# built as in Lesson 10 (0 padding, 1 unknown, then the 3,998 most frequent characters), each
# text ends with a newline, and every source becomes one long stream of ids. A training batch is
# `batch` random windows of `context + 1` characters, each from the reviews with probability
# `review_weight` (0.5), else from the corpus: inputs are the first `context` ids, targets the
# last `context` — the same text one character later.

# %%
texts = corpora()
for name, lines in texts.items():
    print(f"{name:14}: {len(lines):6,} texts, {sum(map(len, lines)):9,} characters")

cfg = PretrainConfig(
    steps=CONFIG["steps"], batch=CONFIG["batch"], lr=1e-2, warmup=CONFIG["steps"] // 10,
    vocab=4000, eval_every=CONFIG["eval_every"], eval_windows=4096 // CONFIG["context"],
    checkpoint_every=CONFIG["eval_every"], keep_every=2 * CONFIG["eval_every"],
    model=dict(context_length=CONFIG["context"], d_model=CONFIG["d_model"],
               n_layers=CONFIG["n_layers"], n_heads=4, dropout=0.0))
folder = os.path.join(OUT, "lesson14_run")
shutil.rmtree(folder, ignore_errors=True)                # a fresh run every time
run = Run(folder, cfg, texts=texts, verbose=0)
print(run.model)
print(f"{run.model.num_parameters():,} parameters, of which the token embedding (also the "
      f"output layer) has {run.model.tok.W.data.size:,}")

rng = np.random.default_rng(0)
window = sample_batch([run.streams["corpus_train"], run.streams["reviews_train"]], [0.5, 0.5],
                      batch=2, length=25, rng=rng)


def decode(ids) -> str:
    return "".join(run.tokenizer.index_word.get(int(i), "?") for i in ids).replace("\n", "⏎")


print("inputs: ", decode(window[0, :-1]))
print("targets:", decode(window[0, 1:]))

# %% [markdown]
# ## 2. The optimiser and the learning rate
#
# The recipe of GPT-2 and its descendants:
# - **AdamW** (Lesson 5's Adam with *decoupled* weight decay) with β₂ = 0.95; weight decay 0.1
#   on the matrices only — biases and LayerNorm gains are not pulled towards 0;
# - the learning rate rises linearly for the first 10 % of the steps (**warmup** 预热: Adam's
#   second-moment estimates are still noisy, and the first updates of a random network are
#   the largest), then decays along a cosine to 10 % of its peak (**cosine decay** 余弦衰减);
# - the gradient's global norm is clipped to 1 (Lesson 5).

# %%
schedule = [learning_rate(step, cfg) for step in range(cfg.steps)]
print(f"learning rate: step 0 {schedule[0]:.1e}, step {cfg.warmup} (peak) {max(schedule):.1e}, "
      f"last step {schedule[-1]:.1e}")

# %% [markdown]
# ## 3. Training, and the loss curve
#
# `Run.train()` takes `cfg.steps` optimizer steps, measures the held-out perplexity every
# `eval_every` steps (on the first 4,096 held-out characters of each source) and appends it to
# `log.jsonl`, and writes a checkpoint every `checkpoint_every` steps.

# %%
start = time.perf_counter()
result = run.train()
seconds = time.perf_counter() - start
losses = np.array(result["losses"])
with open(os.path.join(folder, "log.jsonl"), encoding="utf-8") as f:
    log = [json.loads(line) for line in f]
print(f"{cfg.steps} steps of {cfg.batch} windows × {CONFIG['context']} characters "
      f"= {result['tokens']:,} tokens in {seconds:.1f} s "
      f"({result['tokens'] / seconds:,.0f} tokens/s)")
for record in log:
    loss = f"training loss {record['loss']:.3f}" if "loss" in record else " " * 19
    print(f"step {record['step']:4d} ({record['tokens']:7,} tokens): {loss}  held-out "
          f"perplexity: news {record['ppl_corpus']:7.1f}, reviews {record['ppl_reviews']:7.1f}")

figure = Figure(figsize=(10, 3.6))
axes = figure.add_subplot(1, 2, 1)
axes.plot(np.arange(1, len(losses) + 1), losses, alpha=0.4, label="training loss, per step")
smooth = np.convolve(losses, np.ones(10) / 10, mode="valid")
axes.plot(np.arange(10, len(losses) + 1), smooth, label="mean of 10 steps")
axes.plot([r["step"] for r in log], [math.log(r["ppl_reviews"]) for r in log], "o--",
          label="held-out reviews (ln perplexity)")
axes.axhline(math.log(cfg.vocab), color="gray", linestyle=":", label="uniform guess: ln V")
axes.set_xlabel("step")
axes.set_ylabel("cross-entropy (nats per character)")
axes.legend(fontsize=8)
axes.grid(alpha=0.3)
axes = figure.add_subplot(1, 2, 2)
axes.plot(schedule)
axes.set_xlabel("step")
axes.set_ylabel("learning rate")
axes.set_title("warmup, then cosine decay")
axes.grid(alpha=0.3)
figure.tight_layout()
print("plot:", show(figure, os.path.join(OUT, "lesson14_loss.png")))

# %% [markdown]
# ## 4. Perplexity 困惑度, read carefully
#
# The loss is the mean cross-entropy L = −(1/N) Σ ln p(c_t | c_<t) in nats per character, and
# **perplexity** = e^L. It is the size of a uniform choice that would be as uncertain as the
# model: perplexity 100 means the model is, on average, as unsure as if it picked among 100
# equally likely characters. Anchors on the same held-out text:
#
# - an untrained model predicts almost uniformly: perplexity ≈ V = 4,000 (step 0 above);
# - character frequencies alone (a **unigram** model, Lesson 10) reach a few hundred;
# - every point below that is context the model has learned to use.
#
# Two cautions. Perplexities compare only with the **same vocabulary** (merging rare characters
# into `<unk>` makes text easier to predict) and on the **same held-out text**; this run's
# vocabulary is the shipped checkpoint's, so the comparison in section 7 is fair. And training
# loss is measured on the batches being learned: the held-out number is the honest one.

# %%
counts = np.bincount(np.concatenate([run.streams["corpus_train"], run.streams["reviews_train"]]),
                     minlength=cfg.vocab) + 1.0
unigram = counts / counts.sum()
for name in ("corpus", "reviews"):
    held_out = run.streams[f"{name}_val"][:4097]
    print(f"{name:7}: unigram perplexity {math.exp(-np.mean(np.log(unigram[held_out[1:]]))):6.1f}"
          f", this model {log[-1][f'ppl_{name}']:6.1f}")

# %% [markdown]
# ## 5. Sampling 采样: temperature and top-k
#
# `GPT.generate` feeds the prompt, then repeatedly draws the next character from
# softmax(z / T) and feeds it back, with Lesson 13's key/value cache. The **temperature** T
# sharpens (T < 1) or flattens (T > 1) the distribution; **top-k** sampling first keeps only the
# k most likely characters, which removes the long tail of unlikely ones that a high temperature
# would otherwise let through. A tiny model trained for seconds mostly produces frequent
# characters and punctuation; the shipped checkpoint (section 7) is far better. (⏎ is the
# newline that ends a text: the model goes on with a new one.)

# %%
def sample(model, tokenizer, prompt, temperature, top_k, seed=0, length=40):
    ids = tokenizer.texts_to_sequences([prompt])[0]
    new = model.generate(ids, length, temperature=temperature, top_k=top_k, seed=seed)
    return prompt + "".join(tokenizer.index_word.get(i, "?") for i in new).replace("\n", "⏎")


for temperature, top_k in ((0.7, None), (1.0, None), (1.0, 10)):
    text = sample(run.model, run.tokenizer, "这个酒店", temperature, top_k)
    print(f"T={temperature}, top-k={top_k}: {text}")

# %% [markdown]
# ## 6. Checkpoints and exact resume 断点续训
#
# Pretraining runs for hours or days, and machines stop: a time limit, a crash, a power cut.
# `Run` writes `checkpoint.npz` atomically (a temporary file, then a rename, so a kill never
# leaves half a file) with the model, the optimizer's moments, the step, and the tokens and
# seconds so far. Starting `Run` on a folder that has a checkpoint resumes it.
#
# minidl makes resuming **exact**: every random draw of step s — the windows of its batch and
# its dropout masks — is seeded from (seed, s), and the learning rate is a function of s. So
# nothing depends on how many steps this *process* has run. To show it, take the checkpoint
# the run kept after step `2 · eval_every` (`keep_every`): it is exactly what a process killed
# at that moment leaves on disk. Resume a copy from it and compare the next steps' losses with
# the run that never stopped:

# %%
kill_step = 2 * cfg.eval_every
resumed_folder = os.path.join(OUT, "lesson14_resumed")
shutil.rmtree(resumed_folder, ignore_errors=True)
os.makedirs(resumed_folder)
for name in ("config.json", "vocab.json"):
    shutil.copy(os.path.join(folder, name), resumed_folder)
shutil.copy(os.path.join(folder, f"checkpoint-{kill_step:06d}.npz"),
            os.path.join(resumed_folder, "checkpoint.npz"))

resumed = Run(resumed_folder, texts=texts, verbose=0)      # finds the checkpoint: resumes
print(f"resumed at step {resumed.step} ({resumed.tokens:,} tokens)")
again = [resumed.train_step() for _ in range(10)]
print("uninterrupted run, steps", kill_step + 1, "to", kill_step + 10, ":",
      np.round(losses[kill_step:kill_step + 10], 5))
print("resumed run, same steps:                ", np.round(again, 5))
print("identical:", np.array_equal(np.array(again), losses[kill_step:kill_step + 10]))

# %% [markdown]
# Bit for bit the same losses. (Without per-step seeding, the resumed process would draw
# different batches and its curve would wander off the original — still a valid run, but not a
# reproducible one, and a bug introduced at resume could hide in that noise.)
#
# ## 7. What scale buys 规模带来什么
#
# The checkpoint that ships inside minidl, `gpt-zh-char-small`, was made by this very code —
# `minidl pretrain` on the same texts, vocabulary and held-out data — with a bigger model and
# for much longer. Its **provenance** (来源记录) records how: the command, the seed, the
# steps, the tokens, the wall time and the machine, and a log of held-out perplexity during
# training. (`MINIDL_WEIGHTS` points at another folder of checkpoints, e.g. a fresh export.)

# %%
shipped = md.pretrained.load("gpt-zh-char-small", folder=WEIGHTS)
print(shipped.describe())
provenance = shipped.provenance
shipped_log = [r for r in provenance["log"] if r["tokens"] > 0]
print(f"trained on {provenance['tokens']:,} tokens: "
      f"{provenance['tokens'] / result['tokens']:.0f}× this lesson's run; "
      f"{provenance['parameters'] / run.model.num_parameters():.1f}× its parameters")
print("same vocabulary as this lesson's run:",
      all(shipped.tokenizer.index_word.get(i) == run.tokenizer.index_word.get(i)
          for i in range(cfg.vocab)))

figure = Figure(figsize=(7, 4.2))
axes = figure.add_subplot(1, 1, 1)
for name, colour in (("corpus", "tab:blue"), ("reviews", "tab:orange")):
    label = {"corpus": "People's Daily", "reviews": "reviews"}[name]
    axes.plot([r["tokens"] for r in shipped_log], [r[f"ppl_{name}"] for r in shipped_log], "o-",
              color=colour, label=f"{label}: shipped checkpoint")
    axes.plot([r["tokens"] for r in log if r["tokens"]], [r[f"ppl_{name}"] for r in log if
              r["tokens"]], "s--", color=colour, alpha=0.6, label=f"{label}: this lesson's run")
axes.set_xscale("log")
axes.set_yscale("log")
axes.set_xlabel("tokens read in pretraining (characters, log scale)")
axes.set_ylabel("held-out perplexity (log scale)")
axes.set_title("What scale buys: held-out perplexity against tokens")
axes.grid(alpha=0.3, which="both")
axes.legend(fontsize=8)
figure.tight_layout()
print("plot:", show(figure, os.path.join(OUT, "lesson14_scale.png")))
for record in shipped_log[:-1:max(1, len(shipped_log) // 6)] + shipped_log[-1:]:
    print(f"  shipped, step {record['step']:5d}: {record['tokens']:11,} tokens, perplexity news "
          f"{record['ppl_corpus']:6.1f}, reviews {record['ppl_reviews']:6.1f}")

# %% [markdown]
# The shipped run read 4.9 million characters in about an hour on a 2-core CPU, 32 times this
# lesson's run, with 7 times the parameters. Its held-out perplexity fell from about 450
# (news) and 300 (reviews) after 0.4 million characters to 75 and 71 after 4.9 million. (The
# log measures the first 4,096 held-out characters of each source, as this lesson's run does;
# `describe()` gives the whole held-out sets, 110 and 64.) On log–log axes the curve is close
# to a straight line — a **power law**, the empirical **scaling law** of language models
# (Kaplan et al., 2020; Hoffmann et al., 2022): loss falls as a power of the tokens read and of
# the parameters — and it bends at the end, where the cosine schedule has lowered the
# learning rate to its floor. This lesson's run is the very start of that axis: at 150
# thousand characters it is just below the unigram level; the shipped run read that much in
# its first two minutes.
#
# Has the shipped model learned all it can? Hoffmann et al. found that a compute-efficient
# run reads about 20 tokens per parameter: for 2.6 million parameters, some 50 million
# characters, ten times what it read — and then, to go further, a bigger model. On this
# machine that is ten hours; on a GPU (Lesson 12), a small fraction of that. Scale, not a new
# idea, is what separates this checkpoint from the models that write essays.
#
# And the samples, at the same settings as section 5:

# %%
for prompt in ("这个酒店", "今天"):
    for temperature, top_k in ((0.7, None), (1.0, 10)):
        print(f"T={temperature}, top-k={top_k}: "
              f"{sample(shipped.model, shipped.tokenizer, prompt, temperature, top_k)}")

# %% [markdown]
# **Summary.** Pretraining is next-token prediction on unlabelled text: random windows from a
# mixture of sources, AdamW with warmup and cosine decay, clipping, and held-out perplexity as
# the measure — e^loss, comparable only on the same text and vocabulary. Checkpoints make long
# runs survivable; per-step seeding makes them exactly resumable. Scale — more tokens, more
# parameters — is what turns frequent characters into phrases.
#
# **Exercises.** (1) Run with `review_weight` 0 and 1 (news only, reviews only) and compare both
# held-out perplexities. (2) Set `warmup=0` and `lr=3e-2`: what happens in the first steps?
# (3) Resume the run with `steps` doubled (`Run(folder, PretrainConfig(steps=...))`): the
# schedule is laid over the new budget, so the curve changes from the resume on — why is this
# not "exact resume"? (4) Train the same model with 4× the steps and add its points to the
# scaling plot.
