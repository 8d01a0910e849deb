"""Cut a student kit out of the reference source.

A region of the reference between ``# BEGIN EXERCISE <id>`` and ``# END EXERCISE`` (comment
lines at the indentation of the code they enclose) is an exercise's solution. For each kit file
the exporter copies the region's *unit* — the top-level class or function around it, with its
docstrings, which are the specification — and replaces every region in it by a stub (a kit file
may hold several units of one module, in the module's order):

    # EXERCISE <id>: <what to write>
    raise NotImplementedError("exercise <id> is not implemented yet")

Above the units go the imports they use (the reference module's own import lines, trimmed to the
names the units use) and, for module-level helpers they call that are not in the file, an import
from the reference module.
``solutions=True`` keeps the solution code instead of the stubs: the teacher's answer key, which
must score full marks (a test grades it).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from minidl.exercises.registry import EXERCISES, Exercise, kit_files

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN EXERCISE (?P<id>\S+)[ \t]*$")
END = re.compile(r"^(?P<indent>[ \t]*)# END EXERCISE[ \t]*$")
MANIFEST = "kit.json"
LINE_WIDTH = 99


class ExerciseMarkerError(ValueError):
    """Exercise markers in the reference source that do not pair up, or disagree with the
    registry; the message names the file and line."""


@dataclass(frozen=True)
class Region:
    """A marked solution region: lines ``begin`` (the BEGIN marker) to ``end`` (the END marker),
    0-based and inclusive, in ``path``."""

    id: str
    path: str
    begin: int
    end: int
    indent: str


# ----------------------------------------------------------------------------- finding regions
def find_regions(text: str, path: str = "<source>") -> List[Region]:
    """The marked regions of one source file, checked: paired, not nested, same indentation."""
    regions: List[Region] = []
    open_: Optional[Tuple[str, int, str]] = None
    for number, line in enumerate(text.splitlines()):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_ is not None:
                raise ExerciseMarkerError(
                    f"{path}:{number + 1}: BEGIN EXERCISE {begin['id']} inside exercise "
                    f"{open_[0]} (opened at line {open_[1] + 1}); regions cannot nest")
            open_ = (begin["id"], number, begin["indent"])
        elif end:
            if open_ is None:
                raise ExerciseMarkerError(f"{path}:{number + 1}: END EXERCISE without a BEGIN")
            if end["indent"] != open_[2]:
                raise ExerciseMarkerError(
                    f"{path}:{number + 1}: END EXERCISE is indented differently from its "
                    f"BEGIN EXERCISE {open_[0]} at line {open_[1] + 1}")
            regions.append(Region(open_[0], path, open_[1], number, open_[2]))
            open_ = None
        elif "BEGIN EXERCISE" in line or "END EXERCISE" in line:
            stripped = line.strip()
            if stripped.startswith("#") and not stripped.startswith(("# BEGIN", "# END")):
                continue  # prose that mentions the markers
            if stripped.startswith("# BEGIN EXERCISE") or stripped.startswith("# END EXERCISE"):
                raise ExerciseMarkerError(f"{path}:{number + 1}: malformed exercise marker "
                                          f"{stripped!r}; write '# BEGIN EXERCISE <id>' or "
                                          f"'# END EXERCISE' on a line of its own")
    if open_ is not None:
        raise ExerciseMarkerError(f"{path}:{open_[1] + 1}: BEGIN EXERCISE {open_[0]} is never "
                                  f"closed with '# END EXERCISE'")
    return regions


def module_source(module: str) -> Tuple[Path, str]:
    """The path and text of a module's source, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ExerciseMarkerError(f"cannot find the source of module {module}")
    path = Path(spec.origin)
    return path, path.read_text(encoding="utf-8")


def package_regions() -> Dict[str, Region]:
    """Every marked region in the minidl package, by exercise id (ids must be unique)."""
    root = Path(__file__).resolve().parent.parent
    found: Dict[str, Region] = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "EXERCISE" not in text:
            continue
        for region in find_regions(text, str(path)):
            if region.id in found:
                other = found[region.id]
                raise ExerciseMarkerError(f"{path}:{region.begin + 1}: exercise {region.id} is "
                                          f"also marked at {other.path}:{other.begin + 1}")
            found[region.id] = region
    return found


def check_markers() -> None:
    """Raise ExerciseMarkerError unless markers and registry agree one to one."""
    regions = package_regions()
    known = {e.id for e in EXERCISES}
    for exercise_id, region in regions.items():
        if exercise_id not in known:
            raise ExerciseMarkerError(f"{region.path}:{region.begin + 1}: exercise "
                                      f"{exercise_id} is marked but not in "
                                      f"minidl/exercises/registry.py")
    for exercise in EXERCISES:
        if exercise.id not in regions:
            raise ExerciseMarkerError(f"exercise {exercise.id} is in the registry but no region "
                                      f"of {exercise.module} is marked '# BEGIN EXERCISE "
                                      f"{exercise.id}'")
        path, _ = module_source(exercise.module)
        if Path(regions[exercise.id].path).resolve() != path.resolve():
            raise ExerciseMarkerError(f"exercise {exercise.id} is marked in "
                                      f"{regions[exercise.id].path}, but the registry says "
                                      f"{exercise.module}")


# ----------------------------------------------------------------------------- building a file
def _unit_node(tree: ast.Module, name: str, path: Path) -> ast.stmt:
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.name == name:
            return node
    raise ExerciseMarkerError(f"{path}: no top-level class or function named {name}")


def _used_names(node: ast.AST) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _imports(tree: ast.Module, used: set) -> List[str]:
    """The module's top-level import lines, trimmed to the names in ``used``."""
    lines = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            lines.append(ast.unparse(node))
        elif isinstance(node, ast.Import):
            names = [a for a in node.names if (a.asname or a.name.split(".")[0]) in used]
            if names:
                lines.append(ast.unparse(ast.Import(names=names)))
        elif isinstance(node, ast.ImportFrom):
            names = [a for a in node.names if (a.asname or a.name) in used]
            if names:
                lines.append(ast.unparse(ast.ImportFrom(module=node.module, names=names,
                                                        level=node.level)))
    return lines


def _module_level_names(tree: ast.Module) -> set:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _import_groups(lines: List[str]) -> List[List[str]]:
    """Import lines in the usual groups: __future__, standard library, third party, minidl."""
    import sys
    groups: List[List[str]] = [[], [], [], []]
    for line in lines:
        top = line.split()[1].split(".")[0]
        if top == "__future__":
            groups[0].append(line)
        elif top == "minidl":
            groups[3].append(line)
        elif top in getattr(sys, "stdlib_module_names", ()):
            groups[1].append(line)
        else:
            groups[2].append(line)
    return [g for g in groups if g]


def _comment(text: str, indent: str) -> List[str]:
    width = max(LINE_WIDTH - len(indent) - 2, 40)
    return [f"{indent}# {line}\n" for line in textwrap.wrap(text, width)]


def _replace_regions(lines: List[str], regions: Sequence[Region], exercises: Dict[str, Exercise],
                     offset: int, solutions: bool) -> List[str]:
    out: List[str] = []
    position = 0
    for region in sorted(regions, key=lambda r: r.begin):
        begin, end = region.begin - offset, region.end - offset
        out += lines[position:begin]
        exercise = exercises[region.id]
        out += _comment(f"EXERCISE {region.id}: {exercise.task}", region.indent)
        if solutions:
            out += lines[begin + 1:end]
        else:
            out.append(f'{region.indent}raise NotImplementedError("exercise {region.id} is not '
                       f'implemented yet")\n')
        position = end + 1
    return out + lines[position:]


def _replace_docstring(body: List[str], node: ast.stmt, start: int, spec: str,
                       regions: Sequence[Region]) -> List[str]:
    """The unit's lines with its docstring replaced by the registry's ``spec`` (the kit's
    specification, which names the formula instead of giving it)."""
    first = node.body[0] if getattr(node, "body", None) else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and
            isinstance(first.value.value, str)):
        raise ExerciseMarkerError(f"{node.name} has no docstring to replace with its spec")
    begin, end = first.lineno - 1 - start, first.end_lineno - start
    if any(r.begin - start < end for r in regions):
        raise ExerciseMarkerError(f"{node.name}: an exercise region comes before its docstring")
    indent = " " * first.col_offset
    width = max(LINE_WIDTH - len(indent), 40)
    paragraphs = []
    for paragraph in spec.split("\n\n"):
        lines = []
        for line in paragraph.split("\n"):
            lines += textwrap.wrap(line, width, break_long_words=False,
                                   break_on_hyphens=False) or [""]
        paragraphs.append("\n".join(f"{indent}{line}".rstrip() for line in lines))
    text = "\n\n".join(paragraphs)
    docstring = f'{indent}"""{text[len(indent):]}\n{indent}"""\n'
    return body[:begin] + [docstring] + body[end:]


def kit_file_text(file: str, solutions: bool = False) -> str:
    """The text of one kit file: header, imports, its units with their regions stubbed."""
    exercises = kit_files()[file]
    module = exercises[0].module
    if any(e.module != module for e in exercises):
        raise ExerciseMarkerError(f"the exercises of {file} must come from one module; the "
                                  f"registry names {sorted({e.module for e in exercises})}")
    path, text = module_source(module)
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text, str(path))
    all_regions = find_regions(text, str(path))
    nodes = sorted({e.unit: _unit_node(tree, e.unit, path) for e in exercises}.items(),
                   key=lambda item: item[1].lineno)  # the module's order
    units = [unit for unit, _ in nodes]
    pieces, used = [], set()
    for unit, node in nodes:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        regions = [r for r in all_regions if start <= r.begin < node.end_lineno]
        ids = {e.id for e in exercises if e.unit == unit}
        if {r.id for r in regions} != ids:
            raise ExerciseMarkerError(
                f"{path}: {unit} contains the regions {sorted(r.id for r in regions)}, but the "
                f"registry puts {sorted(ids)} in {unit} ({file})")
        stop = max([node.end_lineno] + [r.end + 1 for r in regions])
        body = _replace_regions(lines[start:stop], regions, {e.id: e for e in exercises},
                                start, solutions)
        spec = next((e.spec for e in exercises if e.unit == unit and e.spec), None)
        if spec is not None and not solutions:
            body = _replace_docstring(body, node, start, spec, regions)
        pieces.append("".join(body).rstrip("\n") + "\n")
        used |= _used_names(node)

    imports = _imports(tree, used)
    helpers = sorted((_module_level_names(tree) & used) - set(units))
    if helpers:
        imports.append(f"from {module} import {', '.join(helpers)}")
    relative = path.relative_to(Path(__file__).resolve().parent.parent.parent) \
        if path.is_relative_to(Path(__file__).resolve().parent.parent.parent) else path
    from minidl import __version__
    width = max(len(e.id) for e in exercises)
    listing = "\n".join(f"    {e.id:<{width}}  {e.title}" for e in exercises)
    kind = "Answer key" if solutions else "Exercise"
    names = " and ".join(f"`{unit}`" for unit in units)
    header = (
        f'"""{kind}: {names} from {module} ({len(exercises)} exercise'
        f'{"s" if len(exercises) > 1 else ""}).\n\n'
        f"Exercises in this file:\n{listing}\n\n"
        f"Replace each stub (the `raise NotImplementedError` under `# EXERCISE <id>`) with your\n"
        f"code. The docstrings are the specification: shapes, what to compute, stability. Keep\n"
        f"the "
        f"names and signatures: the grader imports {names} from this file and plugs\n"
        f"{'them' if len(units) > 1 else 'it'} into minidl in place of the reference. Check your "
        f"work with\n`minidl grade {file}` (or `python {file}`).\n\n"
        f"Cut from {relative.as_posix()} of minidl {__version__} by `minidl exercises export`.\n"
        f'"""\n')
    parts = [header]
    for group in _import_groups(imports):
        parts.append("\n".join(group) + "\n\n")
    parts[-1] = parts[-1][:-1]
    parts.append("\n\n" + "\n\n".join(pieces))
    parts.append(f'\n\nif __name__ == "__main__":  # `python {file}` grades this file\n'
                 f"    import sys\n\n"
                 f"    from minidl.exercises.grade import main\n"
                 f"    sys.exit(main([__file__]))\n")
    result = "".join(parts)
    compile(result, file, "exec")  # a kit file that does not compile is the exporter's bug
    return result


def readme_text(solutions: bool = False) -> str:
    """The kit's README: the exercises in order, how to work, how to grade."""
    rows = "\n".join(f"| {n} | `{e.id}` | `{e.file}` | {e.title} |"
                     for n, e in enumerate(EXERCISES, 1))
    key = ("\nThis is the **answer key**: every stub is filled in with the reference solution. "
           "Do not hand it out.\n" if solutions else "")
    return f"""# minidl exercises
{key}
Each `ex_*.py` file holds one piece of minidl — a class or a function — with the part you write
replaced by a stub:

```python
    # EXERCISE sigmoid_forward: ...what to write...
    raise NotImplementedError("exercise sigmoid_forward is not implemented yet")
```

Replace the stub with your code. The docstrings are the specification (shapes, formula,
stability); keep the names and signatures, because the grader imports your class or function
and plugs it into minidl in place of the reference one.

| # | exercise | file | what |
|---|---|---|---|
{rows}

## Checking your work

    minidl grade .                 # every exercise in this folder
    minidl grade ex_sigmoid.py     # the exercises of one file
    python ex_sigmoid.py           # the same

The grader runs your code in a separate Python process, in a scratch copy of your kit, with a
time limit, and checks what it returns against minidl's reference: values, gradients for a
random upstream gradient, and that your code leaves its inputs unchanged. It says what is
wrong — which output, which element, the expected value and yours, and the mistake when it
recognises one. An error, a crash or an endless loop fails that exercise only. While grading,
minidl's own solutions are stubs: importing them gets you nothing, so write your own.
"""


def export_kit(directory: Union[str, os.PathLike], solutions: bool = False,
               force: bool = False, extra: Optional[Union[str, os.PathLike]] = None) -> List[Path]:
    """Write a student kit (or, with ``solutions=True``, the answer key) into ``directory``;
    ``extra`` is a teacher's folder of exercises (``registry.load_extra``) whose kit files are
    added.

    Refuses to overwrite existing kit files unless ``force``: they may hold a student's work.
    Returns the paths written.
    """
    check_markers()
    directory = Path(directory)
    contents: Dict[str, str] = {file: kit_file_text(file, solutions) for file in kit_files()}
    added = []
    if extra is not None:
        from minidl.exercises.registry import load_extra
        for exercise in load_extra(Path(extra), with_judges=False):
            stub = Path(exercise.extra) / exercise.file
            if stub.is_file():
                contents[exercise.file] = stub.read_text(encoding="utf-8")
            added.append(exercise)
    contents["README.md"] = readme_text(solutions)
    from minidl import __version__
    contents[MANIFEST] = json.dumps({
        "kit": "minidl exercises", "format": 1, "minidl_version": __version__,
        "solutions": solutions,
        "exercises": [{"id": e.id, "file": e.file, "title": e.title}
                      for e in list(EXERCISES) + added],
    }, indent=2, ensure_ascii=False) + "\n"
    existing = [name for name in contents if (directory / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{directory} already holds {', '.join(existing)}; pass "
                              f"force=True (--force) to overwrite them (work in them is lost)")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in contents.items():
        target = directory / name
        temporary = target.with_name(f".{name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)  # atomic: never a half-written file
        written.append(target)
    return written


def is_kit(directory: Union[str, os.PathLike]) -> bool:
    """Whether ``directory`` looks like a kit: it has the manifest or any kit file."""
    directory = Path(directory)
    return directory.is_dir() and ((directory / MANIFEST).is_file() or
                                   any((directory / f).is_file() for f in kit_files()))


def exercises_in(files: Iterable[str]) -> List[Exercise]:
    """The exercises of the given kit file names, in the kit's order."""
    names = set(files)
    return [e for e in EXERCISES if e.file in names]
