"""Feedback pages: score, per-check messages, notes; escaped and small."""

from __future__ import annotations

from grader.checks.kinds import CheckResult
from grader.checks.results import GradeRow
from grader.pages.feedback import write_feedback


def row(**kw) -> GradeRow:
    base = dict(student="alice", module="01", score=1.0, max_score=3.0, error=None,
                checks=[CheckResult("01.a", 1.0, 1.0, True, "12,730 trainable parameters"),
                        CheckResult("01.b", 0.0, 2.0, False,
                                    "expected `x` = 3, found <script>alert(1)</script>")],
                notes=["cell ex-a raised NameError: name 'y' is not defined\nline 1\nline 2"])
    base.update(kw)
    return GradeRow(**base)


def test_feedback_shows_score_checks_and_notes(tmp_path):
    html_path, md_path = write_feedback(row(), tmp_path)
    assert html_path.name == "alice.html" and md_path.name == "alice.md"
    html, md = html_path.read_text(), md_path.read_text()
    for text in (html, md):
        assert "1 / 3" in text and "12,730 trainable parameters" in text
        assert "NameError" in text and "line 2" in text
    assert "| 01.b | 0 / 2 | not yet:" in md


def test_feedback_escapes_student_text_and_stays_small(tmp_path):
    html_path, _ = write_feedback(row(notes=["<img src=x onerror=alert(1)>" + "z" * 10**6],
                                      student="bob<script>"), tmp_path)
    html = html_path.read_text()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html_path.name.startswith("bob_script-") and html_path.suffix == ".html"  # + a hash
    assert html_path.stat().st_size < 20_000


def test_error_row_feedback_says_not_graded(tmp_path):
    html_path, md_path = write_feedback(
        row(error="the submitted file is empty", checks=[], score=0.0), tmp_path)
    assert "Not graded" in html_path.read_text() and "empty" in md_path.read_text()
