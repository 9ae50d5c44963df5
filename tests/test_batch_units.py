"""Batch plumbing without running notebooks: discovery, keys, fingerprints, store, gradebook, CLI."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from grader.__main__ import main
from grader.base.errors import GraderError
from grader.checks.kinds import CheckResult
from grader.checks.results import GradeRow
from grader.classroom.batch import find_submissions, plan_tasks
from grader.classroom.resume import ResultStore, Task, fingerprint, result_key
from grader.classroom.workers import kernel_threads
from grader.pages.gradebook import grades_csv, grades_json, write_gradebook


def _row(student: str, module: str | None, passed: tuple[bool, ...] = (True, False),
         error: str | None = None) -> GradeRow:
    checks = [CheckResult(f"{module}.c{i}", float(i + 1) if ok else 0.0, float(i + 1), ok, "m")
              for i, ok in enumerate(passed)]
    return GradeRow(student=student, module=module, score=sum(c.points for c in checks),
                    max_score=sum(c.max_points for c in checks), error=error, checks=checks,
                    submission=f"/x/{student}/{module}.ipynb", duration_s=1.5)


def test_find_submissions_searches_folders_and_skips_checkpoints(tmp_path):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "01_a.ipynb").write_text("{}")
    (tmp_path / "ann" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "ann" / ".ipynb_checkpoints" / "01_a-checkpoint.ipynb").write_text("{}")
    (tmp_path / "ann" / "notes.txt").write_text("x")
    single = tmp_path / "bob_01_a.ipynb"
    single.write_text("{}")
    found = find_submissions([tmp_path / "ann", single, single])
    assert [p.name for p in found] == ["01_a.ipynb", "bob_01_a.ipynb"]


def test_find_submissions_says_what_to_fix_for_a_missing_path_or_an_empty_folder(tmp_path):
    with pytest.raises(GraderError, match="does not exist.*Fix"):
        find_submissions([tmp_path / "nope"])
    with pytest.raises(GraderError, match="no .ipynb files found.*Fix"):
        find_submissions([tmp_path])


def test_two_files_for_one_student_and_module_are_one_error_row(tmp_path):
    for name in ("ann/01_x.ipynb", "ann/01_x_final.ipynb", "bob/01_x.ipynb"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not json")
    tasks = plan_tasks(sorted(tmp_path.rglob("*.ipynb")), fast=True, seed=0)
    assert sorted(t.student for t in tasks) == ["ann", "bob"]
    (ann,) = [t for t in tasks if t.student == "ann"]
    assert ann.identity_error and not ann.readable
    assert ann.read_error.startswith("two submissions for module 01: ann/01_x.ipynb,"
                                     " ann/01_x_final.ipynb; keep one")
    (bob,) = [t for t in tasks if t.student == "bob"]
    assert not bob.identity_error and bob.name == "bob"


@pytest.mark.parametrize("mode, expected", [
    ("auto", {"mallory/victim.ipynb": "mallory", "victim/01_x.ipynb": "victim",
              "carol_01_x.ipynb": "carol", "01_x.ipynb": "<root>"}),
    ("folder", {"mallory/victim.ipynb": "mallory", "victim/01_x.ipynb": "victim",
                "carol_01_x.ipynb": None, "01_x.ipynb": None}),
    ("file", {"mallory/victim.ipynb": "victim", "victim/01_x.ipynb": None,
              "carol_01_x.ipynb": "carol", "01_x.ipynb": None}),
])
def test_the_student_comes_from_the_one_source_the_instructor_chose(tmp_path, mode, expected):
    from grader.submission.validate import submission_name

    stems = {"01_x": "01"}
    for rel, student in expected.items():
        path = tmp_path / rel
        name, error = submission_name(path, tuple(rel.split("/")), mode, stems)
        student = tmp_path.name if student == "<root>" else student
        assert name == student, (mode, rel, error)
        assert (error is None) == (student is not None), (mode, rel, error)


def test_nbgrader_layout_and_files_named_one_by_one(tmp_path):
    from grader.classroom.batch import find_submission_files
    from grader.submission.validate import submission_name

    files = []
    for rel in ("course/submitted/alice/ps1/01_x.ipynb", "course/submitted/bob/ps1/01_x.ipynb"):
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_text("{}")
        files.append(tmp_path / rel)
    for root in (tmp_path / "course", tmp_path / "course" / "submitted"):
        found = find_submission_files([root])
        assert [submission_name(f.path, f.rel, "folder", {})[0] for f in found] == ["alice", "bob"]
    found = find_submission_files(files)  # class/*/*.ipynb named one by one: folders count
    assert [submission_name(f.path, f.rel, "auto", {})[0] for f in found] == ["alice", "bob"]
    # a student cannot build the nbgrader layout inside her own folder
    evil = tmp_path / "class" / "mallory" / "submitted" / "victim" / "ps1" / "01_x.ipynb"
    evil.parent.mkdir(parents=True)
    evil.write_text("{}")
    (found,) = find_submission_files([tmp_path / "class"])
    assert submission_name(found.path, found.rel, "auto", {})[0] == "mallory"


def test_fingerprint_changes_with_the_submission_the_mode_and_the_seed(tmp_path):
    path = tmp_path / "01_x.ipynb"
    path.write_text("a")
    base = fingerprint(path, "01", fast=True, seed=0)
    assert fingerprint(path, "01", fast=True, seed=0) == base
    assert fingerprint(path, "01", fast=False, seed=0) != base
    assert fingerprint(path, "01", fast=True, seed=1) != base
    path.write_text("b")
    assert fingerprint(path, "01", fast=True, seed=0) != base


def test_result_store_keeps_one_result_per_key_and_ignores_leftovers(tmp_path):
    store = ResultStore(tmp_path)
    task = Task(tmp_path / "a.ipynb", "ann", "01", result_key("ann", "01"), "f1")
    store.save(task, _row("ann", "01"))
    store.save(Task(task.path, "ann", "01", task.key, "f2"), _row("ann", "01", (True, True)))
    (store.dir / ".ann__01.json.123.tmp").write_text("{half")
    (store.dir / "garbage.json").write_text("{half")
    assert store.fingerprint(task.key) == "f2"
    rows = store.rows()
    assert len(rows) == 1 and rows[0].score == 3.0


def test_grades_json_has_the_fixed_keys(tmp_path):
    rows = [_row("bob", "02"), _row("ann", "01", error="not a notebook")]
    data = json.loads(grades_json(rows))
    assert [d["student"] for d in data] == ["ann", "bob"]
    for entry in data:
        assert {"student", "module", "score", "max_score", "error", "checks"} <= set(entry)
        for check in entry["checks"]:
            assert set(check) == {"id", "points", "max_points", "passed", "message"}


def test_grades_csv_has_a_points_row_and_one_line_per_student():
    rows = [_row("ann", "01"), _row("ann", "02", (True, True)), _row("bob", "02", (False, True))]
    rows[0].name = "Ann A."
    table = list(csv.reader(io.StringIO(grades_csv(rows))))
    assert table[0] == ["student", "name", "01 total", "01.c0", "01.c1", "02 total", "02.c0",
                        "02.c1", "total", "pending"]
    assert table[1] == ["Points Possible", "", "3", "1", "2", "3", "1", "2", "6", ""]
    assert table[2] == ["ann", "Ann A.", "1", "1", "0", "3", "1", "2", "4", "0"]
    assert table[3] == ["bob", "", "", "", "", "2", "0", "2", "2", "0"]


def test_write_gradebook_replaces_files_atomically(tmp_path):
    write_gradebook([_row("ann", "01")], tmp_path)
    write_gradebook([_row("ann", "01"), _row("bob", "01")], tmp_path)
    assert len(json.loads((tmp_path / "grades.json").read_text())) == 2
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("jobs, cores, expected", [(1, 2, 2), (2, 2, 1), (3, 2, 1), (2, 8, 4)])
def test_kernel_threads_share_the_cores(jobs, cores, expected):
    assert kernel_threads(jobs, cores) == expected


@pytest.mark.parametrize("argv, message", [
    (["grade", "--out", "o"], "required"),
    (["grade", "x.ipynb", "--out", "o", "--jobs", "0"], "expected a whole number >= 1"),
])
def test_grade_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_grade_with_nothing_to_grade_exits_2_and_says_what_to_fix(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no .ipynb files found" in capsys.readouterr().err


def test_grade_with_out_being_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "01_x.ipynb").write_text("{}")
    (tmp_path / "out").write_text("")
    assert main(["grade", str(tmp_path / "01_x.ipynb"), "--out", str(tmp_path / "out")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_grade_with_an_unreachable_scheduler_exits_2(tmp_path, capsys):
    (tmp_path / "01_x.ipynb").write_text("{}")
    code = main(["grade", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--scheduler", "tcp://127.0.0.1:1"])
    assert code == 2
    assert "cannot connect to the Dask scheduler" in capsys.readouterr().err


def test_rerun_skips_unchanged_regrades_changed_and_force_regrades_all(tmp_path, capsys):
    """Malformed submissions are graded without a kernel, so this runs the real CLI quickly."""
    for student in ("ann", "bob"):
        (tmp_path / "subs" / student).mkdir(parents=True)
        (tmp_path / "subs" / student / "01_x.ipynb").write_text("{broken")
    argv = ["grade", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--fast"]
    assert main(argv) == 0
    assert "graded 2 submission(s), 0 already up to date" in capsys.readouterr().out
    phases = json.loads((tmp_path / "out" / "batch.json").read_text())["timings"]
    assert set(phases) == {"plan", "data_copy", "grading", "outputs"}  # bench/grading_overhead.py
    assert all(seconds >= 0 for seconds in phases.values())
    assert main(argv) == 0
    assert "graded 0 submission(s), 2 already up to date" in capsys.readouterr().out
    (tmp_path / "subs" / "bob" / "01_x.ipynb").write_text("{still broken")
    assert main(argv) == 0
    assert "graded 1 submission(s), 1 already up to date" in capsys.readouterr().out
    assert main([*argv, "--force"]) == 0
    assert "graded 2 submission(s), 0 already up to date" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert sorted(d["student"] for d in data) == ["ann", "bob"]
    assert all("not valid JSON" in d["error"] for d in data)
    for name in ("grades.csv", "report.html", "feedback/ann.html", "feedback/bob.md"):
        assert (tmp_path / "out" / name).is_file()


def test_example_submissions_are_in_sync_with_the_solutions(tmp_path):
    """The example class (docs/grading.md) must be rebuilt when a solution changes."""
    import sys

    from grader.base.paths import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "examples"))
    try:
        from make_submissions import OUT, build
    finally:
        sys.path.remove(str(REPO_ROOT / "examples"))
    fresh = build(tmp_path)
    stale = [str(p.relative_to(tmp_path)) for p in fresh
             if (OUT / p.relative_to(tmp_path)).read_bytes() != p.read_bytes()]
    assert stale == [], f"run `python examples/make_submissions.py`: {stale} are out of date"


def test_csv_cells_never_start_a_formula_and_restore_exactly():
    import random

    from grader.base.csvcells import neutralise, restore

    rng = random.Random(3)
    pool = "=+-@\t\r'a1 ,\"é"
    cases = ["", "'", "''=", "-A1-A2", "=HYPERLINK(\"x\")", "ada", "3", "'ok"]
    cases += ["".join(rng.choice(pool) for _ in range(rng.randint(0, 6))) for _ in range(3000)]
    for text in cases:
        cell = neutralise(text)
        assert not cell.startswith(tuple("=+-@\t\r")), text
        assert restore(cell) == text, text
    assert neutralise("-A1-A2") == "'-A1-A2" and neutralise("'ok") == "'ok"
