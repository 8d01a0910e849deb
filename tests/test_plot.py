"""minidl.plot: training curves, confusion matrices and computation graphs."""
import numpy as np
import pytest

import minidl as md
from minidl import functions as F

pytest.importorskip("matplotlib")
from minidl import plot  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def small_graph():
    x = md.tensor(np.ones((2, 3)))
    W = md.tensor(np.ones((3, 1)), requires_grad=True)
    b = md.tensor(np.zeros(1), requires_grad=True)
    return F.sigmoid(x @ W + b), {"x": x, "W": W, "b": b}


def test_training_curves_write_a_png(tmp_path):
    history = {"loss": [0.7, 0.5, 0.4], "accuracy": [0.5, 0.7, 0.8],
               "val_loss": [0.72, 0.6, 0.55], "val_accuracy": [0.5, 0.6, 0.7]}
    path = tmp_path / "curves.png"
    figure = plot.training_curves(history, str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [axes.get_title() for axes in figure.axes] == ["loss", "accuracy"]
    assert [len(axes.lines) for axes in figure.axes] == [2, 2]  # train and validation


def test_training_curves_accept_a_history_object_from_fit(tmp_path):
    from minidl.keras import layers as L
    from minidl.keras.models import Sequential
    model = Sequential([L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(np.ones((4, 2)), np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    figure = plot.training_curves(history, str(tmp_path / "h.png"))
    assert len(figure.axes) == 2


def test_confusion_matrix_from_predictions_writes_a_png(tmp_path):
    path = tmp_path / "cm.png"
    figure = plot.confusion_matrix(y_true=[0, 1, 1, 0, 1], y_pred=[0, 1, 0, 0, 1],
                                   path=str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    cells = sorted(text.get_text() for text in figure.axes[0].texts)
    assert cells == ["0", "1", "2", "2"]  # [[TN=2, FP=0], [FN=1, TP=2]]


def test_confusion_matrix_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        plot.confusion_matrix(np.zeros((2, 3)))


def test_confusion_matrix_takes_the_path_second_and_names_rows(tmp_path):
    figure = plot.confusion_matrix(np.array([[5, 1], [2, 7]]), str(tmp_path / "c.png"),
                                   labels=["negative", "positive"])
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["negative", "positive"]


def test_budget_comparison_draws_a_line_per_model(tmp_path):
    rows = [{"labels": n, "model": m, "accuracy": a, "f1": a - 0.05}
            for n, m, a in [(100, "pretrained", 0.8), (100, "scratch", 0.6),
                            (1000, "pretrained", 0.9), (1000, "scratch", 0.85)]]
    path = tmp_path / "budgets.png"
    figure = plot.budget_comparison(rows, str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [len(axes.lines) for axes in figure.axes] == [2, 2]


def test_dot_text_names_the_ops_and_tensors():
    y, names = small_graph()
    dot = plot.graph_to_dot(y, names)
    assert dot.startswith("digraph minidl {") and dot.rstrip().endswith("}")
    for op in ("MatMul", "Add", "Sigmoid"):
        assert f'label="{op}"' in dot
    assert 'label="W (3, 1) float64"' in dot


def test_text_tree_shows_the_graph_from_the_output_down():
    y, names = small_graph()
    assert plot.graph_to_text(y, names).splitlines() == [
        "Sigmoid -> (2, 1) float64",
        "└── Add -> (2, 1) float64",
        "    ├── MatMul -> (2, 1) float64",
        "    │   ├── x (2, 3) float64",
        "    │   └── W (3, 1) float64 [requires grad]",
        "    └── b (1,) float64 [requires grad]",
    ]


def test_computation_graph_without_graphviz_writes_the_text_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(plot.shutil, "which", lambda name: None)
    y, names = small_graph()
    with pytest.warns(UserWarning, match="graphviz"):
        written = plot.computation_graph(y, str(tmp_path / "graph.png"), names)
    assert written.endswith("graph.txt")
    assert "MatMul" in open(written, encoding="utf-8").read()


def test_scaling_curves_draw_every_reference_in_its_own_colour_and_style(tmp_path):
    scaling = {"series": [{"label": "linear probe, 500 labels", "tokens": [0, 10 ** 6],
                           "test_accuracy": [0.55, 0.7]}],
               "references": [{"label": f"{kind}, {b} labels", "test_accuracy": 0.6}
                              for b in (500, 2000) for kind in ("TF-IDF + LR", "GPT from scratch")]}
    figure = plot.scaling_curves(scaling, str(tmp_path / "scaling.png"))
    lines = [line for line in figure.axes[0].get_lines() if "labels" in line.get_label()
             and "probe" not in line.get_label()]
    looks = {(line.get_color(), str(line.get_linestyle())) for line in lines}
    assert len(lines) == 4 and len(looks) == 4
    colour = {line.get_label(): line.get_color() for line in lines}
    assert colour["TF-IDF + LR, 500 labels"] == colour["TF-IDF + LR, 2000 labels"]
    assert colour["TF-IDF + LR, 500 labels"] != colour["GPT from scratch, 500 labels"]
    assert (tmp_path / "scaling.png").exists()
