"""Plots for lessons and reports: training curves, confusion matrices, computation graphs.

    from minidl import plot
    plot.training_curves(history, 'curves.png')            # loss / accuracy per epoch
    plot.confusion_matrix(y_true=y, y_pred=p, path='cm.png')
    plot.budget_comparison(rows, 'budgets.png')            # scores against label budgets
    plot.budget_curves(summary, 'budgets.png')             # the demo's test accuracy by budget
    print(plot.graph_to_dot(loss))                         # Graphviz source of the graph
    plot.computation_graph(loss, 'graph.png')              # an image, or a text tree

matplotlib is imported only when a plot is made (``pip install "minidl[plot]"``). Figures are
drawn on matplotlib's Agg canvas without ``pyplot``, so plotting works on machines with no
display and never changes the backend a notebook has chosen. Each function returns the
``matplotlib.figure.Figure`` (shown inline when it is the last value of a notebook cell) and
saves it when given ``path``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from minidl.autograd import Function, Tensor


def _figure(figsize: Tuple[float, float]) -> Any:
    """A new Figure on an Agg canvas (no display needed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('minidl.plot needs matplotlib: pip install "minidl[plot]" '
                          '(or pip install matplotlib)') from None
    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


def _finish(figure: Any, path: Optional[str]) -> Any:
    figure.tight_layout()
    if path is not None:
        figure.savefig(os.fspath(path), dpi=100)
    return figure


# ----------------------------------------------------------------------------- training curves
def training_curves(history: Any, path: Optional[str] = None,
                    keys: Optional[Sequence[str]] = None, title: Optional[str] = None) -> Any:
    """One panel per logged quantity (``loss``, ``accuracy``, ...) against the epoch, training
    and validation (``val_`` keys) as two lines.

    ``history``: a ``History`` (what ``fit`` returns) or its ``.history`` dict.
    ``keys``: which quantities (default: every key without the ``val_`` prefix).
    """
    logs: Mapping[str, List[float]] = getattr(history, "history", history)
    keys = list(keys) if keys is not None else [k for k in logs if not k.startswith("val_")]
    missing = [k for k in keys if k not in logs]
    if not keys or missing:
        raise ValueError(f"nothing to plot for {missing or 'an empty history'}; the history "
                         f"has {sorted(logs)}")
    figure = _figure((4.5 * len(keys), 3.5))
    for i, key in enumerate(keys):
        axes = figure.add_subplot(1, len(keys), i + 1)
        epochs = np.arange(1, len(logs[key]) + 1)
        axes.plot(epochs, logs[key], "o-", label="train")
        if f"val_{key}" in logs:
            axes.plot(np.arange(1, len(logs[f"val_{key}"]) + 1), logs[f"val_{key}"], "s--",
                      label="validation")
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.set_title(key if title is None else f"{title}: {key}")
        axes.grid(alpha=0.3)
        axes.legend()
    return _finish(figure, path)


# ----------------------------------------------------------------------------- confusion matrix
def confusion_matrix(matrix: Any = None, path: Optional[str] = None, *, y_true: Any = None,
                     y_pred: Any = None, labels: Optional[Sequence[Any]] = None,
                     normalize: Optional[str] = None, title: str = "Confusion matrix",
                     cmap: str = "Blues") -> Any:
    """A heat map of a confusion matrix, each cell annotated with its value.

    Give the matrix (``C[i, j]``: true class i predicted as j), or ``y_true`` and ``y_pred``
    to compute it with ``minidl.metrics.confusion_matrix`` (``labels``, ``normalize`` as
    there). ``labels`` also names the rows and columns.
    """
    if matrix is None:
        if y_true is None or y_pred is None:
            raise ValueError("give a confusion matrix, or both y_true and y_pred")
        from minidl import metrics
        matrix = metrics.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)
        if labels is None:
            labels = list(np.union1d(np.asarray(y_true), np.asarray(y_pred)))
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {matrix.shape}")
    n = matrix.shape[0]
    labels = [str(label) for label in (labels if labels is not None else range(n))]
    figure = _figure((2.5 + 0.9 * n, 2.0 + 0.8 * n))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(matrix, cmap=cmap, vmin=0)
    figure.colorbar(image, ax=axes)
    threshold = matrix.max() / 2 if matrix.size else 0
    integers = np.issubdtype(matrix.dtype, np.integer)
    for i in range(n):
        for j in range(n):
            text = f"{matrix[i, j]:d}" if integers else f"{matrix[i, j]:.2f}"
            axes.text(j, i, text, ha="center", va="center",
                      color="white" if matrix[i, j] > threshold else "black")
    axes.set_xticks(range(n), labels)
    axes.set_yticks(range(n), labels)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("True label")
    axes.set_title(title)
    return _finish(figure, path)


# ----------------------------------------------------------------------------- label budgets
def budget_comparison(rows: Sequence[Mapping[str, Any]], path: Optional[str] = None,
                      metrics: Sequence[str] = ("accuracy", "f1"),
                      title: str = "Scores by number of labelled examples") -> Any:
    """Scores against the number of labelled training examples, one line per model.

    ``rows``: dicts with ``labels`` (the budget), ``model`` (e.g. ``'pretrained'``,
    ``'scratch'``) and the ``metrics`` keys — the rows of ``minidl demo``'s ``budgets``.
    """
    missing = [k for k in ("labels", "model", *metrics) for r in rows if k not in r]
    if not rows or missing:
        raise ValueError(f"budget_comparison needs rows with 'labels', 'model' and "
                         f"{list(metrics)}; missing {sorted(set(missing)) or 'all rows'}")
    models = list(dict.fromkeys(r["model"] for r in rows))
    figure = _figure((4.5 * len(metrics), 3.5))
    for i, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), i + 1)
        for model in models:
            points = sorted((r["labels"], r[metric]) for r in rows if r["model"] == model)
            axes.plot([p[0] for p in points], [p[1] for p in points], "o-", label=model)
        axes.set_xscale("log")
        budgets = sorted({r["labels"] for r in rows})
        axes.minorticks_off()
        axes.set_xticks(budgets, [str(b) for b in budgets])
        axes.set_xlabel("labelled training examples")
        axes.set_ylabel(metric)
        axes.set_title(metric)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    return _finish(figure, path)


def budget_curves(summary: Sequence[Mapping[str, Any]], path: Optional[str] = None,
                  names: Optional[Mapping[str, str]] = None, baseline: Optional[str] = None,
                  metric: str = "test_accuracy") -> Any:
    """Test accuracy against the number of labels (log axis), one line per method, with
    error bars (standard deviation over label subsets); the ``baseline`` method is drawn
    dashed. ``summary``: the rows of ``minidl demo``'s ``summary`` (``labels``, ``method``,
    ``test_accuracy``, ``test_accuracy_std``)."""
    if not summary:
        raise ValueError("budget_curves needs at least one summary row")
    names = dict(names or {})
    figure = _figure((7.5, 4.5))
    axes = figure.add_subplot(1, 1, 1)
    for method in dict.fromkeys(r["method"] for r in summary):
        points = sorted((r["labels"], r[metric], r.get(metric + "_std", 0.0))
                        for r in summary if r["method"] == method)
        style = dict(linestyle="--", color="black") if method == baseline else {}
        axes.errorbar([p[0] for p in points], [p[1] for p in points],
                      yerr=[p[2] for p in points], marker="o", capsize=3,
                      label=names.get(method, method), **style)
    budgets = sorted({r["labels"] for r in summary})
    axes.set_xscale("log")
    axes.minorticks_off()
    axes.set_xticks(budgets, [str(b) for b in budgets])
    axes.set_xlabel("labelled training examples (log scale)")
    axes.set_ylabel(metric.replace("_", " ") + " (test split)")
    axes.set_title("Where pretraining pays: test accuracy by label budget\n"
                   "(mean ± sd over label subsets below 2,000 labels)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _finish(figure, path)


def scaling_curves(scaling: Mapping[str, Any], path: Optional[str] = None) -> Any:
    """Downstream test accuracy against pretraining tokens (log axis), one line per
    (method, labels) pair, with the TF-IDF and from-scratch references as horizontal lines.
    ``scaling``: the ``scaling`` record of a checkpoint's provenance."""
    figure = _figure((7.5, 4.5))
    axes = figure.add_subplot(1, 1, 1)
    for series in scaling["series"]:
        axes.plot(series["tokens"], series["test_accuracy"], "o-", label=series["label"])
    # a reference's kind ("TF-IDF + LR", "GPT from scratch") picks its colour, the order of
    # its budget within the kind its line style, so no two references look alike
    colours, styles, seen = ["black", "gray", "tab:brown", "tab:olive"], ["--", ":", "-."], {}
    for line in scaling.get("references", []):
        kind = line["label"].split(",")[0]
        budgets = seen.setdefault(kind, [])
        budgets.append(line["label"])
        colour = colours[list(seen).index(kind) % len(colours)]
        axes.axhline(line["test_accuracy"], linestyle=styles[(len(budgets) - 1) % len(styles)],
                     color=line.get("color", colour), label=line["label"])
    axes.set_xscale("symlog", linthresh=1e5)  # the untrained model sits at 0 tokens
    axes.set_xlim(left=0)
    axes.set_xlabel("pretraining tokens (characters seen; log scale above 100,000)")
    axes.set_ylabel("test accuracy")
    axes.set_title("Scaling: downstream accuracy as pretraining grows")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return _finish(figure, path)


def loss_curve(losses: Sequence[float], path: Optional[str] = None,
               title: str = "training loss") -> Any:
    """One training-loss curve by optimizer step (raw and smoothed)."""
    figure = _figure((6, 3.5))
    axes = figure.add_subplot(1, 1, 1)
    values = np.asarray(losses, dtype=float)
    axes.plot(values, alpha=0.35, label="per step")
    if len(values) >= 5:
        k = max(2, len(values) // 20)
        smooth = np.convolve(values, np.ones(k) / k, mode="valid")
        axes.plot(np.arange(k - 1, len(values)), smooth, label=f"mean of {k} steps")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (training batches)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    return _finish(figure, path)


# ----------------------------------------------------------------------------- computation graph
def _graph(output: Tensor) -> Tuple[List[Function], List[Tensor]]:
    """The Functions and tensors that produced ``output``, outputs before inputs (no recursion,
    so long unrolled graphs are fine)."""
    functions: List[Function] = []
    tensors: List[Tensor] = [output]
    seen = {id(output)}
    stack = [output]
    while stack:
        f = stack.pop().creator
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        functions.append(f)
        for x in f.inputs:
            if id(x) not in seen:
                seen.add(id(x))
                tensors.append(x)
                stack.append(x)
    return functions, tensors


def _label(t: Tensor, names: Dict[int, str]) -> str:
    name = names.get(id(t)) or t.name or ""
    return f"{name} {tuple(t.shape)} {t.dtype}".strip()


def _names(names: Optional[Mapping[str, Tensor]]) -> Dict[int, str]:
    return {id(t): name for name, t in (names or {}).items()}


def graph_to_dot(output: Tensor, names: Optional[Mapping[str, Tensor]] = None) -> str:
    """Graphviz ``dot`` source of the computation graph of ``output``.

    Boxes are tensors (parameters and inputs that require grad filled orange, constants grey,
    results white); ellipses are the operations, named by their Function class (``MatMul``,
    ``Add``, ``Sigmoid``...). ``names``: labels for tensors, e.g.
    ``dict(model.named_parameters())``.
    """
    labels = _names(names)
    functions, tensors = _graph(output)
    ids = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    ids.update({id(f): f"f{k}" for k, f in enumerate(functions)})
    lines = ["digraph minidl {", "  rankdir=BT;",
             '  node [fontname="Helvetica", fontsize=10];']
    for t in tensors:
        if t.creator is not None:
            style = 'fillcolor="white"'
        elif t.requires_grad:
            style = 'fillcolor="#fdd0a2"'
        else:
            style = 'fillcolor="#e0e0e0"'
        lines.append(f'  {ids[id(t)]} [label="{_label(t, labels)}", shape=box, style=filled, '
                     f'{style}];')
    for f in functions:
        lines.append(f'  {ids[id(f)]} [label="{type(f).__name__}", shape=ellipse, '
                     f'style=filled, fillcolor="#c6dbef"];')
        for x in f.inputs:
            lines.append(f"  {ids[id(x)]} -> {ids[id(f)]};")
    for t in tensors:
        if t.creator is not None:
            lines.append(f"  {ids[id(t.creator)]} -> {ids[id(t)]};")
    lines.append("}")
    return "\n".join(lines)


def graph_to_text(output: Tensor, names: Optional[Mapping[str, Tensor]] = None) -> str:
    """The computation graph of ``output`` as an indented tree, output first:

        Sigmoid -> (2, 1) float32
        └── Add -> (2, 1) float32
            ├── MatMul -> (2, 1) float32
            │   ├── x (2, 3) float32
            │   └── W (3, 1) float32 [requires grad]
            └── b (1,) float32 [requires grad]

    A result used twice is expanded once and later marked ``(see above)``.
    """
    labels = _names(names)
    lines: List[str] = []
    expanded = set()
    stack: List[Tuple[Tensor, str, str]] = [(output, "", "")]  # tensor, own prefix, children's
    while stack:
        t, prefix, child_prefix = stack.pop()
        f = t.creator
        if f is None:
            grad = " [requires grad]" if t.requires_grad else ""
            lines.append(f"{prefix}{_label(t, labels)}{grad}")
            continue
        described = f"{type(f).__name__} -> {_label(t, labels)}"
        if id(f) in expanded:
            lines.append(f"{prefix}{described} (see above)")
            continue
        expanded.add(id(f))
        lines.append(prefix + described)
        children = list(f.inputs)
        for i in reversed(range(len(children))):
            last = i == len(children) - 1
            stack.append((children[i], child_prefix + ("└── " if last else "├── "),
                          child_prefix + ("    " if last else "│   ")))
    return "\n".join(lines)


def computation_graph(output: Tensor, path: str = "graph.png",
                      names: Optional[Mapping[str, Tensor]] = None) -> str:
    """Draw the computation graph of ``output``; returns the path of the file written.

    With Graphviz's ``dot`` program on the PATH the graph is rendered to ``path`` (format from
    its suffix: .png, .svg, .pdf). Without it, the readable text tree (``graph_to_text``) is
    written beside it as ``<name>.txt``, with a warning saying how to install Graphviz.
    """
    path = os.fspath(path)
    stem, suffix = os.path.splitext(path)
    dot = shutil.which("dot")
    if dot is not None:
        subprocess.run([dot, f"-T{suffix.lstrip('.') or 'png'}", "-o", path],
                       input=graph_to_dot(output, names).encode(), check=True)
        return path
    text_path = stem + ".txt"
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(graph_to_text(output, names) + "\n")
    warnings.warn(f"Graphviz's dot program was not found (apt install graphviz, brew install "
                  f"graphviz or conda install graphviz); wrote the graph as a text tree to "
                  f"{text_path}", stacklevel=2)
    return text_path
