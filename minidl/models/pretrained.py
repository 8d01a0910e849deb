"""Pretrained checkpoints that ship inside minidl, loaded by name — the way real work starts
from downloaded weights ("模型初始化：使用预训练模型权重"), without downloading anything.

    import minidl as md
    pretrained = md.pretrained.load("gpt-zh-char-small")
    pretrained.model          # a GPT with the trained weights (float32)
    pretrained.tokenizer      # its character vocabulary
    pretrained.provenance     # how it was made: command, seed, steps, tokens, wall time, machine,
                              # held-out perplexities, corpus

Each checkpoint is two files in ``minidl/models/weights/``: ``NAME.npz`` (an ``md.save`` file:
the model's config, its vocabulary and its weights in float16) and ``NAME.json`` (its
provenance). Both are written by ``export`` from a ``minidl pretrain`` run folder, and the
provenance names the command that reproduces the run.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from minidl import backend
from minidl.data.text import Tokenizer, tokenizer_from_json
from minidl.io import CheckpointError
from minidl.io import load as load_file
from minidl.models.gpt import GPT, GPTConfig

WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
FORMAT = "minidl-pretrained-v1"
# The fixed slice on which a checkpoint's perplexity is recorded and re-checked by the tests.
CHECK_WINDOWS = 8


@dataclass
class Pretrained:
    """A loaded checkpoint: the model, its tokenizer and its provenance."""

    name: str
    model: GPT
    tokenizer: Tokenizer
    provenance: Dict[str, Any]

    def encode(self, texts: List[str]) -> List[List[int]]:
        """Character ids of each text (unknown characters → 1), as the model saw them."""
        return self.tokenizer.texts_to_sequences(list(texts))

    def describe(self) -> str:
        """One paragraph a user can read: what this model is and how it was made."""
        p = self.provenance
        ppl = p.get("held_out_perplexity", {})
        return (f"{self.name}: GPT {p['config']['n_layers']} layers × d{p['config']['d_model']}, "
                f"{p['parameters']:,} parameters, vocabulary {p['config']['vocab_size']}; "
                f"pretrained by `{p['command']}` for {p['steps']:,} steps "
                f"({p['tokens']:,} tokens, {p['wall_time_s'] / 3600:.1f} h on {p['machine']}); "
                f"held-out perplexity: People's Daily {ppl.get('corpus', float('nan')):.1f}, "
                f"reviews {ppl.get('reviews', float('nan')):.1f}")


def available() -> List[str]:
    """Names of the checkpoints shipped with this installation."""
    if not os.path.isdir(WEIGHTS):
        return []
    return sorted(f[:-4] for f in os.listdir(WEIGHTS) if f.endswith(".npz"))


def paths(name: str, folder: Optional[str] = None) -> tuple:
    folder = folder or WEIGHTS
    return os.path.join(folder, f"{name}.npz"), os.path.join(folder, f"{name}.json")


def load(name: str, device: Optional[str] = None, folder: Optional[str] = None) -> Pretrained:
    """The shipped checkpoint ``name`` as a float32 ``GPT`` on ``device``.

    Raises ``ValueError`` naming the checkpoints that exist when ``name`` is unknown, and
    ``CheckpointError`` for a damaged file.
    """
    weights_path, provenance_path = paths(name, folder)
    if not os.path.exists(weights_path):
        names = available() if folder is None else []
        raise ValueError(f"no pretrained checkpoint {name!r}; available: "
                         f"{', '.join(names) or 'none'}")
    stored = load_file(weights_path)
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        raise CheckpointError(f"{weights_path!r} is not a minidl pretrained checkpoint")
    model = GPT(GPTConfig(**stored["config"]))
    model.load_state_dict({k: np.asarray(v, dtype=np.float32)
                           for k, v in stored["weights"].items()})
    model.to(backend.check_device(device))
    model.eval()
    with open(provenance_path, encoding="utf-8") as f:
        provenance = json.load(f)
    return Pretrained(name, model, tokenizer_from_json(stored["vocab"]), provenance)


def check_perplexities(model: GPT, streams: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Perplexity on the first ``CHECK_WINDOWS`` windows of each held-out stream."""
    return {name: round(model.perplexity(stream, max_windows=CHECK_WINDOWS), 4)
            for name, stream in streams.items()}
