"""The classic Keras text-classification example, running on minidl.

This is the seed code of the project as it was written for TensorFlow, with only its
``tensorflow.keras`` imports replaced by ``minidl.keras``: Tokenizer → pad_sequences →
Embedding → LSTM → Dense(sigmoid) → compile / fit / predict.

    python examples/seed_text_classification.py

Labels: the three sentences all say something good about programming, so there is no
sentiment to tell apart. The labelling used here marks the two sentences that start with
the subject 我 ("I ...": 我喜欢编程 "I like programming", 我热爱编程 "I love programming") as 1
and the sentence that starts with 编程 ("programming makes me happy") as 0 — a pattern the
LSTM can pick up from word order.

minidl's Tokenizer makes each Chinese character a token (Keras' would make each whole
sentence a single token, as Chinese has no spaces), so ``word_index`` holds characters.
"""
import numpy as np
from minidl.keras.preprocessing.text import Tokenizer
from minidl.keras.preprocessing.sequence import pad_sequences
from minidl.keras.models import Sequential
from minidl.keras.layers import Embedding, LSTM, Dense

texts = ['我喜欢编程', '我热爱编程', '编程让我快乐']
labels = np.array([1, 1, 0])  # 1: the sentence starts with 我 ("I ..."); 0: it does not

tokenizer = Tokenizer()
tokenizer.fit_on_texts(texts)
padded = pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=10)

model = Sequential()
model.add(Embedding(input_dim=len(tokenizer.word_index) + 1, output_dim=50, input_length=10))
model.add(LSTM(100))
model.add(Dense(1, activation='sigmoid'))

model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
model.fit(padded, labels, epochs=10, batch_size=1)
print(model.predict(padded))
