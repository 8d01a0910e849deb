# %% [markdown]
# # Lesson 11 — Fine-tuning (微调), evaluation, and pretrained versus scratch
#
# **What you will learn**
# - transfer learning: start a classifier from the pretrained language model of Lesson 10 —
#   copy the embedding and LSTM, add a new sigmoid head, then **fine-tune**, with the encoder
#   frozen at first and a smaller learning rate for it afterwards;
# - evaluation beyond accuracy: the confusion matrix, precision, recall and F1, computed by
#   hand and with `minidl.metrics`, and the decision threshold;
# - a fair comparison with the same network trained from scratch — and how to read its result;
# - the same question asked of the GPT checkpoint that ships with minidl, with the same labels.
#
# **Key terms 关键术语**: transfer learning 迁移学习 · pretraining 预训练 · fine-tuning 微调 ·
# encoder 编码器 · classification head 分类头 · freezing 冻结 · learning rate 学习率 ·
# confusion matrix 混淆矩阵 · true/false positive 真正例/假正例 · true/false negative
# 真负例/假负例 · accuracy 准确率 · precision 精确率 · recall 召回率 · F1 score F1 值 ·
# decision threshold 决策阈值 · baseline 基线

# %%
import json
import os
import tempfile
import time

import numpy as np

import minidl as md
from minidl import metrics, plot
from minidl.apps import charlm as transfer
from minidl.apps import finetune as ft
from minidl.apps.pretrain import REVIEW_SPLIT_SEED
from minidl.data.datasets import load_peoples_daily, load_reviews, split_corpus
from minidl.keras.callbacks import EarlyStopping
from minidl.data import tokenizer_from_json
from _notebook import show  # saves a figure; in a notebook it is also shown inline

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": several label budgets, longer
BUDGETS, MAXLEN, EPOCHS = {"small": ([1000], 60, 5), "large": ([500, 2000, 13891], 100, 10)}[SIZE]
# Lessons 10 and 11 share one output folder: Lesson 10 left its language model there.
OUT = os.environ.get("MINIDL_LESSON_OUT") or os.path.join(tempfile.gettempdir(), "minidl-lessons")
os.makedirs(OUT, exist_ok=True)
WEIGHTS = os.environ.get("MINIDL_WEIGHTS")   # None: the checkpoints shipped inside minidl
md.manual_seed(0)

# %% [markdown]
# ## 1. The pretrained model
#
# Lesson 10 saved its LSTM language model in the output folder it shares with this lesson
# (`MINIDL_LESSON_OUT`, or `minidl-lessons` in the system's temporary folder). If it is not
# there — you are running this lesson on its own — a small one is pretrained now, exactly as
# in Lesson 10 with `SIZE = "small"` (seconds). Either way, the next line says which model this
# lesson fine-tunes.

# %%
shipped = md.pretrained.load("gpt-zh-char-small", folder=WEIGHTS)   # its vocabulary; section 6


def pretrain_small_language_model():
    """Lesson 10's small recipe: the shipped vocabulary, unigram bias, 300 TBPTT steps."""
    reviews = load_reviews(split_seed=REVIEW_SPLIT_SEED)
    corpus, held_out = split_corpus(load_peoples_daily(), val_fraction=0.05)
    tokenizer = shipped.tokenizer
    config = dict(size="small", steps=300, embedding_dim=32, hidden_size=64,
                  vocab_size=transfer.vocabulary_size(tokenizer))
    stream = transfer.encode_stream(tokenizer, corpus[:3000] + reviews.train.texts[:3000])
    lm = transfer.CharLanguageModel(config["vocab_size"], 32, 64)
    transfer.set_unigram_bias(lm, stream)                                      # Lesson 10
    transfer.pretrain(lm, stream, steps=300, batch_size=16, bptt=32, lr=5e-3, verbose=0)
    config["perplexity_after"] = {"reviews": transfer.perplexity(
        lm, transfer.encode_stream(tokenizer, reviews.val.texts[:150]), batch_size=8)}
    return lm, tokenizer, config


paths = [os.path.join(OUT, f"lesson10_{name}") for name in ("lm.npz", "tokenizer.json",
                                                            "config.json")]
if all(os.path.exists(p) for p in paths):
    with open(paths[1], encoding="utf-8") as f:
        tokenizer = tokenizer_from_json(f.read())
    with open(paths[2], encoding="utf-8") as f:
        config = json.load(f)
    lm = transfer.CharLanguageModel(config["vocab_size"], config["embedding_dim"],
                                    config["hidden_size"])
    lm.load_state_dict(md.load(paths[0]))
    source = f"Lesson 10's language model from {paths[0]}"
else:
    print("Lesson 10's model is not in", OUT, "- pretraining a small one now")
    lm, tokenizer, config = pretrain_small_language_model()
    source = "a small language model pretrained just now (Lesson 10's small recipe)"
vocab_size = config["vocab_size"]
print(f"loaded: {source} — an LSTM (CharLanguageModel, {lm.num_parameters():,} parameters, "
      f"SIZE {config['size']!r}), pretrained for {config['steps']} steps, held-out perplexity "
      f"{config['perplexity_after']['reviews']:.0f} on reviews, vocabulary {vocab_size}")

# %% [markdown]
# ## 2. The labelled data
#
# The classifier must use the language model's vocabulary, so the reviews are encoded with its
# tokenizer (characters; 0 = padding, 1 = unknown character). Pre-padding keeps the end of each
# review next to the output (Lesson 6).

# %%
reviews = load_reviews(split_seed=REVIEW_SPLIT_SEED)
x_train_all = transfer.encode_texts(tokenizer, reviews.train.texts, MAXLEN)
y_train_all = reviews.train.labels
x_val = transfer.encode_texts(tokenizer, reviews.val.texts[:500], MAXLEN)  # for decisions
y_val = reviews.val.labels[:500]
x_test, y_test = transfer.encode_texts(tokenizer, reviews.test.texts, MAXLEN), reviews.test.labels
print(f"training pool {x_train_all.shape}, validation {x_val.shape}, test {x_test.shape}")

# %% [markdown]
# ## 3. Transfer and fine-tune 迁移与微调
#
# The classifier is Embedding → LSTM (padding masked) → Dropout → Linear → sigmoid, built with
# the language model's sizes. `transfer_encoder` copies the pretrained embedding and LSTM
# weights into it (copies: the language model itself is not changed); the head is new and
# random.
#
# Two precautions, both about that random head:
# - **Freeze the encoder for the first epoch** (冻结): only the head trains, so its large,
#   random early gradients cannot wreck the pretrained weights. Freezing a parameter is just
#   `requires_grad = False`: no gradient is computed for it and the optimizer skips it.
# - **Discriminative learning rates**: afterwards the encoder trains with a smaller learning rate
#   (10⁻³) than the head (3·10⁻³) — it should be adjusted, not relearned. The optimizer gets two
#   *parameter groups*, each with its own `lr`.
#
# The network trained **from scratch** is the same architecture with random weights, trained on
# the same examples with the same seed, at the head's learning rate throughout.

# %%
def train_classifier(pretrained: bool, n_labels: int):
    md.manual_seed(0)
    classifier = transfer.SentimentClassifier(vocab_size, config["embedding_dim"],
                                              config["hidden_size"])
    if pretrained:
        transfer.transfer_encoder(lm, classifier)
    rows = np.arange(min(n_labels, len(y_train_all)))   # the training split is already shuffled
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = transfer.fine_tune(
        classifier, x_train_all[rows], y_train_all[rows], x_val, y_val, epochs=EPOCHS,
        batch_size=32, lr_encoder=1e-3 if pretrained else 3e-3, lr_head=3e-3,
        freeze_epochs=1 if pretrained else 0, verbose=0, callbacks=[stop])
    return classifier, history


start = time.perf_counter()
n_labels = BUDGETS[0]
fine_tuned, fine_tuned_history = train_classifier(True, n_labels)
moved = np.linalg.norm(fine_tuned.embedding.W.numpy() - lm.embedding.W.numpy()) / \
    np.linalg.norm(lm.embedding.W.numpy())
print(f"fine-tuned on {n_labels} labels in {time.perf_counter() - start:.1f} s; the embedding "
      f"moved {moved:.1%} away from the pretrained one (the language model is unchanged)")
print("validation accuracy per epoch:", np.round(fine_tuned_history.history["val_accuracy"], 3))

# %% [markdown]
# ## 4. Evaluation 评估
#
# For a binary classifier with the positive class 1 (a positive review), compare each
# prediction with the truth:
#
# |                 | predicted negative (0) | predicted positive (1) |
# |---|---|---|
# | **truly negative** | TN (true negative 真负例) | FP (false positive 假正例) |
# | **truly positive** | FN (false negative 假负例) | TP (true positive 真正例) |
#
# That table is the **confusion matrix** 混淆矩阵, C[i, j] = number of examples of class i
# predicted as j. From it:
#
# - **accuracy** 准确率 = (TP + TN) / N — the fraction of correct predictions (what Keras logs
#   as `accuracy`). It is *not* precision, whatever some tutorials say.
# - **precision** 精确率 = TP / (TP + FP) — of the reviews called positive, how many are;
# - **recall** 召回率 = TP / (TP + FN) — of the positive reviews, how many were found;
# - **F1** = 2 · precision · recall / (precision + recall) — their harmonic mean, high only when
#   both are.
#
# Accuracy alone hides a lot: on a test set with 90 % positives, "always positive" scores 0.90
# accuracy with a recall of 1 for the positives and 0 for the negatives.

# %%
probabilities = transfer.predict_proba(fine_tuned, x_test)
predicted = (probabilities > 0.5).astype(int)
TP = int(np.sum((predicted == 1) & (y_test == 1)))
TN = int(np.sum((predicted == 0) & (y_test == 0)))
FP = int(np.sum((predicted == 1) & (y_test == 0)))
FN = int(np.sum((predicted == 0) & (y_test == 1)))
accuracy = (TP + TN) / len(y_test)
precision = TP / (TP + FP)
recall = TP / (TP + FN)
f1 = 2 * precision * recall / (precision + recall)
print(f"TP {TP}  TN {TN}  FP {FP}  FN {FN}  (N = {len(y_test)})")
print(f"by hand:         accuracy {accuracy:.4f}  precision {precision:.4f}  "
      f"recall {recall:.4f}  F1 {f1:.4f}")
print(f"minidl.metrics:  accuracy {metrics.accuracy_score(y_test, predicted):.4f}  "
      f"precision {metrics.precision_score(y_test, predicted):.4f}  "
      f"recall {metrics.recall_score(y_test, predicted):.4f}  "
      f"F1 {metrics.f1_score(y_test, predicted):.4f}")
print("confusion matrix [[TN, FP], [FN, TP]]:\n", metrics.confusion_matrix(y_test, predicted))
print(metrics.classification_report(y_test, predicted, target_names=["negative", "positive"],
                                    digits=4))
show(plot.confusion_matrix(y_true=y_test, y_pred=predicted, labels=[0, 1],
                           title="fine-tuned classifier (test)"),
     os.path.join(OUT, "lesson11_confusion.png"))

# %% [markdown]
# The report gives precision, recall and F1 for each class (each in turn taken as the positive
# one), then accuracy, the **macro** average (the plain mean over classes) and the
# **weighted** average (weighted by each class's support, its number of true examples).
#
# **The threshold 决策阈值.** 0.5 is a choice. Raising it makes the model call fewer reviews
# positive: precision rises and recall falls. Which trade-off is right depends on the cost of
# each mistake — pick it on the validation set, never on the test set.

# %%
val_probabilities = transfer.predict_proba(fine_tuned, x_val)
for threshold in (0.3, 0.5, 0.7):
    p = (val_probabilities > threshold).astype(int)
    print(f"validation, threshold {threshold}: precision "
          f"{metrics.precision_score(y_val, p, zero_division=0):.4f}  recall "
          f"{metrics.recall_score(y_val, p, zero_division=0):.4f}  F1 "
          f"{metrics.f1_score(y_val, p, zero_division=0):.4f}")

# %% [markdown]
# ## 5. Pretrained versus scratch 预训练 vs 从零训练
#
# The question pretraining must answer: does starting from the language model beat the same
# network trained from random weights on the same labels? Everything else is held equal —
# architecture, examples, seed, epochs, early stopping on the validation set — and the test set
# is used once per model, only to report.

# %%
rows, scratch = [], None
for budget in BUDGETS:
    for name in ("pretrained", "scratch"):
        if name == "pretrained" and budget == n_labels:
            classifier = fine_tuned            # trained above
        else:
            classifier, _ = train_classifier(name == "pretrained", budget)
        if name == "scratch" and budget == n_labels:
            scratch = classifier               # for section 6
        scores = transfer.classification_scores(classifier, x_test, y_test)
        rows.append({"labels": min(budget, len(y_train_all)), "model": name, **scores})
print(f"{'labels':>7}  {'model':<11}{'accuracy':>9}{'precision':>10}{'recall':>8}{'F1':>8}")
for r in rows:
    print(f"{r['labels']:>7}  {r['model']:<11}{r['accuracy']:>9.4f}{r['precision']:>10.4f}"
          f"{r['recall']:>8.4f}{r['f1']:>8.4f}")
if len(BUDGETS) > 1:
    show(plot.budget_comparison(rows), os.path.join(OUT, "lesson11_budgets.png"))

md.manual_seed(0)
fresh = transfer.SentimentClassifier(vocab_size, config["embedding_dim"], config["hidden_size"])
for name in ("embedding.W", "lstm.cell.W_x"):
    rms = {label: float(np.sqrt(np.mean(model.state_dict()[name] ** 2)))
           for label, model in (("pretrained", lm), ("fresh", fresh))}
    print(f"root-mean-square of {name}: pretrained {rms['pretrained']:.3f}, "
          f"fresh initialisation {rms['fresh']:.3f}")

# %% [markdown]
# **Reading the result.** With the default small setting — Lesson 10's LSTM of 0.4 M
# parameters, pretrained for 300 steps (about 150 k characters, seconds on a CPU), fine-tuned
# on 1,000 labels — you should see the model trained **from scratch win** by several points of
# accuracy, and the pretrained one still improving when training stops (its validation
# accuracy rises more slowly). That is a real result, not a bug, and it is typical:
#
# - the language model is still weak (its held-out perplexity in Lesson 10 is about 400, with
#   the unigram table at about 600 — far from knowing the language), so its features carry
#   little sentiment; what it did learn is tuned to predicting the next character;
# - its weights are several times larger than a fresh initialisation (printed above), so the
#   gates start further out on the flat parts of σ and tanh, and adapting them takes more
#   steps than a short fine-tuning gives.
#
# Pretraining pays off when the language model has read far more text than the labelled set
# contains and has learned it well: ULMFiT (Howard & Ruder, 2018) pretrained on 100 million
# words before fine-tuning. (One seed each here: differences of a point or so are within
# seed-to-seed noise.) The honest way to claim a benefit is exactly this table: equal budgets,
# validation for every choice, the test set used once.
#
# ## 6. The same labels, a model that has read more
#
# minidl ships a language model that has read much more: `gpt-zh-char-small`, the GPT of
# Lessons 13–14, pretrained by `minidl pretrain` on the same sources as Lesson 10's LSTM (the
# training corpus and the training reviews) for about an hour on a 2-core CPU. Lesson 10
# compared their perplexities; here is what its features are worth for the same 1,000 labels.
# The cheapest test of a pretrained representation is a **linear probe** (线性探测): freeze the
# whole model, take its pooled final hidden states for each review (the mean over the
# characters and the state at the last one), and fit a logistic regression on them, its
# regularisation chosen on validation reviews. Nothing of the GPT is trained. To keep this
# lesson short, the probe is scored on the first 400 test reviews, and so are the two LSTMs
# again, for a like-for-like comparison.

# %%
print("loaded:", shipped.describe())
probe_rows = np.arange(min(n_labels, len(y_train_all)))      # the same labelled reviews
n_val, n_test = 200, 400
gpt_ids = {name: transfer.encode_texts(shipped.tokenizer, texts, MAXLEN).astype(np.int64)
           for name, texts in (("train", [reviews.train.texts[i] for i in probe_rows]),
                               ("val", reviews.val.texts[:n_val]),
                               ("test", reviews.test.texts[:n_test]))}
start = time.perf_counter()
features = {name: ft.pooled_features(shipped.model, ids) for name, ids in gpt_ids.items()}
probe = ft.fit_probe(features["train"], y_train_all[probe_rows], features["val"], y_val[:n_val],
                     seed=0)
probe_scores = metrics.binary_scores(y_test[:n_test], probe.predict_proba(features["test"])[:, 1])
print(f"{features['train'].shape[1]} frozen features per review; features and probe in "
      f"{time.perf_counter() - start:.1f} s")
print(f"first {n_test} test reviews, {n_labels} labels:  accuracy      F1")
for name, model in (("LSTM, pretrained in Lesson 10", fine_tuned),
                    ("LSTM, from scratch", scratch)):
    p = transfer.predict_proba(model, x_test[:n_test])
    s = metrics.binary_scores(y_test[:n_test], p)
    print(f"  {name:<36}{s['accuracy']:>8.4f}{s['f1']:>8.4f}")
print(f"  {'GPT checkpoint, linear probe':<36}{probe_scores['accuracy']:>8.4f}"
      f"{probe_scores['f1']:>8.4f}")

# %% [markdown]
# **The true story.** Pretraining for seconds gave the LSTM nothing to transfer — its
# fine-tuned classifier is behind the one trained from scratch. The shipped GPT, which has read
# a hundred times more text with six times the parameters, gives frozen features that a linear
# classifier turns into a sentiment classifier on the same 1,000 labels: we saw test accuracy
# 0.80 for the probe, 0.76 for the LSTM from scratch and 0.68 for the LSTM pretrained in
# Lesson 10 (±2 points of sampling noise each on 400 reviews). The probe trains 385
# numbers; the LSTM from scratch trained all of its 0.15 million on the labels.
# How much further adapting the GPT goes — LoRA, full fine-tuning — and where a classical
# TF-IDF baseline still wins is the subject of Lesson 15; `minidl demo` measures it at several
# label budgets with several label subsets each.
#
# **Exercises.** (1) Set `freeze_epochs=0` for the pretrained model: better or worse? (2) Copy
# only the embedding (`classifier.embedding.load_state_dict(lm.embedding.state_dict())`) and
# compare. (3) Pretrain Lesson 10's model 5× longer and redo the table. (4) Fit the probe on
# 200 and on 5,000 labels: how does its accuracy change compared with the LSTM from scratch?
