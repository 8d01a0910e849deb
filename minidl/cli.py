"""The ``minidl`` command: ``minidl demo``, ``minidl xor``, ``minidl lesson``, ``minidl exercises``,
``minidl grade``.

Run ``minidl --help`` for the list. Every sub-command imports what it needs when it runs, so
``minidl --help`` is instant and works without the optional extras.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

DESCRIPTION = ("minidl: a deep-learning framework written from scratch on NumPy, for teaching. "
               "Train σ(Wx+b) layers on XOR, run the lessons, export and grade the exercises, "
               "pretrain a small GPT and fine-tune it on Chinese reviews.")
EPILOG = ("Run 'minidl COMMAND --help' for the options of a command. A failure prints one line "
          "and exits with status 1 (2 for bad arguments); --debug, or the environment variable "
          "MINIDL_DEBUG=1, shows the Python traceback instead.")


def xor(args: argparse.Namespace) -> int:
    """Train σ(Wx+b) layers on XOR from scratch and print the loss falling."""
    import numpy as np

    import minidl as md
    from minidl import nn, optim

    md.manual_seed(args.seed)
    X = md.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32", device=args.device)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    model = nn.Sequential(nn.Linear(2, 8), nn.Sigmoid(), nn.Linear(8, 1), nn.Sigmoid()).to(
        args.device)
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    print(f"XOR with σ(Wx+b) layers: 2 -> 8 -> 1, Adam(lr=0.05), {args.steps} steps "
          f"on {args.device}")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = md.functions.binary_cross_entropy(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step % max(args.steps // 10, 1) == 0:
            print(f"  step {step:4d}   loss {loss.item():.5f}")
    with md.no_grad():
        p = model(X).numpy().ravel()
    print("predictions:", " ".join(f"{a}{b}->{v:.3f}" for (a, b), v in
                                   zip([(0, 0), (0, 1), (1, 0), (1, 1)], p)))
    accuracy = float(((p > 0.5) == y.ravel().astype(bool)).mean())
    print(f"accuracy {accuracy:.2f}   ({time.perf_counter() - start:.2f} s)")
    return 0 if accuracy == 1.0 else 1


def demo(args: argparse.Namespace) -> int:
    """Where pretraining pays: pretrained GPT vs scratch vs TF-IDF by label budget."""
    from minidl import backend
    from minidl.apps.demo import DemoError, run
    from minidl.data.datasets import DatasetNotAvailableError

    try:
        backend.array_module_for(args.device)
        run(size=args.size, seed=args.seed, device=args.device, out=args.out,
            verbose=args.verbose, pretrain=args.pretrain, minutes=args.minutes,
            checkpoint=args.checkpoint, weights=args.weights, workers=args.workers)
    except (backend.DeviceError, DemoError, DatasetNotAvailableError, ValueError) as error:
        print(f"minidl demo: {error}", file=sys.stderr)
        return 2
    return 0


def predict(args: argparse.Namespace) -> int:
    """Classify texts with a saved classifier bundle (minidl demo writes one)."""
    from minidl.apps.bundle import load_bundle
    from minidl.io import CheckpointError

    try:
        bundle = load_bundle(args.bundle)
    except (FileNotFoundError, CheckpointError) as error:
        print(f"minidl predict: {error}", file=sys.stderr)
        return 2
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for text, p in zip(texts, bundle.predict(texts)):
        label = bundle.labels[int(p > 0.5)]
        print(f"{p:.3f}\t{label}\t{text}")
    return 0


def pretrain(args: argparse.Namespace) -> int:
    """Start or resume a pretraining run (see minidl.apps.pretrain)."""
    from minidl import backend
    from minidl.apps import pretrain as pretrain_app
    from minidl.data.datasets import DatasetNotAvailableError

    try:
        backend.array_module_for(args.device)
        return pretrain_app.main(args)
    except (backend.DeviceError, DatasetNotAvailableError, ValueError) as error:
        print(f"minidl pretrain: {error}", file=sys.stderr)
        return 2


def _lessons_folder():
    """The ``lessons/`` folder of a source checkout (or an editable install) of minidl."""
    from pathlib import Path
    return Path(__file__).resolve().parent.parent / "lessons"


def lesson(args: argparse.Namespace) -> int:
    """Run lesson N as a script, or list the lessons when no number is given."""
    import subprocess

    folder = _lessons_folder()
    files = sorted(folder.glob("[0-9][0-9]_*.py")) if folder.is_dir() else []
    if not files:
        print("minidl lesson: error: the lessons ship with minidl's source, not with the "
              "installed package; run this from a checkout "
              f"(looked in {folder})", file=sys.stderr)
        return 2
    if args.number is None:
        for path in files:
            print(f"{int(path.name[:2]):3d}  {path.name}")
        return 0
    chosen = [p for p in files if int(p.name[:2]) == args.number]
    if not chosen:
        print(f"minidl lesson: error: no lesson {args.number}; there are lessons "
              f"{int(files[0].name[:2])} to {int(files[-1].name[:2])}", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(chosen[0])])


def positive_int(text: str) -> int:
    """An argparse type: a whole number ≥ 1 (``--steps 0`` or ``-5`` is a usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


def _version() -> str:
    from minidl import __version__
    return f"minidl {__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minidl", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of a failure (or set MINIDL_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.subcommands = sub  # main() reports a bad --device with the command's usage
    p = sub.add_parser("demo", help="where pretraining pays: pretrained GPT vs scratch vs "
                                     "TF-IDF by label budget, on Chinese reviews")
    p.add_argument("--size", choices=["tiny", "small", "all", "large"], default="small",
                   help="tiny: a smoke test; small: about 10 minutes on a 2-core CPU "
                        "(default); all: every label, pretrained methods vs TF-IDF (about "
                        "10 minutes); large: every budget with longer runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", default="minidl-out", help="folder for metrics, plots and the "
                                                       "classifier bundle")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    p.add_argument("--workers", type=int, default=None,
                   help="processes training models side by side (default: one per core on "
                        "the CPU, one on a GPU); the numbers do not depend on it")
    p.add_argument("--pretrain", action="store_true",
                   help="pretrain a new model inside the demo instead of the shipped one")
    p.add_argument("--minutes", type=float, default=5.0, help="budget of --pretrain")
    p.add_argument("--checkpoint", default=None,
                   help="name of the pretrained checkpoint (default: gpt-zh-char-small)")
    p.add_argument("--weights", default=None,
                   help="folder holding the checkpoint (default: the one shipped in minidl)")
    p.set_defaults(run=demo)
    p = sub.add_parser("predict", help="classify texts with a saved classifier bundle")
    p.add_argument("bundle", help="the folder minidl demo wrote (OUT/classifier)")
    p.add_argument("texts", nargs="*", help="texts to classify (default: lines of stdin)")
    p.set_defaults(run=predict)
    p = sub.add_parser("pretrain", help="pretrain a GPT-style character model (resumable)")
    from minidl.apps import pretrain as pretrain_app
    pretrain_app.add_arguments(p)
    p.set_defaults(run=pretrain)
    p = sub.add_parser("xor", help="train σ(Wx+b) layers on XOR and print the loss")
    p.add_argument("--steps", type=positive_int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.set_defaults(run=xor)
    p = sub.add_parser("lesson", help="run lesson N (no N: list the lessons)")
    p.add_argument("number", type=int, nargs="?")
    p.set_defaults(run=lesson)
    from minidl.exercises.cli import add_subcommands
    add_subcommands(sub)   # minidl exercises export|list, minidl grade
    for command in sub.choices.values():  # `minidl demo --debug` works as `minidl --debug demo`
        try:
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="show the Python traceback of a failure")
        except argparse.ArgumentError:
            pass  # the command has a --debug of its own
    return parser


def _device_problem(device: str) -> Optional[str]:
    """Why ``--device DEVICE`` cannot be used here, in command-line words; None if it can."""
    from minidl import backend
    name = str(device).lower()
    if name == "gpu":
        return "unknown device 'gpu': for a GPU use --device cuda"
    if name not in backend.DEVICES:
        return f"unknown device {device!r}: use --device cpu or --device cuda"
    found = backend.DEVICES[name]
    if not found.is_available():
        return f"--device {name}: {found.unavailable_reason()}; use --device cpu"
    return None


def _one_line(error: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``minidl ARGS``; returns the exit status. Bad arguments print the usage and one
    error line (status 2, argparse's convention); a failure during the work prints one line
    (status 1; 130 after Ctrl-C) unless ``--debug`` or ``MINIDL_DEBUG=1`` asks for the
    traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or \
        os.environ.get("MINIDL_DEBUG", "").strip() not in ("", "0")
    command = parser.subcommands.choices[args.command]
    if getattr(args, "device", None) is not None:
        problem = _device_problem(args.device)
        if problem:
            command.print_usage(sys.stderr)
            print(f"{command.prog}: error: {problem}", file=sys.stderr)
            return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\n{command.prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one line for the user; --debug for the developer
        if debug:
            raise
        print(f"{command.prog}: error: {_one_line(error)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
