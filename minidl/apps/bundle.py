"""A trained text classifier as one folder a user can keep: weights, tokenizer and config.

    minidl predict minidl-out/classifier "这个手机很好用"        # from the command line
    from minidl.apps.bundle import load_bundle
    load_bundle("minidl-out/classifier").predict(["这个手机很好用"])   # or in Python

``classifier.npz`` is an ``md.save`` file (no pickle): the GPT's config, the character
vocabulary, the classifier's weights (LoRA adapters already merged), the input length and the
label names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np

import minidl as md
from minidl.data import Tokenizer, tokenizer_from_json
from minidl.data.vocabulary import encode_texts as encode  # noqa: F401  (used by lessons)
from minidl.io import CheckpointError
from minidl.models.gpt import GPT, GPTClassifier, GPTConfig

FORMAT = "minidl-classifier-bundle-v1"
FILE = "classifier.npz"


def save_bundle(folder: str, model: GPTClassifier, tokenizer: Tokenizer, maxlen: int,
                info: Dict[str, Any]) -> str:
    """Write the bundle; returns the path of its file."""
    path = os.path.join(folder, FILE)
    md.save({"format": FORMAT, "minidl_version": md.__version__,
             "config": model.body.config.to_dict(), "vocab": tokenizer.to_json(ensure_ascii=False),
             "maxlen": maxlen, "labels": ["negative", "positive"], "info": info,
             "weights": model.state_dict()}, path)
    return path


@dataclass
class Bundle:
    """A loaded classifier: ``predict(texts)`` gives P(positive) per text."""

    model: GPTClassifier
    tokenizer: Tokenizer
    maxlen: int
    labels: List[str]
    info: Dict[str, Any]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        from minidl.apps.finetune import Classifier
        ids = encode(self.tokenizer, texts, self.maxlen)
        return Classifier("bundle", self.model).predict_proba(ids)


def load_bundle(folder: str) -> Bundle:
    """Read a bundle folder (or its ``classifier.npz``). Raises CheckpointError when the file is
    not a minidl classifier bundle."""
    path = folder if folder.endswith(".npz") else os.path.join(folder, FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no classifier bundle at {path!r} (minidl demo writes one to "
                                f"OUT/classifier/{FILE})")
    stored = md.load(path)
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is a minidl file but not a classifier bundle")
    model = GPTClassifier(GPT(GPTConfig(**stored["config"])), n_outputs=1)
    model.load_state_dict(stored["weights"])
    model.eval()
    return Bundle(model, tokenizer_from_json(stored["vocab"]), int(stored["maxlen"]),
                  list(stored["labels"]), stored["info"])
