# %% [markdown]
# # Lesson 10 — Pretraining a character language model (预训练)
#
# **What you will learn**
# - what a language model is, and how it is trained without any labels (self-supervised);
# - perplexity, and the baselines to compare it with (uniform guessing, character frequencies);
# - truncated back-propagation through time over a long text stream;
# - sampling text from the model, and what the temperature does;
# - the true scale of the story: the model you pretrain here in seconds — the LSTM of the
#   classic Keras example, minidl's seed architecture — next to the GPT checkpoint that ships
#   with minidl (`gpt-zh-char-small`), pretrained on the same text for much longer.
#
# The LSTM trained here is the starting point of Lesson 11 (fine-tuning, 微调): its weights are
# saved in the output folder that Lessons 10 and 11 share. Lessons 13–15 build and fine-tune
# the GPT.
#
# **Key terms 关键术语**: pretraining 预训练 · language model 语言模型 · self-supervised learning
# 自监督学习 · unlabelled data 无标注数据 · next-character prediction 下一个字预测 ·
# perplexity 困惑度 · corpus 语料库 · held-out data 留出数据 · sampling 采样 ·
# temperature 温度 · truncated BPTT 截断的随时间反向传播

# %%
import json
import os
import tempfile
import time

import numpy as np
from matplotlib.figure import Figure

import minidl as md
from minidl.apps import charlm as transfer
from minidl.apps.pretrain import REVIEW_SPLIT_SEED
from minidl.data.datasets import load_peoples_daily, load_reviews, split_corpus
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")
CONFIG = {  # "small" runs in seconds; "large" trains on everything for minutes
    "small": dict(corpus_lines=3000, reviews=3000, embedding_dim=32, hidden_size=64,
                  batch_size=16, bptt=32, steps=300, lr=5e-3),
    "large": dict(corpus_lines=None, reviews=None, embedding_dim=64, hidden_size=128,
                  batch_size=32, bptt=64, steps=3000, lr=3e-3),
}[SIZE]
# Lessons 10 and 11 share one output folder, so that Lesson 11 finds this lesson's model.
OUT = os.environ.get("MINIDL_LESSON_OUT") or os.path.join(tempfile.gettempdir(), "minidl-lessons")
os.makedirs(OUT, exist_ok=True)
WEIGHTS = os.environ.get("MINIDL_WEIGHTS")   # None: the checkpoints shipped inside minidl
md.manual_seed(0)

# %% [markdown]
# ## 1. A language model 语言模型
#
# A language model gives a probability to every text by predicting it one character at a time:
#
#   p(c₁ c₂ … c_N) = Π_t p(c_t | c₁ … c_{t−1}).
#
# Our model reads the characters so far with an LSTM and outputs a distribution over the
# vocabulary for the next one: Embedding → LSTM → Linear → softmax. It is trained with the
# cross-entropy of the true next character, L = −(1/N) Σ_t ln p(c_t | c_<t) — the targets are
# just the text shifted by one, so **any text is training data, no labels needed**. This is
# *self-supervised* learning, and training on plain text before the real task is **pretraining**.
#
# **Perplexity 困惑度** = exp(L): the number of characters the model is, on average, "choosing
# between". A model that guesses uniformly among V characters has perplexity V; one that only
# knows how frequent each character is (a *unigram* model) has exp(entropy of the frequencies).
# A useful language model must beat both on text it has not seen.
#
# ## 2. The text
#
# Two sources, both without labels: the People's Daily corpus of January 1998 (《人民日报》,
# news) and the *training* reviews of Lesson 9, whose labels are simply not used. (The
# validation and test reviews stay out, so Lesson 11's evaluation remains clean.) A contiguous
# block at the end of the corpus (5 %) is held out: neighbouring lines belong to the same
# article, so a random line split would leak near-copies into training.
#
# **The vocabulary.** A character vocabulary lists the most frequent characters: id 0 is
# padding, id 1 the unknown character `<unk>` (everything rarer), then characters by frequency
# (`transfer.build_vocabulary`, Lesson 6's Tokenizer with `char_level=True`). We use the one
# the shipped GPT checkpoint was pretrained with — 4,000 ids, built exactly this way over all
# the training text — because perplexities can only be compared between models that predict
# the same set of symbols (section 6). Loading the checkpoint is instant; we meet the model
# itself at the end.

# %%
shipped = md.pretrained.load("gpt-zh-char-small", folder=WEIGHTS)
tokenizer = shipped.tokenizer
vocab_size = transfer.vocabulary_size(tokenizer)
reviews = load_reviews(split_seed=REVIEW_SPLIT_SEED)   # the split the checkpoint was made with
corpus_train, corpus_held_out = split_corpus(load_peoples_daily(), val_fraction=0.05)
texts = corpus_train[:CONFIG["corpus_lines"]] + reviews.train.texts[:CONFIG["reviews"]]
stream = transfer.encode_stream(tokenizer, texts)
held_out_news = transfer.encode_stream(tokenizer, corpus_held_out[:100])
held_out_reviews = transfer.encode_stream(tokenizer, reviews.val.texts[:150])
print("the first ids:", {i: tokenizer.index_word[i].replace("\n", "⏎") for i in range(1, 12)})
print(f"{len(texts)} texts -> a stream of {len(stream):,} characters; vocabulary {vocab_size} ids "
      f"({np.mean(stream == 1):.1%} of the stream is unknown)")

# %% [markdown]
# Every text ends with a newline character, which the model learns as "end of text".
# The baselines on the held-out text:

# %%
counts = np.bincount(stream, minlength=vocab_size).astype(np.float64) + 1  # add-one smoothing
unigram = counts / counts.sum()


def unigram_perplexity(ids: np.ndarray) -> float:
    return float(np.exp(-np.mean(np.log(unigram[ids[1:]]))))


print(f"uniform guessing: perplexity {vocab_size}")
print(f"unigram (character frequencies): news {unigram_perplexity(held_out_news):.1f}, "
      f"reviews {unigram_perplexity(held_out_reviews):.1f}")

# %% [markdown]
# ## 3. Truncated BPTT over a stream
#
# The stream is cut into `batch_size` parallel rows; each training step reads a window of
# `bptt` characters from every row and predicts the window shifted by one. The LSTM state is
# carried from one window to the next but **detached**, so the gradient stops at the window's
# start (Lesson 8). `transfer.pretrain` runs this loop with Adam, gradient clipping at norm 1
# and a cosine learning-rate schedule (Lesson 5); read it in `minidl/transfer.py`.

# %%
def decode(ids) -> str:
    return "".join(tokenizer.index_word.get(int(i), "?") for i in ids).replace("\n", "⏎")


print("inputs: ", decode(stream[0:16]))
print("targets:", decode(stream[1:17]), "(the same text, one character later)")

lm = transfer.CharLanguageModel(vocab_size, CONFIG["embedding_dim"], CONFIG["hidden_size"])
print(lm)
print(f"{lm.num_parameters():,} parameters")
print(f"untrained: perplexity on held-out reviews "
      f"{transfer.perplexity(lm, held_out_reviews, batch_size=8):.1f} (about V: nearly uniform)")

# %% [markdown]
# **A good start: initialise the output bias to the log-frequencies.** At initialisation the
# hidden state carries little, so the logits are about the output layer's bias b, and the
# model predicts softmax(b). With bᵢ = ln pᵢ (the unigram frequencies), softmax(b)ᵢ =
# pᵢ / Σⱼ pⱼ = pᵢ: the untrained model *starts* at the unigram baseline instead of spending its
# first hundreds of steps learning character frequencies, and every step goes into learning
# context. (A cheap trick worth remembering for any classifier with skewed classes.)
# `load_state_dict` copies host values into a parameter on whatever device it lives
# (`strict=False`: only the bias is given); assigning a NumPy array into `lm.head.b.data`
# would work on a CPU and fail on a GPU (Lesson 12).

# %%
lm.head.load_state_dict({"b": np.log(unigram)}, strict=False)  # copied to the bias' device
before = {"news": transfer.perplexity(lm, held_out_news, batch_size=8),
          "reviews": transfer.perplexity(lm, held_out_reviews, batch_size=8)}
print(f"with the bias set: perplexity news {before['news']:.1f}, reviews {before['reviews']:.1f}"
      f" (the unigram baselines)")

start = time.perf_counter()
losses = transfer.pretrain(lm, stream, steps=CONFIG["steps"], batch_size=CONFIG["batch_size"],
                           bptt=CONFIG["bptt"], lr=CONFIG["lr"], verbose=0)
seconds = time.perf_counter() - start
for step in sorted({1, len(losses) // 4, len(losses) // 2, len(losses)}):
    recent = losses[max(0, step - 20):step]
    print(f"step {step:5d}: training loss {np.mean(recent):.3f} "
          f"(perplexity {np.exp(np.mean(recent)):.0f})")
print(f"{CONFIG['steps']} steps of {CONFIG['batch_size']}×{CONFIG['bptt']} characters "
      f"in {seconds:.1f} s")

after = {"news": transfer.perplexity(lm, held_out_news, batch_size=8),
         "reviews": transfer.perplexity(lm, held_out_reviews, batch_size=8)}
print(f"after training:  perplexity news {after['news']:.1f}, reviews {after['reviews']:.1f}")

figure = Figure(figsize=(6, 3.6))
axes = figure.add_subplot(1, 1, 1)
axes.plot(np.arange(1, len(losses) + 1), losses, alpha=0.4, label="per step")
smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
axes.plot(np.arange(20, len(losses) + 1), smooth, label="mean of 20 steps")
axes.axhline(np.log(unigram_perplexity(held_out_reviews)), color="gray", linestyle="--",
             label="unigram baseline (reviews)")
axes.set_xlabel("step")
axes.set_ylabel("cross-entropy (nats per character)")
axes.set_title("Pretraining the character language model")
axes.legend()
axes.grid(alpha=0.3)
figure.tight_layout()
print("plot:", show(figure, os.path.join(OUT, "lesson10_pretraining.png")))

# %% [markdown]
# Starting from the unigram level, the loss keeps falling as the LSTM learns which
# characters follow which. With the default `SIZE = "small"` (300 steps, seconds) you should
# see the held-out perplexity end clearly below the unigram baselines, though still far from a
# good model. Without the bias trick the same 300 steps end *above* them (comment out the line
# that sets `lm.head.b` and see). `SIZE = "large"` trains a bigger LSTM (0.9 M parameters) on
# the whole corpus and all training reviews for 3,000 steps (about 11 minutes on a 2-core CPU).
#
# ## 4. Sampling 采样 and temperature 温度
#
# To generate text, feed a prompt, then repeatedly draw the next character from the model's
# distribution and feed it back. The **temperature** T divides the logits before the softmax,
# p_i ∝ exp(z_i / T): T < 1 sharpens the distribution (safer, more repetitive text), T > 1
# flattens it (more varied, more mistakes); T → 0 always picks the most likely character.

# %%
for prompt in ("今天", "这个酒店"):
    for temperature in (0.5, 1.0):
        sample = transfer.generate(lm, tokenizer, prompt, length=30, temperature=temperature,
                                   seed=0)
        print(f"T={temperature}: {sample}")

# %% [markdown]
# Judge the samples against the perplexity: a unigram model produces characters in the right
# proportions but no words; this one already produces common characters and punctuation in
# plausible places (at T = 0.5 especially), but no sense. Better models produce phrases,
# then sentences — as the next section shows.
#
# ## 5. The true scale: the shipped checkpoint 预训练检查点
#
# What you just ran is pretraining in miniature: with `SIZE = "small"`, about 150 thousand
# characters read by a model of about 0.4 million parameters, in seconds. The checkpoint that
# ships with minidl, `gpt-zh-char-small`, is the same idea at the scale a 2-core machine
# allows: a GPT (Lessons 13–14) pretrained by `minidl pretrain` on the *same* sources — all
# the training corpus and training reviews — with the same objective, for about an hour,
# reading millions of characters. Its provenance says exactly how it was made. Measured on the
# same held-out text, with the same vocabulary:

# %%
print(shipped.describe())
newline = tokenizer.word_index["\n"]
gpt_ppl = {"news": shipped.model.perplexity(held_out_news),
           "reviews": shipped.model.perplexity(held_out_reviews)}
characters_read = CONFIG["steps"] * CONFIG["batch_size"] * CONFIG["bptt"]
print(f"\n{'held-out perplexity':<44}{'news':>8}{'reviews':>9}")
print(f"{f'uniform guessing (V = {vocab_size})':<44}{vocab_size:>8}{vocab_size:>9}")
print(f"{'unigram (character frequencies)':<44}{unigram_perplexity(held_out_news):>8.1f}"
      f"{unigram_perplexity(held_out_reviews):>9.1f}")
label = (f"this LSTM: {lm.num_parameters() / 1e6:.2f} M parameters, "
         f"{characters_read / 1e6:.2f} M chars")
print(f"{label:<44}{after['news']:>8.1f}{after['reviews']:>9.1f}")
label = (f"shipped GPT: {shipped.provenance['parameters'] / 1e6:.2f} M parameters, "
         f"{shipped.provenance['tokens'] / 1e6:.1f} M chars")
print(f"{label:<44}{gpt_ppl['news']:>8.1f}{gpt_ppl['reviews']:>9.1f}")

for prompt in ("今天", "这个酒店"):
    ids = tokenizer.texts_to_sequences([prompt])[0]
    new = shipped.model.generate(ids, 30, temperature=0.5, seed=0, stop_id=newline)
    text = "".join(tokenizer.index_word.get(i, "?") for i in new if i != newline)
    print(f"shipped GPT, T=0.5: {prompt}{text}")

# %% [markdown]
# Read the table from the top: every row is a model that knows more about the text. The
# LSTM learns in seconds what the unigram table cannot know — which characters follow which —
# and the GPT, with six times the parameters and a hundred times the text, goes much further
# (we saw perplexities of about 575 and 415 for the small LSTM, 63 and 48 for the GPT): its
# samples have words and phrases where the LSTM's have characters. Both numbers are honest:
# the same held-out text, never trained on, the same 4,000-symbol vocabulary.
# (The LSTM carries its state across the whole held-out stream, the GPT sees at most 128
# characters back; that favours the LSTM, not the GPT.)
#
# The LSTM stays in these lessons because it is the seed's architecture — the classic Keras
# example, Embedding → LSTM → Dense — and the point of comparison. Lesson 11 fine-tunes this
# lesson's LSTM into a classifier and measures what its pretraining is worth; Lesson 14 shows
# how the GPT was pretrained, and Lesson 15 fine-tunes it.
#
# ## 6. Save it for fine-tuning
#
# The weights go to an `.npz` file (never pickle) and the vocabulary to JSON; Lesson 11 looks
# for them in the same output folder.

# %%
md.save(lm.state_dict(), os.path.join(OUT, "lesson10_lm.npz"))
with open(os.path.join(OUT, "lesson10_tokenizer.json"), "w", encoding="utf-8") as f:
    f.write(tokenizer.to_json(ensure_ascii=False))
with open(os.path.join(OUT, "lesson10_config.json"), "w", encoding="utf-8") as f:
    json.dump({**CONFIG, "size": SIZE, "vocab_size": vocab_size, "model": "CharLanguageModel",
               "vocabulary": "gpt-zh-char-small", "characters_read": characters_read,
               "perplexity_before": before, "perplexity_after": after}, f, indent=2)
print("saved lesson10_lm.npz, lesson10_tokenizer.json, lesson10_config.json in", OUT)

# %% [markdown]
# **Summary.** A language model predicts the next character; its loss needs no labels, so it
# can learn from any text. Perplexity measures it, against uniform and unigram baselines, on
# held-out text with one fixed vocabulary. Long texts are trained in detached windows
# (truncated BPTT). Sampling with a temperature shows what it has learned. Scale — parameters
# and text read — is what separates this lesson's LSTM from the shipped GPT.
#
# **Exercises.** (1) Pretrain on the reviews only, and compare the perplexity on held-out
# reviews with the mixed model's. (2) Plot perplexity against steps for `bptt` = 8 and 64.
# (3) Sample with T = 0.1 and T = 2: describe the difference. (4) Read
# `shipped.provenance["log"]`: after how many characters did the GPT reach this LSTM's
# held-out perplexity?
