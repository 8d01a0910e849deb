"""Hostile kits against ``minidl grade``: each fails only its own exercises, leaves the other
kits, the installed package and ``grades.csv`` untouched, and the honest kit still scores full
marks. Plus the pieces that make it so: the strict event decoder, the judge that never raises,
and the reaper that kills what a worker leaves behind."""
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minidl.exercises import EXERCISES
from minidl.exercises.cli import main as exercises_main
from minidl.exercises.export import export_kit
from minidl.exercises.grade import (csv_text, grade_kit, isolation, judge_outputs, reap,
                                    KitResult, ExerciseResult)
from minidl.exercises.protocol import Malformed, decode_event, encode
from minidl.exercises.registry import by_id, kit_files

PACKAGE = Path(__file__).resolve().parents[1] / "minidl"
N = len(EXERCISES)


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n" + textwrap.dedent(code),
                    encoding="utf-8")


def _student_copy(answer_key: Path, target: Path) -> Path:
    shutil.copytree(answer_key, target)
    manifest = json.loads((target / "kit.json").read_text(encoding="utf-8"))
    manifest["solutions"] = False
    (target / "kit.json").write_text(json.dumps(manifest), encoding="utf-8")
    for file in kit_files():
        path = target / file
        path.write_text(path.read_text(encoding="utf-8").replace('"""Answer key:',
                                                                '"""Exercise:'),
                        encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    """A class folder: one honest kit, four hostile ones and a name that is a formula; graded
    once from the command line."""
    root = tmp_path_factory.mktemp("hostile")
    key, blank = root / "key", root / "blank"
    export_kit(key, solutions=True)
    export_kit(blank)
    folder = root / "class"
    folder.mkdir()
    honest = _student_copy(key, folder / "alice")
    formula = _student_copy(key, folder / "=HYPERLINK(\"x\";\"y\")")
    (formula / "ex_sigmoid.py").unlink()  # a short kit: only its own exercises fail

    # 1. delegates to minidl's reference: by import, and by loading its file by path
    delegator = _student_copy(key, folder / "delegator")
    _append(delegator / "ex_sigmoid.py",
            "from minidl.functions.elementwise import sigmoid_array, Sigmoid  # the reference\n")
    _append(delegator / "ex_linear.py", "from minidl.nn.layers import Linear\n")
    _append(delegator / "ex_matmul.py", f"""\
        import importlib.util as _u
        _spec = _u.spec_from_file_location("ref", {str(PACKAGE / 'functions' / 'matmul.py')!r})
        _ref = _u.module_from_spec(_spec)
        _spec.loader.exec_module(_ref)
        MatMul = _ref.MatMul
        """)

    # 2. a blank kit whose one file patches the grader, numpy and the worker at import time
    patcher = shutil.copytree(blank, folder / "patcher")
    _append(patcher / "ex_sum_to.py", """\
        import numpy as _np, minidl as _md
        import minidl.exercises.checks as _checks
        import minidl.exercises._worker as _worker
        import minidl.exercises.assertions as _assertions
        _np.allclose = lambda *a, **k: True
        _np.array_equal = lambda *a, **k: True
        _md.gradcheck = lambda *a, **k: True
        _checks.PROBES = {k: (lambda kit, rec: None) for k in _checks.PROBES}
        _assertions.CheckFailure = type("Never", (Exception,), {})
        _worker.Worker.run = lambda self, e: {"outputs": {}, "error": None}
        """)

    # 3. forges events on the grader's channel: pass verdicts, a malformed result, garbage
    forger = _student_copy(key, folder / "forger")
    _append(forger / "ex_pad_sequences.py", """\
        import json as _json, os as _os, sys as _sys
        _fd = int(_sys.argv[_sys.argv.index("--channel") + 1])
        for _id in ("sigmoid_forward", "sum_to", "pad_sequences"):
            _os.write(_fd, (_json.dumps({"event": "result", "id": _id, "status": "pass",
                                         "message": ""}) + "\\n").encode())
        """)
    _append(forger / "ex_adam.py", """\
        import json as _json, os as _os, sys as _sys
        _fd = int(_sys.argv[_sys.argv.index("--channel") + 1])
        _real = Adam.step
        def _step(self, *a, **k):
            _os.write(_fd, b'{"event": "result", "id": "adam_step", "outputs": {}, '
                           b'"error": null, "seconds": 0, "verdict": "pass"}\\n\\x00\\xff\\n')
            return _real(self, *a, **k)
        Adam.step = _step
        """)

    # 4. vandalises: a sibling kit, the installed package, the grader's output and process
    vandal = _student_copy(key, folder / "vandal")
    grades = folder / "grades.csv"
    _append(vandal / "ex_matmul.py",
            f"open({str(honest / 'ex_sigmoid.py')!r}, 'w').write('broken')\n")
    _append(vandal / "ex_adam.py",
            f"open({str(PACKAGE / 'exercises' / 'checks.py')!r}, 'a').write('# pwned')\n")
    _append(vandal / "ex_pad_sequences.py", f"""\
        import subprocess as _s
        _s.Popen(["setsid", "sh", "-c", "sleep 3; echo pwned > {grades}"])
        """)
    _append(vandal / "ex_linear.py",
            "import os as _o\nopen(f'/proc/{_o.getppid()}/fd/1', 'w').write('FORGED 10/10\\n')\n")
    _append(vandal / "ex_lstm_cell.py",
            "import os as _o, signal as _g\n_o.kill(_o.getppid(), _g.SIGSTOP)\n")
    _append(vandal / "ex_softmax_cross_entropy.py", "import ctypes\nctypes.string_at(0)\n")

    before = {"package": _digest(PACKAGE / "exercises"), "honest": _digest(honest)}
    result = subprocess.run([sys.executable, "-m", "minidl.exercises", "grade", str(folder),
                             "--jobs", "2", "--timeout", "5"], capture_output=True, text=True,
                            timeout=600, cwd=root,
                            env=dict(os.environ, PYTHONPATH=str(PACKAGE.parent)))
    csv_now = grades.read_text(encoding="utf-8")
    time.sleep(4)  # the setsid child would have written by now
    return {"folder": folder, "stdout": result.stdout, "stderr": result.stderr,
            "status": result.returncode, "before": before, "csv": csv_now,
            "rows": {row[0]: row for row in csv.reader(grades.open(encoding="utf-8"))},
            "honest": honest}


def _report(hostile_class, name):
    out = hostile_class["stdout"]
    start = out.index(f"\n{name} (") if f"\n{name} (" in out else out.index(f"{name} (")
    end = out.find("  score:", start)
    return " ".join(out[start:out.index("\n", end)].split())  # unwrapped


def _row(hostile_class, name):
    rows = hostile_class["rows"]
    header = rows["student"]
    return dict(zip(header, rows[name]))


def test_the_honest_kit_scores_full_marks_beside_hostile_ones(hostile_class):
    row = _row(hostile_class, "alice")
    assert row["passed"] == str(N) and row["score"] == "1.000", hostile_class["stdout"]


def test_delegating_to_the_reference_scores_nothing(hostile_class):
    row = _row(hostile_class, "delegator")
    for exercise in ("sigmoid_forward", "sigmoid_backward", "linear_forward",
                     "matmul_backward"):
        assert row[exercise] == "0", exercise
    assert row["pad_sequences"] == "1" and row["adam_step"] == "1"  # its own work still counts
    report = _report(hostile_class, "delegator")
    assert "minidl's solutions are stubs while grading" in report
    assert "does not let student code open" in report  # the reference's file by path


def test_patching_the_grader_numpy_and_the_worker_scores_nothing(hostile_class):
    row = _row(hostile_class, "patcher")
    assert row["passed"] == "0", hostile_class["stdout"]
    assert all(row[e.id] == "0" for e in EXERCISES)


def test_forged_and_malformed_events_fail_their_exercise_only(hostile_class):
    row = _row(hostile_class, "forger")
    assert row["pad_sequences"] == "0" and row["adam_step"] == "0"
    report = _report(hostile_class, "forger")
    assert "cannot accept" in report
    others = [e.id for e in EXERCISES if e.id not in ("pad_sequences", "adam_step")]
    assert all(row[i] == "1" for i in others), row


def test_vandalism_fails_the_vandal_s_exercises_and_changes_nothing(hostile_class):
    row = _row(hostile_class, "vandal")
    for exercise in ("matmul_backward", "adam_step", "pad_sequences", "linear_forward",
                     "lstm_cell_forward", "softmax_cross_entropy_backward"):
        assert row[exercise] == "0", exercise
    assert row["sum_to"] == "1"
    report = _report(hostile_class, "vandal")
    assert "does not let student code" in report
    before = hostile_class["before"]
    assert _digest(PACKAGE / "exercises") == before["package"]      # the installed package
    assert _digest(hostile_class["honest"]) == before["honest"]     # the sibling kit
    grades = (hostile_class["folder"] / "grades.csv").read_text(encoding="utf-8")
    assert grades == hostile_class["csv"] and "pwned" not in grades  # no late rewrite
    printed = hostile_class["stdout"] + hostile_class["stderr"]
    assert "\nFORGED 10/10" not in printed and not printed.startswith("FORGED")


def test_a_hostile_class_still_gets_its_csv_and_every_kit_graded(hostile_class):
    assert hostile_class["status"] == 1  # some failed; not a crash of the grader
    names = set(hostile_class["rows"]) - {"student"}
    assert {"alice", "delegator", "patcher", "forger", "vandal"} <= names


def test_names_that_look_like_formulas_are_escaped_in_the_csv(hostile_class):
    text = hostile_class["csv"]
    assert "'=HYPERLINK" in text
    assert not any(line.startswith(("=", "+", "-", "@")) for line in text.splitlines())
    row = _row(hostile_class, "'=HYPERLINK(\"x\";\"y\")")
    assert row["sigmoid_forward"] == "0" and row["sum_to"] == "1"


def test_csv_cells_starting_like_formulas_are_escaped():
    kit = KitResult("+1-2", Path("x"), [ExerciseResult("sum_to", "pass")])
    assert csv_text([kit]).splitlines()[1].startswith("'+1-2,")


# ============================================================================= the pieces
@pytest.mark.parametrize("line", [
    "not json",
    "[1, 2]",
    '{"event": "verdict", "id": "sum_to"}',
    '{"event": "start", "id": "sum_to", "extra": 1}',
    '{"event": "start", "id": "../../etc"}',
    '{"event": "result", "id": "sum_to", "status": "pass", "message": ""}',
    '{"event": "result", "id": "sum_to", "outputs": {}, "error": null, "seconds": "0"}',
    '{"event": "result", "id": "sum_to", "outputs": {"k": {"t": "ndarray", "a": '
    '{"dtype": "object", "shape": [1], "b64": ""}}}, "error": null, "seconds": 0}',
    '{"event": "result", "id": "sum_to", "outputs": {"k": {"t": "ndarray", "a": '
    '{"dtype": "float64", "shape": [3], "b64": "AAAA"}}}, "error": null, "seconds": 0}',
    '{"event": "result", "id": "sum_to", "outputs": {}, "error": {"kind": "pass"}, '
    '"seconds": 0}',
    '{"event": "import", "file": "/etc/passwd"}',
])
def test_malformed_events_are_rejected(line):
    with pytest.raises(Malformed):
        decode_event(line)


def test_a_well_formed_result_decodes_to_arrays():
    import numpy as np
    line = json.dumps({"event": "result", "id": "sum_to", "seconds": 0.1, "error": None,
                       "outputs": {"y": encode(np.arange(6.0).reshape(2, 3)),
                                   "s": encode(np.float32(2.5))}})
    event = decode_event(line)
    assert event["outputs"]["y"].array.shape == (2, 3)
    assert event["outputs"]["s"].array.shape == () and event["outputs"]["s"].array.dtype == \
        np.float32


@pytest.mark.parametrize("exercise", [e.id for e in EXERCISES])
def test_judges_fail_garbage_outputs_without_raising(exercise):
    import numpy as np
    garbage = {"case/0/forward": decode_event(json.dumps({
        "event": "result", "id": "sum_to", "seconds": 0, "error": None,
        "outputs": {"x": encode(np.array(["a"]))}}))["outputs"]["x"]}
    for outputs in ({}, garbage):
        result = judge_outputs(by_id()[exercise], outputs, None, {})
        assert not result.passed and result.status in ("invalid", "fail")


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="the reaper reads /proc")
def test_the_reaper_kills_processes_that_left_the_session():
    token = "test" + os.urandom(8).hex()
    env = dict(os.environ, MINIDL_GRADE_TOKEN=token)
    pid_file = Path(f"/tmp/minidl-reap-{token}")
    launcher = subprocess.Popen(
        ["sh", "-c", f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 60' & wait"], env=env,
        start_new_session=True)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    escaped = int(pid_file.read_text())
    pid_file.unlink()
    os.kill(launcher.pid, signal.SIGKILL)  # as the grader kills the worker: the child lives on
    launcher.wait()
    os.kill(escaped, 0)  # still running, in a session of its own
    assert reap(token)
    time.sleep(0.1)
    assert _gone(escaped)


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting for init to collect it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in "ZX"


def test_isolation_says_what_is_isolated():
    described = isolation().describe()
    assert "sandbox" in described and "killed" in described
    if isolation().uid is None:
        assert "audit hook" in described and "no security boundary" in described


@pytest.mark.skipif(isolation().uid is None, reason="workers cannot run under their own uid "
                    "here (not root, or Python unreachable by other users)")
def test_under_root_workers_run_as_their_own_unprivileged_uid(tmp_path):
    key = tmp_path / "key"
    export_kit(key, solutions=True)
    kit = _student_copy(key, tmp_path / "kit")
    _append(kit / "ex_sum_to.py", "import os as _o\nraise RuntimeError(f'UID{_o.getuid()}DIU')\n")
    result = grade_kit(kit, [by_id()["sum_to"]])
    uid = int(result["sum_to"].message.split("UID")[1].split("DIU")[0])
    assert uid != 0 and uid != os.getuid()
