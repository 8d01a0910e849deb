"""The grading worker's view of minidl: its source with every solution replaced by a stub.

``build_view(target)`` writes a copy of the package's Python files into ``target/minidl`` in
which every region ``# BEGIN EXERCISE <id>`` ... ``# END EXERCISE`` is replaced by

    raise NotImplementedError("exercise <id> is not implemented yet")

and every function that *is* an exercise's reference without a marked region (``SHADOWED``:
minidl's own backward pass, the reference of ``engine_backward``) gets the same stub as its
body. The worker imports this copy instead of the installed minidl and plugs the student's
code in place of the stubs, so no reference solution is importable next to the student's code
(data files and pretrained weights are not copied: the checks do not need them).
"""
from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path
from typing import Dict, List, Tuple

from minidl.exercises.export import find_regions

PACKAGE = Path(__file__).resolve().parent.parent          # the installed minidl/
# exercise id -> (module file relative to the package, top-level function) stubbed in the view
SHADOWED: Dict[str, List[Tuple[str, str]]] = {
    "engine_backward": [("autograd.py", "_run_backward")],
}


def stub_line(indent: str, exercise_id: str) -> str:
    return f'{indent}raise NotImplementedError("exercise {exercise_id} is not implemented yet")\n'


def stubbed_source(text: str, path: str = "<source>") -> str:
    """``text`` with each marked region replaced by its stub."""
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    position = 0
    for region in sorted(find_regions(text, path), key=lambda r: r.begin):
        out += lines[position:region.begin]
        out.append(stub_line(region.indent, region.id))
        position = region.end + 1
    return "".join(out + lines[position:])


def _shadow(text: str, function: str, exercise_id: str, path: str) -> str:
    """``text`` with the body of the top-level ``function`` replaced by the stub."""
    tree = ast.parse(text, path)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            lines = text.splitlines(keepends=True)
            first = node.body[0]
            start = first.lineno - 1
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None),
                                                          ast.Constant) and len(node.body) > 1:
                start = node.body[1].lineno - 1  # keep the docstring
            indent = " " * node.body[0].col_offset
            return "".join(lines[:start] + [stub_line(indent, exercise_id)] +
                           lines[node.end_lineno:])
    raise ValueError(f"{path}: no top-level function {function} to stub for {exercise_id}")


def view_sources() -> Dict[str, str]:
    """Relative path -> text of every Python file of the worker's view of minidl."""
    sources: Dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(PACKAGE).as_posix()
        text = path.read_text(encoding="utf-8")
        if "EXERCISE" in text:
            text = stubbed_source(text, str(path))
        sources[relative] = text
    for exercise_id, targets in SHADOWED.items():
        for relative, function in targets:
            sources[relative] = _shadow(sources[relative], function, exercise_id, relative)
    return sources


def build_view(target: Path, sources: Dict[str, str]) -> Path:
    """Write ``sources`` (from ``view_sources``) as the package ``target/minidl``; files
    readable by everyone, writable by no one but their owner (the grader)."""
    root = Path(target) / "minidl"
    if root.exists():
        shutil.rmtree(root)
    for relative, text in sources.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        os.chmod(path, 0o444)
    for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        os.chmod(directory, 0o555)
    return root
