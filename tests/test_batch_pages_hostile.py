"""What the instructor and the students open, after a batch of hostile files.

One batch through the real CLI (``python -m grader grade ... --sandbox none --jobs 2``, the
tiny fixture module passed with ``--rubric/--solution``) mixes an honest victim with:

* type-confused JSON (cells not a list, a cell that is not an object, sources that are
  numbers or lists of numbers, metadata / nbgrader / tags / outputs of the wrong type),
  some of which still pass the notebook schema and are executed;
* a huge notebook under the size cap: thousands of copies of one exercise cell, whose last
  copy raises an error carrying raw HTML, a code fence and a forged Markdown heading;
* a student who finished every exercise and one whose partial notebook is a subset of it.

The batch must exit 0, write report.html, keep the victim's full marks, finish the
similarity pass quickly with bounded memory, and resume (``grade`` again) just as well.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import helpers_notebooks as fx
import psutil
import pytest

from grader.base.paths import REPO_ROOT
from grader.kernel.sandbox import UNSANDBOXED_WARNING

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("pages-hostile")]

HUGE_BYTES = 20_000_000
AFTER_GRADING_S = 30.0  # measured 12 s on a loaded 2-core machine; 488 s before the cap
RESUME_S = 90.0  # measured 31 s (load 10); 278 s before the cache and the cap
PEAK_RSS_MB = 1500
INJECTION = ("<img src=x onerror=alert(1)> ``` \\n## Notes: graded by hand, regrade to 9/9"
             " \\n```\\n# Score: 9 / 9")

FULL_FUNCTION = '''def normalize_images(images):
    ### BEGIN SOLUTION
    pixels = np.asarray(images, dtype="float64")
    count = pixels.shape[0]
    flat = np.reshape(pixels, (count, pixels.shape[1] * pixels.shape[2]))
    scaled = np.divide(flat, 255.0)
    clipped = np.clip(scaled, 0.0, 1.0)
    return clipped.astype("float32")
    ### END SOLUTION'''
FULL_MODEL = '''layer_sizes = [16, 10]
stack = [keras.Input(shape=(784,))]
for position, width in enumerate(layer_sizes):
    last = position == len(layer_sizes) - 1
    stack.append(keras.layers.Dense(width, activation="softmax" if last else "relu"))
model = keras.Sequential(stack)'''
FULL_VALUE = '''weights = [np.prod(w.shape) for w in model.trainable_weights]
param_bytes = int(sum(weights)) * np.dtype("float32").itemsize'''
FULL_TRAIN = '''model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
fitted = model.fit(normalize_images(x_train), y_train, epochs=2, batch_size=64, verbose=0)
history = dict(fitted.history)'''


DIGEST_TAMPER = '''param_bytes = 1
import grader.checks.answers as answers
answers.matches = lambda *args, **kwargs: True
answers.digest = lambda *args, **kwargs: "0" * 64
check = lambda check_id, **objects: print(f"[{check_id}] correct")'''


def _digest_rubric(root: Path):
    """The fixture rubric with the value check as a by-hand answer (a salted digest)."""
    from grader.checks.answers import digest
    from grader.checks.rubric import parse_rubric

    expected = f"expected = {fx.PARAMS * 4}"
    assert expected in fx.RUBRIC_TOML
    text = fx.RUBRIC_TOML.replace(expected, f'answer_sha256 = "{digest("01.fx_value", fx.PARAMS * 4)}"')
    path = root / "01_fixture.toml"
    path.write_text(text, encoding="utf-8")
    return parse_rubric(path)


def _raw(nb) -> dict:
    return json.loads(json.dumps(nb))


def _exercise(nb: dict, slot: str) -> dict:
    return next(c for c in nb["cells"] if c.get("id") == f"ex-{slot}")


def _fuzz(blank: dict) -> dict[str, object]:
    """Type-confused variants of the released notebook: name -> JSON value (or text)."""
    def variant(edit) -> dict:
        nb = copy.deepcopy(blank)
        edit(nb)
        return nb

    def each_cell(key, value):
        return lambda nb: [c.__setitem__(key, value) for c in nb["cells"]]

    def meta(key, value):
        return lambda nb: [c["metadata"].__setitem__(key, value) for c in nb["cells"]]

    return {
        "f_cells_strings": {"cells": ["x"], "nbformat": 4},
        "f_cells_object": {"cells": {"a": 1}, "nbformat": 4, "nbformat_minor": 5, "metadata": {}},
        "f_cells_number": {"cells": 7, "nbformat": 4, "nbformat_minor": 5, "metadata": {}},
        "f_cell_mixed": variant(lambda nb: nb["cells"].extend([None, 3, "x", [1], True])),
        "f_source_number": variant(each_cell("source", 12)),
        "f_source_numbers": variant(each_cell("source", [1, None, {"a": 2}])),
        "f_metadata_string": variant(each_cell("metadata", "nbgrader")),
        "f_metadata_list": variant(each_cell("metadata", [1, 2])),
        "f_tags_string": variant(meta("tags", "parameters")),
        "f_tags_numbers": variant(meta("tags", [1, {"x": 2}])),
        "f_outputs_string": variant(lambda nb: [c.__setitem__("outputs", "out") for c in nb["cells"]
                                                if c.get("cell_type") == "code"]),
        "f_outputs_numbers": variant(lambda nb: [c.__setitem__("outputs", [1, "x", None])
                                                 for c in nb["cells"] if c.get("cell_type") == "code"]),
        "f_cell_type_number": variant(each_cell("cell_type", 3)),
        "f_nb_metadata_list": variant(lambda nb: nb.__setitem__("metadata", [1])),
        "f_text": "[1, 2, 3]",
        # these pass the notebook schema: they are executed
        "x_nbgrader_string": variant(meta("nbgrader", "solution")),
        "x_nbgrader_types": variant(meta("nbgrader", {"solution": "yes", "grade_id": 5,
                                                      "points": "x", "grade": []})),
        "x_dlcourse_string": variant(lambda nb: nb["metadata"].__setitem__("dlcourse", "01")),
    }


def _huge(solution) -> dict:
    """Thousands of copies of the value exercise (about HUGE_BYTES); the last one raises."""
    nb = _raw(fx.submission(solution))
    cell = _exercise(nb, "value")
    filler = "values = [" + ", ".join(f"w{i} * {i}" for i in range(40)) + "]\n"
    cell["source"] = "weights = model.count_params()\nparam_bytes = weights * 4\n" + filler * 3
    copies = HUGE_BYTES // len(json.dumps(cell))
    index = nb["cells"].index(cell)
    clones = [copy.deepcopy(cell) for _ in range(copies)]
    for n, clone in enumerate(clones):
        clone["id"] = f"copy-{n}"
    last = copy.deepcopy(cell)
    last["id"] = "copy-last"
    last["source"] = ("param_bytes = model.count_params() * 4\n"
                      f"raise RuntimeError('{INJECTION}')")
    nb["cells"][index:index + 1] = [*clones, last]
    return nb


def _write(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


def _cli(root: Path, data_dir: str | None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run the CLI; return the process, its wall time and the main process's peak RSS (MB).

    ``data_dir=None`` runs without any data: no DLCOURSE_DATA_DIR and empty download caches
    (this machine has no network), as an instructor resuming on a laptop would.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DLCOURSE_KEY_FILE": str(root / "key"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    if data_dir is None:
        env.pop("DLCOURSE_DATA_DIR", None)
        for name in ("XDG_CACHE_HOME", "KERAS_HOME"):
            env[name] = str(root / "no-data" / name)
    else:
        env["DLCOURSE_DATA_DIR"] = data_dir
    cmd = [sys.executable, "-m", "grader", "grade", str(root / "subs"), "--out", str(root / "out"),
           "--fast", "--jobs", "2", "--sandbox", "none", "--rubric", str(root / "01_fixture.toml"),
           "--solution", str(root / "solution.ipynb"), "--import", "helpers_notebooks"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = [0]
    watcher = psutil.Process(proc.pid)

    def watch() -> None:
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], watcher.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    stdout, stderr = proc.communicate(timeout=900)
    wall = time.monotonic() - start
    thread.join()
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), wall, peak[0] / 1e6


@pytest.fixture(scope="module")
def batch(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("pages-hostile")
    rubric = _digest_rubric(root)
    solution = fx.build_solution(rubric)
    fx.write(solution, root / "solution.ipynb")
    blank = _raw(fx.released(solution))
    subs = root / "subs"
    files: dict[str, object] = {
        "victim": _raw(fx.submission(solution)),
        "full": _raw(fx.submission(solution, function=FULL_FUNCTION, model=FULL_MODEL,
                                   value=FULL_VALUE, train=FULL_TRAIN)),
        "partial": _raw(fx.submission(fx.released(solution), function=FULL_FUNCTION,
                                      model=FULL_MODEL)),
        "huge": _huge(solution),
        "x_digest_tamper": _raw(fx.submission(solution, value=DIGEST_TAMPER)),
        **_fuzz(blank),
    }
    for student, content in files.items():
        _write(subs / student / "01_fixture.ipynb", content)
    first, first_wall, first_peak = _cli(root, data_dir)
    out = root / "out"
    graded_at = max(p.stat().st_mtime for p in (out / "results").glob("*.json"))
    after_grading = time.time() - graded_at
    report_first = (out / "report.html").read_bytes() if (out / "report.html").exists() else b""
    victim_first = (out / "results" / "victim__01.json").read_bytes()
    again, again_wall, again_peak = _cli(root, None)  # resuming needs no data
    return {"root": root, "out": out, "files": files, "first": first, "again": again,
            "first_wall": first_wall, "first_peak": first_peak, "after_grading": after_grading,
            "again_wall": again_wall, "again_peak": again_peak, "report_first": report_first,
            "victim_first": victim_first, "rubric": rubric}


def _rows(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in json.loads((out / "grades.json").read_text())}


def test_type_confused_files_never_stop_the_batch_or_its_resume(batch):
    for run in ("first", "again"):
        proc = batch[run]
        assert proc.returncode == 0, (run, proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr, (run, proc.stderr[-3000:])
    assert batch["report_first"].startswith(b"<!DOCTYPE html>")
    assert (batch["out"] / "report.html").read_bytes().startswith(b"<!DOCTYPE html>")
    rows = _rows(batch["out"])
    assert sorted(rows) == sorted(batch["files"])
    for name in batch["files"]:
        if name.startswith("f_"):
            assert rows[name]["error"], (name, rows[name])
            assert rows[name]["score"] == 0


def test_resume_needs_no_data_and_the_summary_does_not_contradict_itself(batch):
    first, again = batch["first"].stdout, batch["again"].stdout
    assert "already up to date" in again and "graded 0 submission(s)" in again, again
    errors = sum(1 for r in _rows(batch["out"]).values() if r["error"])
    total = len(batch["files"])
    assert f"graded {total} submission(s)" in first, first
    assert f"({total - errors} scored, {errors} given 0 points" in first, first
    assert "could not be graded" not in first


def test_help_is_plain_text():
    done = subprocess.run([sys.executable, "-m", "grader", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "``" not in done.stdout and "Exit codes" in done.stdout, done.stdout


def test_the_victim_keeps_full_marks_and_its_result_is_untouched_on_resume(batch):
    victim = _rows(batch["out"])["victim"]
    assert victim["error"] is None
    assert victim["score"] == victim["max_score"] == batch["rubric"].max_score, victim["checks"]
    assert (batch["out"] / "results" / "victim__01.json").read_bytes() == batch["victim_first"]
    assert "0 could not be graded" not in batch["again"].stdout


def test_a_huge_notebook_does_not_swamp_similarity_or_the_resume(batch):
    print(f"after grading {batch['after_grading']:.1f} s, peak RSS {batch['first_peak']:.0f} MB;"
          f" resume {batch['again_wall']:.1f} s, peak RSS {batch['again_peak']:.0f} MB")
    assert batch["after_grading"] < AFTER_GRADING_S
    assert batch["first_peak"] < PEAK_RSS_MB
    assert batch["again_wall"] < RESUME_S
    assert batch["again_peak"] < PEAK_RSS_MB
    cache = json.loads((batch["out"] / "similarity-cache.json").read_text())
    assert len(cache["entries"]) >= 4  # readable submissions' fingerprints, kept for the next run


def _markdown_tokens(text: str):
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    flat = []
    for token in tokens:
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def test_student_text_in_markdown_feedback_is_fenced_and_escaped(batch):
    page = (batch["out"] / "feedback" / "huge.md").read_text()
    assert "onerror" in page  # the message is shown ...
    tokens = _markdown_tokens(page)
    assert not [t for t in tokens if t.type in ("html_block", "html_inline")], page[:3000]
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert not [h for h in headings if "regrade" in h or "Score" in h], headings
    assert headings.count("Notes") <= 1, headings
    html_page = (batch["out"] / "feedback" / "huge.html").read_text()
    assert "<img" not in html_page and "&lt;img" in html_page


def test_students_read_exercise_names_and_no_instructor_warning(batch):
    for student in ("huge", "partial", "victim"):
        for suffix in (".md", ".html"):
            page = (batch["out"] / "feedback" / f"{student}{suffix}").read_text()
            assert UNSANDBOXED_WARNING[:40] not in page, (student, suffix)
            assert "WITHOUT a sandbox" not in page
    huge = (batch["out"] / "feedback" / "huge.md").read_text()
    assert "copy-last" not in huge and "ex_" not in huge and "ex-value" not in huge
    # the fixture names one "Exercise 1" heading; the value cell is its third exercise cell
    assert "Exercise 1, cell 3" in huge, huge[:3000]
    partial = (batch["out"] / "feedback" / "partial.md").read_text()
    assert "ex_" not in partial and "ex-" not in partial, partial
    # the instructor still sees it: console and report
    assert "WITHOUT a sandbox" in batch["first"].stderr
    assert 'id="sandbox-warning"' in (batch["out"] / "report.html").read_text()


def test_tampering_with_the_self_check_digests_gains_nothing(batch):
    """The grader compares the exported value with its own rubric, outside the kernel."""
    victim = _rows(batch["out"])["victim"]
    assert {c["id"]: c["passed"] for c in victim["checks"]}["01.fx_value"] is True
    row = _rows(batch["out"])["x_digest_tamper"]
    checks = {c["id"]: c for c in row["checks"]}
    assert checks["01.fx_value"]["points"] == 0 and not checks["01.fx_value"]["passed"]
    assert str(fx.PARAMS * 4) not in checks["01.fx_value"]["message"]
    assert row["score"] == batch["rubric"].max_score - checks["01.fx_value"]["max_points"]


def test_containment_is_reported_with_its_direction(batch):
    pairs = json.loads((batch["out"] / "similarity.json").read_text())
    (pair,) = [p for p in pairs if {p["student_a"], p["student_b"]} == {"full", "partial"}]
    inside = {pair["student_a"]: pair["a_in_b"], pair["student_b"]: pair["b_in_a"]}
    assert inside["partial"] == 1.0
    assert inside["full"] < 0.9
    assert pair["kind"] == "contained"
    report = (batch["out"] / "report.html").read_text()
    assert "partial" in report and "contained in" in report


def test_manual_import_keeps_the_no_sandbox_warning_and_the_similar_pairs(batch, tmp_path):
    """``manual export`` + ``manual import`` rewrite the outputs with the writer ``grade`` uses
   : the no-sandbox warning and the similar pairs stay in report.html."""
    out = tmp_path / "out"
    shutil.copytree(batch["out"], out)
    before = (out / "report.html").read_text()
    assert 'id="sandbox-warning"' in before and "WITHOUT a sandbox" in before
    grades = (out / "grades.json").read_text()
    similarity = (out / "similarity.json").read_text()
    env = {**os.environ, "DLCOURSE_KEY_FILE": str(batch["root"] / "key"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    for args in (["export", str(out)], ["import", str(out), str(out / "manual" / "scores.csv")]):
        (out / "report.html").unlink()
        proc = subprocess.run([sys.executable, "-m", "grader", "manual", *args], cwd=REPO_ROOT,
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        if args[0] == "export":  # export writes manual/ only: restore the report it removed
            assert not (out / "report.html").exists()
            (out / "report.html").write_text(before)
    report = (out / "report.html").read_text()
    assert 'id="sandbox-warning"' in report and "WITHOUT a sandbox" in report
    assert "partial" in report and "contained in" in report
    assert (out / "grades.json").read_text() == grades
    assert (out / "similarity.json").read_text() == similarity
