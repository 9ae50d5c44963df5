"""The class report in a real headless Chromium: it renders, logs no errors, and links resolve.

Chromium is Debian's ``/usr/bin/chromium`` driven by the ``playwright`` package. Without
it the test skips, unless ``DLCOURSE_REQUIRE_BROWSER=1`` (CI), where it fails. If
playwright's driver cannot start, the chromium command line (``--screenshot``,
``--dump-dom``, ``--enable-logging=stderr``) is used instead.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import numpy as np
import pytest

from grader.checks.kinds import CheckResult
from grader.checks.results import GradeRow
from grader.classroom.outputs import record_batch, write_outputs
from grader.kernel.sandbox import UNSANDBOXED_WARNING

CHROMIUM = os.environ.get("DLCOURSE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

COPIED = '''def make_mlp(hidden_units, dropout_rate):
    inputs = keras.Input(shape=(1024,))
    x = inputs
    for width in hidden_units:
        x = layers.Dense(width, activation="relu")(x)
        x = layers.Dropout(dropout_rate)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)

model = make_mlp([256, 128], 0.2)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])'''


def _browser_or_skip() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    reason = (f"Chromium not found at {CHROMIUM}; install it with `apt-get install -y chromium`"
              " (or set DLCOURSE_CHROMIUM)")
    if os.environ.get("DLCOURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + " (DLCOURSE_REQUIRE_BROWSER=1 requires the browser test to run)")
    pytest.skip(reason)


def _notebook(path: Path, code: str) -> str:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "ex_model",
                                 "locked": False, "schema_version": 3}
    nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return str(path)


def _rows(tmp: Path) -> list[GradeRow]:
    rng = np.random.default_rng(0)
    rows = []
    for i, student in enumerate(["ann", "bob", "cyd", "dee <script>", "eve", "fay", "gus"]):
        for module, ids in (("01", ["01.model_params", "01.test_accuracy"]),
                            ("02", ["02.model_params", "02.mnist_accuracy", "02.fashion_accuracy"])):
            if student == "gus" and module == "02":
                continue
            passed = [bool(rng.random() < 0.3 + 0.1 * j + 0.05 * i) for j in range(len(ids))]
            checks = [CheckResult(c, 2.0 * ok, 2.0, ok, "expected 10 output units, found 1"
                                  if not ok else "ok") for c, ok in zip(ids, passed, strict=True)]
            code = COPIED if student in ("ann", "bob") else f"model = build_{student[:3]}()"
            rows.append(GradeRow(
                student=student, module=module, score=sum(c.points for c in checks),
                max_score=2.0 * len(ids), error=None, checks=checks,
                submission=_notebook(tmp / "subs" / student / f"{module}.ipynb", code),
                duration_s=float(10 + 7 * i), notes=["cell ex_1 raised ValueError: bad shape"]))
    rows.append(GradeRow(student="hal", module="01", score=0.0, max_score=4.0,
                         error="the submitted file is not valid JSON. Fix: resubmit",
                         submission=str(tmp / "subs" / "hal" / "01.ipynb")))
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    rows = _rows(out)
    sources = {r.submission: Path(r.submission).read_bytes() for r in rows
               if Path(r.submission).is_file()}  # what the batch read when planning
    record_batch(out / "out", warning=UNSANDBOXED_WARNING, threshold=None)  # as grade does
    write_outputs(rows, out / "out", sources=sources)
    return out / "out" / "report.html"


def _variance(png: bytes) -> float:
    from matplotlib import image

    pixels = image.imread(io.BytesIO(png), format="png")
    return float(np.var(pixels[..., :3]))


def _check_links(page_file: Path, hrefs: list[str]) -> list[str]:
    missing = []
    for href in hrefs:
        parsed = urlparse(href)
        if parsed.scheme in ("http", "https"):
            missing.append(f"{href} (external link)")
            continue
        if href.startswith("#") or parsed.scheme == "data":
            continue
        target = Path(unquote(parsed.path)) if parsed.scheme == "file" else \
            page_file.parent / unquote(parsed.path)
        if not target.is_file():
            missing.append(href)
    return missing


def test_report_renders_without_errors_and_every_link_resolves(report):
    chromium = _browser_or_skip()
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
            _check_with_playwright(browser, report)
            browser.close()
    except ImportError:
        _check_with_cli(chromium, report)
    except Exception as exc:  # the driver cannot start here: fall back to the CLI
        if "Executable doesn't exist" in str(exc) or "BrowserType.launch" in str(exc):
            _check_with_cli(chromium, report)
        else:
            raise


def _check_with_playwright(browser, report: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(report.as_uri(), wait_until="load")
    assert page.title() == "Class report"
    png = page.screenshot(full_page=True)
    assert _variance(png) > 1e-3, "the screenshot is blank"
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.naturalWidth])")
    assert len(images) >= 4 and all(width > 0 for _, width in images), images
    assert page.locator("script").count() == 0  # student names are escaped, never markup
    assert "dee <script>" in page.inner_text("#students")
    assert page.locator("#similarity tr").count() == 3  # header + ann/bob in 01 and in 02
    warning = page.locator("#sandbox-warning")
    assert warning.is_visible() and "WITHOUT a sandbox" in warning.inner_text()
    assert warning.bounding_box()["y"] < page.locator(".cards").bounding_box()["y"]
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert any(h.startswith("feedback/") for h in hrefs)
    assert _check_links(report, hrefs) == []
    for href in sorted({h for h in hrefs if h.endswith(".html")}):
        page.goto((report.parent / unquote(href)).as_uri(), wait_until="load")
        assert page.locator("h1").count() >= 1, href
    assert problems == []


def _check_with_cli(chromium: str, report: Path) -> None:
    shot = report.parent / "screenshot.png"
    run = subprocess.run([chromium, *ARGS, "--enable-logging=stderr", "--v=0",
                          f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.is_file(), run.stderr[-2000:]
    assert _variance(shot.read_bytes()) > 1e-3, "the screenshot is blank"
    errors = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln and "error" in ln.lower()]
    assert errors == []
    dom = subprocess.run([chromium, *ARGS, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    hrefs = re.findall(r'<a href="([^"]+)"', dom)
    assert any(h.startswith("feedback/") for h in hrefs)
    assert _check_links(report, [h.replace("&amp;", "&") for h in hrefs]) == []


def test_report_has_the_sections_instructors_need(report):
    text = report.read_text()
    for anchor in ('id="module-01"', 'id="module-02"', 'id="failed"', 'id="slowest"',
                   'id="similarity"', 'id="students"'):
        assert anchor in text
    assert "not valid JSON" in text and "&lt;script&gt;" in text
    assert "http://" not in text and "https://" not in text  # no external assets


def _written_rows(*, graded: bool) -> list[GradeRow]:
    """Two students: full automatic marks, one written answer each (graded or not), and a
    check worth 0 points."""
    from grader.checks.results import ManualResult

    rows = []
    for student in ("amy", "ben"):
        checks = [CheckResult("02.model_params", 2.0, 2.0, True, "ok"),
                  CheckResult("02.zero_point_note", 0.0, 0.0, False, "not part of the grade"),
                  ManualResult("02.written", 3.0 if graded else 0.0, 3.0, graded,
                               "good" if graded else "awaiting manual grading", graded=graded)]
        rows.append(GradeRow(student=student, module="02", score=sum(c.points for c in checks),
                             max_score=5.0, error=None, checks=checks, submission=f"{student}.ipynb"))
    return rows


def test_report_counts_full_marks_waiting_only_for_written_answers():
    from grader.pages.report import render_report

    text = render_report(_written_rows(graded=False))
    assert "0 with full marks." not in text
    assert "2 more with full marks on every automatic check" in text
    assert "2 answer(s) still ungraded" in text


def test_report_leaves_zero_point_checks_out_of_the_pass_rates():
    from grader.pages.report import check_pass_rates, render_report

    assert [r[0] for r in check_pass_rates(_written_rows(graded=False))] == ["02.model_params"]
    assert "02.zero_point_note" not in render_report(_written_rows(graded=False))


def test_report_says_every_written_answer_is_graded_when_none_is_left():
    from grader.pages.report import render_report

    text = render_report(_written_rows(graded=True))
    assert "0 answer(s) still ungraded" not in text and "Grade them with" not in text
    assert "Every written answer is graded" in text
    assert "2 with full marks" in text


def test_numbers_in_the_report_never_wrap_on_a_narrow_window(report):
    """"33% of 3" and "2 / 4" stay on one line at a phone's width (the table scrolls instead)."""
    chromium = _browser_or_skip()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: the line-box check needs a scripted browser")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 360, "height": 800})
        page.goto(report.as_uri(), wait_until="load")
        lines = page.eval_on_selector_all("td.num", """els => els.map(e => {
            const r = document.createRange(); r.selectNodeContents(e);
            const tops = new Set([...r.getClientRects()].filter(x => x.width > 0)
                                 .map(x => Math.round(x.top)));
            return [e.textContent, tops.size]; })""")
        browser.close()
    lines = [(text.replace("\xa0", " "), count) for text, count in lines]
    assert any(" of " in text for text, _ in lines) and any(" / " in text for text, _ in lines)
    wrapped = [text for text, count in lines if count > 1]
    assert wrapped == [], wrapped


def test_a_step_that_fails_after_grading_is_a_note_in_the_report_not_a_crash(tmp_path):
    """The similarity cache cannot be written (a folder squats its name): the pairs are still
    found, the report is written and says what went wrong."""
    rows = _rows(tmp_path)
    sources = {r.submission: Path(r.submission).read_bytes() for r in rows
               if Path(r.submission).is_file()}
    out = tmp_path / "out"
    (out / "similarity-cache.json").mkdir(parents=True)
    notes = write_outputs(rows, out, sources=sources, cache_key=b"k" * 32)
    assert any("similarity cache" in n for n in notes), notes
    report = (out / "report.html").read_text()
    assert 'id="run-notes"' in report and "similarity cache" in report
    assert report.count("largely the same code") == 2  # ann/bob in 01 and in 02


def test_the_similarity_cache_is_used_only_when_its_signature_verifies(tmp_path):
    from grader.classroom.similarity import load_cache, save_cache

    path = tmp_path / "cache.json"
    save_cache(path, b"key", {"d1": [1, 2, 3]})
    assert load_cache(path, b"key") == {"d1": {1, 2, 3}}
    assert load_cache(path, b"other key") == {}
    forged = path.read_text().replace("[1,2,3]", "[1,2,4]")
    path.write_text(forged)
    assert load_cache(path, b"key") == {}
