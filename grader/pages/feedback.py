"""Per-student feedback pages: ``feedback/<student>.html`` and ``feedback/<student>.md``.

Each page shows the score, one line per check (points and the message saying what was
expected and what was found), and the grader's notes (restored cells, time-outs, the last
lines of tracebacks). The HTML is self-contained (inline CSS, no scripts, no external
resources) and every piece of text from the submission is escaped. The Markdown page
escapes it too: text from the submission (messages, errors, notes) never becomes HTML, a
heading, a link or a table column there, and tracebacks sit in code fences longer than any
run of backticks inside them, so no student text can close a fence or forge a section.
Long texts are cut so a page stays small whatever the notebook printed.

Notes meant for the instructor only (the no-sandbox warning) are left out of these pages:
they are in the class report and on the console.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path

from grader.base.ids import safe_id
from grader.checks.results import GradeRow
from grader.checks.rubric import Rubric
from grader.pages.gradebook import late_sentence

MAX_TEXT = 4000
MAX_NOTES = 30

_CSS = """
body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;
text-align:left;vertical-align:top}.pass{color:#176b2c}.fail{color:#a4161a}
pre{background:#f6f6f6;padding:.5rem;white-space:pre-wrap;overflow-wrap:anywhere}
.error{background:#fdecea;padding:.6rem;border-left:4px solid #a4161a}
"""


_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")  # inline markup; line starts never occur
_BACKTICKS = re.compile(r"`+")


def md_text(text: object) -> str:
    """``text`` as one line of inert Markdown: HTML escaped, Markdown punctuation
    backslash-escaped, line breaks as spaces (so it can start no heading, list or fence)."""
    flat = " ".join(str(text).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(flat, quote=False))


def md_fence(text: str, indent: str = "") -> list[str]:
    """``text`` as a fenced code block whose fence is longer than any backtick run inside."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [indent + fence, *(indent + line for line in text.splitlines()), indent + fence]


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"\n... [{len(text) - limit:,} characters cut]"


def _points(value: float) -> str:
    return f"{value:g}"


def _descriptions(rubric: Rubric | Mapping[str, str] | None) -> dict[str, str]:
    """Check id -> description, from a rubric or from the descriptions the batch recorded."""
    if rubric is None:
        return {}
    if isinstance(rubric, Mapping):
        return dict(rubric)
    return {c.id: c.description for c in (*rubric.checks, *rubric.questions)}


def _mark(check) -> str:
    """"passed" / "not yet", or "written answer" for one graded by hand."""
    if getattr(check, "manual", False):
        return "written answer" if check.graded else "ungraded"
    return "passed" if check.passed else "not yet"


def render_markdown(row: GradeRow, rubric: Rubric | Mapping[str, str] | None = None) -> str:
    """The feedback page as Markdown (all submission text escaped or fenced)."""
    desc = _descriptions(rubric)
    lines = [f"# Feedback: {md_text(row.student)}, module {md_text(row.module or '?')}", "",
             f"**Score: {_points(row.score)} / {_points(row.max_score)}**", ""]
    if row.late:
        lines += [f"**Late:** {md_text(late_sentence(row.late))}"
                  f" (score before: {_points(row.raw_score or 0)})", ""]
    if row.error:
        lines += [f"> **Not graded:** {md_text(_cut(row.error))}", ""]
    if row.checks:
        lines += ["| check | points | result |", "|---|---|---|"]
        for check in row.checks:
            name = md_text(check.id) + (f" ({md_text(desc[check.id])})" if desc.get(check.id) else "")
            mark = _mark(check)
            message = md_text(_cut(check.message, 600))
            lines.append(f"| {name} | {_points(check.points)} / {_points(check.max_points)}"
                         f" | {mark}: {message} |")
        lines.append("")
    notes = row.notes  # instructor_notes never reach the student
    if notes:
        lines += ["## Notes", ""]
        for note in notes[:MAX_NOTES]:
            head, _, rest = _cut(note, 1500).partition("\n")
            lines.append(f"- {md_text(head)}")
            if rest:
                lines += ["", *md_fence(rest, "  ")]
        lines.append("")
    return "\n".join(lines)


def render_html(row: GradeRow, rubric: Rubric | Mapping[str, str] | None = None) -> str:
    """The feedback page as self-contained HTML (all submission text escaped)."""
    e = html.escape
    desc = _descriptions(rubric)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>Feedback: {e(row.student)}, module {e(str(row.module or '?'))}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Feedback: {e(row.student)}, module {e(str(row.module or '?'))}</h1>",
             f"<p><strong>Score: {_points(row.score)} / {_points(row.max_score)}</strong></p>"]
    if row.late:
        parts.append(f'<p class="late" id="late"><strong>Late:</strong>'
                     f" {e(late_sentence(row.late))} (score before:"
                     f" {_points(row.raw_score or 0)})</p>")
    if row.error:
        parts.append(f'<p class="error"><strong>Not graded:</strong> {e(_cut(row.error))}</p>')
    flagged = [c.id for c in row.checks if getattr(c, "flag", None) == "saw_test_set"]
    if flagged:
        parts.append(f'<p class="error" id="flag-saw-test-set"><strong>Flagged:</strong> the'
                     f" model(s) of {e(', '.join(flagged))} appear to have seen the test set:"
                     " they score much better on the test images than on images they never"
                     " had. Those checks score 0; see their messages below.</p>")
    if row.checks:
        parts.append("<table><tr><th>check</th><th>points</th><th>result</th></tr>")
        for check in row.checks:
            cls = "pass" if check.passed else "fail"
            mark = _mark(check)
            about = f"<br><small>{e(desc[check.id])}</small>" if desc.get(check.id) else ""
            parts.append(
                f"<tr><td>{e(check.id)}{about}</td><td>{_points(check.points)} /"
                f" {_points(check.max_points)}</td><td class=\"{cls}\">{mark}:"
                f" {e(_cut(check.message, 600))}</td></tr>")
        parts.append("</table>")
    notes = row.notes  # instructor_notes never reach the student
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        for note in notes[:MAX_NOTES]:
            head, _, rest = _cut(note, 1500).partition("\n")
            detail = f"<pre>{e(rest)}</pre>" if rest else ""
            parts.append(f"<li>{e(head)}{detail}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_feedback(row: GradeRow, out_dir: Path, *,
                   rubric: Rubric | Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<student>.html`` and ``.md``; return both paths.

    The file name is the student id made safe for file systems; when one student has
    several modules graded into the same folder, call with a per-module ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_id(row.student)
    html_path, md_path = out_dir / f"{stem}.html", out_dir / f"{stem}.md"
    html_path.write_text(render_html(row, rubric), encoding="utf-8")
    md_path.write_text(render_markdown(row, rubric), encoding="utf-8")
    return html_path, md_path
