"""Written answers graded by hand: collect them at grade time, export, import the scores.

The flow (``python -m grader manual ...`` on a ``grade --out`` folder DIR):

1. **grade** keeps each submission's written answers (the Markdown exercise cells the
   rubric's ``kind = "manual"`` questions name) in its signed result
   (``DIR/results/<key>.json``), and lists every question in the row as a check worth
   0 points so far with the message "awaiting manual grading" (:func:`attach_questions`).
2. **manual export DIR** writes ``DIR/manual/scores.csv`` (``student,module,question,
   max_points,points,comment``; rows already graded keep their values; every cell through
   :func:`grader.base.csvcells.neutralise`, undone on reading) and one static page
   per question (``DIR/manual/<question>.html``: the marking guide and every answer in a
   shuffled order, names hideable) plus ``index.html``.
3. **manual import DIR SCORES.csv** validates every row first (nothing is written when one
   is wrong), stores the marks in ``DIR/manual/marks.json`` (signed with the results key),
   updates the signed results and rewrites ``grades.json``, ``grades.csv``, the feedback
   pages and ``report.html``.

A mark belongs to one answer: it stores the SHA-256 of the answer it graded. Grading again
keeps the mark while the answer is unchanged (even with ``--force``) and drops it when the
student handed in a different answer. Answers and marks are read only from files whose
HMAC verifies: text anyone else wrote into DIR is ignored.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from grader.base.csvcells import restore, safe_row
from grader.base.errors import GraderError
from grader.checks.results import AWAITING, GradeRow, ManualResult
from grader.checks.rubric import Rubric
from grader.pages.gradebook import atomic_write_text, sort_rows

MANUAL_DIR = "manual"
SCORES_NAME = "scores.csv"
MARKS_NAME = "marks.json"
COLUMNS = ("student", "module", "question", "max_points", "points", "comment")
MAX_COMMENT = 2000
MAX_ANSWER = 20_000
NO_ANSWER = "no answer written (the cell still holds the placeholder): 0 points"
NO_CELL = "the answer cell is missing from the notebook: 0 points"


# ----------------------------------------------------------------------------------------
# Answers and marks
# ----------------------------------------------------------------------------------------


def answer_digest(text: str) -> str:
    """SHA-256 (hex) of an answer's text: a mark applies to exactly this answer."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def written_answers(data: bytes, rubric: Rubric) -> dict[str, str | None]:
    """Question id -> the student's answer (Markdown), ``""`` when it is blank or still the
    placeholder, ``None`` when the notebook has no such cell (or is not a notebook).

    The answer cell is found by its cell id or its nbgrader ``grade_id`` (``ex_<cell id>``);
    when a student pasted it twice, the last copy counts (as :mod:`grader.submission.restore` does).
    """
    from grader.authoring.cells import MARKDOWN_STUB

    try:
        nb = json.loads(data.decode("utf-8"))
        cells = [c for c in nb.get("cells", []) if isinstance(c, dict)]
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError, RecursionError,
            MemoryError):  # untrusted bytes (e.g. JSON nested 200,000 deep): no answers
        cells = []
    found: dict[str, str | None] = {}
    for spec in rubric.questions:
        text = None
        for cell in cells:
            metadata = cell.get("metadata")
            nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
            grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
            if cell.get("id") == spec.cell or grade_id == f"ex_{spec.cell}":
                source = cell.get("source", "")
                text = ("".join(str(part) for part in source) if isinstance(source, list)
                        else str(source))
        if text is not None:
            text = text.strip()[:MAX_ANSWER]
            if not text or text == MARKDOWN_STUB:
                text = ""
        found[spec.id] = text
    return found


@dataclass(frozen=True)
class Mark:
    """One hand-graded answer."""

    student: str
    module: str
    question: str
    points: float
    comment: str
    answer_sha256: str


class MarkStore:
    """``DIR/manual/marks.json``: every imported mark, signed like the results."""

    def __init__(self, out: Path, key: bytes | None = None) -> None:
        from grader.base.keys import load_result_key

        self.path = Path(out) / MANUAL_DIR / MARKS_NAME
        self.key = load_result_key() if key is None else key

    def _sign(self, marks: list[dict]) -> str:
        body = json.dumps(marks, sort_keys=True).encode("utf-8")
        return hmac.new(self.key, b"marks|" + body, hashlib.sha256).hexdigest()

    def load(self, *, strict: bool = False) -> dict[tuple[str, str, str], Mark]:
        """Marks by (student, module, question). A file whose signature does not verify is
        ignored with a warning (``strict``: a :class:`GraderError`)."""
        if not self.path.exists():
            return {}
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
            marks = record["marks"]
            ok = isinstance(marks, list) and hmac.compare_digest(
                str(record.get("hmac", "")), self._sign(marks))
        except (OSError, ValueError, KeyError, TypeError):
            ok, marks = False, []
        if not ok:
            message = (f"{self.path} was not written by this grader (its signature does not"
                       " verify), so its marks are ignored")
            if strict:
                raise GraderError(message + ". Fix: move it away and import the scores again")
            print(f"WARNING: {message}", file=sys.stderr)
            return {}
        out = {}
        for m in marks:
            mark = Mark(**m)
            out[mark.student, mark.module, mark.question] = mark
        return out

    def save(self, marks: dict[tuple[str, str, str], Mark]) -> None:
        entries = [dict(student=m.student, module=m.module, question=m.question,
                        points=m.points, comment=m.comment, answer_sha256=m.answer_sha256)
                   for _, m in sorted(marks.items())]
        record = {"schema": 1, "marks": entries, "hmac": self._sign(entries)}
        atomic_write_text(self.path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def points_text(value: float) -> str:
    return f"{value:g}"


def apply_marks(row: GradeRow, marks: dict[tuple[str, str, str], Mark]) -> GradeRow:
    """Set the hand-graded points of ``row``'s written questions from ``marks`` (in place).

    A mark counts only for the answer it graded (same SHA-256) and within the question's
    points; the row's score is recomputed.
    """
    for check in row.checks:
        if not isinstance(check, ManualResult):
            continue
        mark = marks.get((row.student, row.module or "", check.id))
        answer = row.answers.get(check.id)
        if (mark is None or answer is None or mark.answer_sha256 != answer_digest(answer)
                or not 0 <= mark.points <= check.max_points):
            continue
        check.points, check.graded, check.comment = float(mark.points), True, mark.comment
        check.passed = check.points >= check.max_points
        check.message = f"graded by hand: {points_text(check.points)} / {points_text(check.max_points)}"
        if mark.comment:
            check.message += f". Comment: {mark.comment}"
    row.score = float(sum(c.points for c in row.checks))
    return row


def attach_questions(row: GradeRow, data: bytes, rubric: Rubric | None, out: Path) -> GradeRow:
    """Add the rubric's written questions to a freshly graded ``row`` (in place).

    Each becomes a :class:`~grader.checks.results.ManualResult` worth 0 points "awaiting manual
    grading" (a blank answer: 0 points, graded); the answers go to ``row.answers`` and the
    row's ``max_score`` grows by the questions' points. Marks imported earlier for the same
    answers are applied again.
    """
    if rubric is None and row.module:
        try:
            from grader.checks.rubric import load_rubric

            rubric = load_rubric(row.module)
        except GraderError:
            return row
    if rubric is None or not rubric.questions:
        return row
    present = {c.id for c in row.checks}
    answers = written_answers(data, rubric) if data else {}
    for spec in rubric.questions:
        if spec.id in present:
            continue
        answer = answers.get(spec.id)
        if row.error is not None and answer is None:
            check = ManualResult(spec.id, 0.0, spec.points, False, "not graded: " + row.error,
                                 graded=True)
        elif answer is None:
            check = ManualResult(spec.id, 0.0, spec.points, False, NO_CELL, graded=True)
        elif not answer:
            check = ManualResult(spec.id, 0.0, spec.points, False, NO_ANSWER, graded=True)
        else:
            check = ManualResult(spec.id, 0.0, spec.points, False, AWAITING)
        if answer is not None:
            row.answers[spec.id] = answer
        row.checks.append(check)
        row.max_score += spec.points
    return apply_marks(row, MarkStore(out).load())


# ----------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------


def trusted_rows(out: Path) -> dict[str, GradeRow]:
    from grader.classroom.resume import ResultStore

    out = Path(out)
    if not (out / "results").is_dir():
        raise GraderError(f"{str(out)!r} holds no graded results (expected {out / 'results'});"
                          " expected the folder `python -m grader grade --out DIR` wrote. Fix:"
                          " grade first, then pass the same DIR")
    store = ResultStore(out)
    rows = store.load()
    if store.untrusted:
        print(f"WARNING: ignored {len(store.untrusted)} result file(s) whose signature does not"
              f" verify: {', '.join(store.untrusted[:5])}", file=sys.stderr)
    return rows


def _guides(module: str | None, out: Path | None = None) -> dict[str, tuple[str, str]]:
    """Question id -> (description, marking guide) from the rubric DIR was graded with
    (:mod:`grader.classroom.rubric_record`), else the course rubric, if any."""
    from grader.classroom.rubric_record import load_record

    record = load_record(out).get(module or "") if out is not None else None
    if record is not None:
        return {qid: (about[0], about[1]) for qid, about in record.guides.items()}
    try:
        from grader.checks.rubric import load_rubric

        return {q.id: (q.description, q.guide) for q in load_rubric(module).questions}
    except GraderError:
        return {}


def render_markdown(text: str) -> str:
    """A student's Markdown as HTML: raw HTML is shown as text, images are not loaded,
    links are limited to safe schemes (markdown-it's defaults), and headings stay text (an
    answer cannot forge a section of the page, such as another "Answer" heading)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.disable(["image", "heading", "lheading"])
    return md.render(text)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
article{border:1px solid #dde2ec;border-radius:.5rem;padding:.4rem 1rem;margin:1rem 0}
.guide{background:#f3f5fa;padding:.6rem 1rem;border-left:4px solid #3a6ea5}
.muted{color:#5b6478}#hide:checked~main .name{display:none}
table{border-collapse:collapse}td,th{border-bottom:1px solid #dde2ec;padding:.3rem .6rem;text-align:left}
"""


def _page(title: str, body: str) -> str:
    e = html.escape
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)}</title><style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def _question_page(question: str, module: str, entries: list[tuple[GradeRow, ManualResult]],
                   about: tuple[str, str]) -> str:
    e = html.escape
    description, guide = about
    rng = random.Random(f"dlcourse-manual|{question}")
    order = sorted(entries, key=lambda pair: pair[0].student)
    rng.shuffle(order)
    max_points = entries[0][1].max_points if entries else 0.0
    parts = [f"<h1>Question {e(question)} (module {e(module)}, {points_text(max_points)} points)</h1>",
             f"<p>{e(description)}</p>" if description else "",
             f'<div class="guide"><strong>Marking guide:</strong> {e(guide)}</div>' if guide else "",
             '<p class="muted">Answers in a shuffled order. Enter points and comments in'
             f" <code>{SCORES_NAME}</code>, then run <code>python -m grader manual import DIR"
             f" DIR/{MANUAL_DIR}/{SCORES_NAME}</code>.</p>",
             '<input type="checkbox" id="hide"><label for="hide"> hide names</label>',
             "<main>"]
    for number, (row, check) in enumerate(order, 1):
        answer = row.answers.get(question, "")
        shown = render_markdown(answer) if answer else '<p class="muted">(no answer)</p>'
        state = (f"graded: {points_text(check.points)} / {points_text(check.max_points)}"
                 + (f" &mdash; {e(check.comment)}" if check.comment else "")
                 if check.graded else "not graded yet")
        parts.append(f'<article id="answer-{number}"><h2>Answer {number}'
                     f'<span class="name"> &middot; {e(row.student)}</span></h2>'
                     f'<div class="answer">{shown}</div><p class="muted">{state}</p></article>')
    parts.append("</main>")
    return _page(f"Question {question}", "\n".join(parts))


def read_scores(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a scores CSV; a :class:`GraderError` for a malformed file."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraderError(f"cannot read {str(path)!r}: {exc}; expected a UTF-8 CSV with the"
                          f" columns {','.join(COLUMNS)}") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise GraderError(f"{path}: line 1: not valid CSV ({exc})") from exc
    except StopIteration:
        raise GraderError(f"{path}: the file is empty; expected the header"
                          f" {','.join(COLUMNS)}. Fix: start from DIR/{MANUAL_DIR}/{SCORES_NAME}"
                          ) from None
    header = [restore(h.strip()) for h in header]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise GraderError(f"{path}: line 1: missing column(s) {', '.join(missing)}; expected"
                          f" {','.join(COLUMNS)}, found {','.join(header)}. Fix: start from"
                          f" DIR/{MANUAL_DIR}/{SCORES_NAME}")
    rows = []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise GraderError(f"{path}: line {reader.line_num}: expected {len(header)}"
                                  f" fields, found {len(values)}. Fix: quote comments that"
                                  ' hold commas ("...")')
            rows.append((reader.line_num, dict(zip(header, map(restore, values), strict=True))))
    except csv.Error as exc:
        raise GraderError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from exc
    return rows


def export_manual(out: Path) -> Path:
    """Write ``DIR/manual/`` (see the module docstring); return the folder."""
    from grader.classroom.rubric_record import graded_rubrics

    out = Path(out)
    rows = trusted_rows(out)
    graded_rubrics(out)  # warns on the console when the rubric on disk changed since grading
    folder = out / MANUAL_DIR
    scores = folder / SCORES_NAME
    kept: dict[tuple[str, str, str], tuple[str, str]] = {}
    if scores.exists():
        for _, entry in read_scores(scores):
            if entry["points"].strip():
                kept[entry["student"], entry["module"], entry["question"]] = (
                    entry["points"].strip(), entry["comment"])
    by_question: dict[tuple[str, str], list[tuple[GradeRow, ManualResult]]] = {}
    for row in sort_rows(rows.values()):
        for check in row.checks:
            if isinstance(check, ManualResult):
                by_question.setdefault((row.module or "", check.id), []).append((row, check))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(safe_row(COLUMNS))
    index = ["<h1>Written answers to grade by hand</h1>",
             f'<p>Scores: <a href="{SCORES_NAME}">{SCORES_NAME}</a>. Import them with'
             " <code>python -m grader manual import DIR SCORES.csv</code>.</p>",
             "<table><tr><th>module</th><th>question</th><th>answers</th><th>graded</th></tr>"]
    for (module, question), entries in sorted(by_question.items()):
        about = _guides(module, out).get(question, ("", ""))
        for row, check in entries:
            points, comment = kept.get((row.student, module, question), ("", ""))
            if not points and check.graded:
                points, comment = points_text(check.points), check.comment
            writer.writerow(safe_row([row.student, module, question, points_text(check.max_points),
                                      points, comment]))
        name = f"{question}.html"
        atomic_write_text(folder / name, _question_page(question, module, entries, about))
        graded = sum(c.graded for _, c in entries)
        index.append(f'<tr><td>{html.escape(module)}</td><td><a href="{html.escape(name)}">'
                     f"{html.escape(question)}</a></td><td>{len(entries)}</td>"
                     f"<td>{graded} of {len(entries)}</td></tr>")
    index.append("</table>")
    atomic_write_text(scores, buffer.getvalue())
    atomic_write_text(folder / "index.html", _page("Written answers", "\n".join(index)))
    return folder
