"""The layering of the package (DESIGN.md): each layer imports only the layers below it,
nothing outside ``minidl/backend/`` names CuPy, and nothing above the backend calls NumPy on
tensor data. Each rule is checked by parsing the source, and each checker is shown to catch a
planted violation."""
import ast
import pathlib
from typing import Iterator, Optional, Tuple

import minidl as md

PACKAGE = pathlib.Path(md.__file__).parent

# The layer order, bottom up (the package docstring and the README say the same). A module may
# import modules of its own layer or of a lower one; never of a higher one.
LAYERS = (
    ("backend", "_strict"),
    ("autograd",),
    ("functions",),
    ("nn", "optim", "gradcheck", "io"),
    ("data",),
    ("training", "metrics", "distributed"),
    ("models",),
    ("keras",),
    ("apps", "plot", "cli", "exercises", "transfer", "demo", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
ROOT_RANK = RANK["nn"]  # `import minidl as md` brings in autograd, functions, nn, optim, io


def _top(module: str) -> Optional[str]:
    """The first component under minidl (``minidl.nn.layers`` → ``nn``), or None for ``minidl``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imported_modules(path: pathlib.Path, root: pathlib.Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in a file, lazy ones inside functions too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("minidl",) + path.relative_to(root).parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base == "minidl":  # `from minidl import nn` imports minidl.nn
                for alias in node.names:
                    yield node.lineno, f"minidl.{alias.name}"
            else:
                yield node.lineno, base


def _rank_of_file(rel: str) -> Optional[int]:
    first = rel.split("/")[0].removesuffix(".py")
    return RANK.get(first)


def layering_violations(root: pathlib.Path = PACKAGE):
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "__init__.py":
            continue  # the package root re-exports the public names of every layer
        rank = _rank_of_file(rel)
        assert rank is not None, f"minidl/{rel} is in no layer: add it to LAYERS and DESIGN.md"
        for line, module in _imported_modules(path, root):
            if module != "minidl" and not module.startswith("minidl."):
                continue
            top = _top(module)
            target = ROOT_RANK if top is None else RANK.get(top)
            if target is not None and target > rank:
                yield f"minidl/{rel}:{line} imports {module} (a higher layer)"


def test_no_layer_imports_a_higher_one():
    offenders = list(layering_violations())
    assert not offenders, "layering broken (see DESIGN.md):\n" + "\n".join(offenders)


def test_the_layering_check_catches_an_upward_import(tmp_path):
    (tmp_path / "nn").mkdir()
    (tmp_path / "nn" / "bad.py").write_text("from minidl.keras import layers\n")
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "ok.py").write_text("from minidl import backend, autograd\n")
    assert list(layering_violations(tmp_path)) == [
        "minidl/nn/bad.py:1 imports minidl.keras (a higher layer)"]


# ----------------------------------------------------------------------------- CuPy
def cupy_mentions(path: pathlib.Path):
    """Imports of cupy/cupyx and string literals naming the module ``cupy`` (as in
    ``xp.__name__ == "cupy"``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [w.strip("\"'`(),.:") for w in node.value.split()]
        for name in names:
            if name.split(".")[0] in ("cupy", "cupyx"):
                yield node.lineno, name


def test_only_the_backend_names_cupy():
    offenders = [f"{path.relative_to(PACKAGE)}:{line} {name}"
                 for path in PACKAGE.rglob("*.py")
                 if not path.relative_to(PACKAGE).as_posix().startswith("backend/")
                 for line, name in cupy_mentions(path)]
    assert not offenders, "CuPy named outside minidl/backend/:\n" + "\n".join(offenders)


def test_the_cupy_check_catches_an_import_and_a_module_name(tmp_path):
    bad = tmp_path / "op.py"
    bad.write_text("def f(xp):\n    import cupy\n    return xp.__name__ == 'cupy'\n")
    assert sorted(cupy_mentions(bad)) == [(2, "cupy"), (3, "cupy")]


# ----------------------------------------------------------------------------- NumPy on tensor data
# Modules that may call NumPy directly: the backend itself, the gradient checker (float64 host
# arithmetic), io, host-side metrics/plots/CLI, and layers whose code only sees host data.
ALLOWED = {"gradcheck.py", "io.py", "metrics.py", "nn/init.py", "cli.py", "plot.py"}
HOST_SIDE_PREFIXES = ("backend/", "_strict", "data/", "training/", "models/", "keras/", "apps/",
                      "transfer", "demo", "exercises")
# NumPy calls that are fine anywhere: type names and dtype helpers, not computations on data.
HARMLESS = {"ndarray", "generic", "dtype", "float32", "float64", "int64", "int32", "bool_",
            "random", "errstate", "array2string", "issubdtype", "floating", "integer", "inf",
            "nan", "pi", "prod"}


def _numpy_calls(path: pathlib.Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("np", "numpy") and node.attr not in HARMLESS:
            yield node.lineno, node.attr


def test_no_module_above_the_backend_calls_numpy_on_tensor_data():
    """Ops must use xp = get_array_module(x), or they break on CuPy (DESIGN.md)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED or rel.startswith(HOST_SIDE_PREFIXES):
            continue
        offenders += [f"{rel}:{line} np.{name}" for line, name in _numpy_calls(path)]
    assert not offenders, "NumPy called directly above the backend:\n" + "\n".join(offenders)


def test_the_architecture_scan_catches_a_numpy_call(tmp_path):
    bad = tmp_path / "op.py"
    bad.write_text("import numpy as np\ndef f(x):\n    return np.exp(x)\n")
    assert list(_numpy_calls(bad)) == [(3, "exp")]
