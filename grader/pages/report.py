"""The class report: one static HTML page an instructor opens straight from the folder.

No server and no external assets: charts are matplotlib figures (``Figure``, never
pyplot) embedded as base64 SVG images, and the style sheet is inline. Sections:

* a summary (submissions, students, median score, how many could not be graded);
* per module, the score distribution and the pass rate of every check, hardest first
  (which exercise the class struggled with);
* submissions that could not be graded, and the slowest ones;
* submissions flagged because a model appears to have been trained on the test split
  (:mod:`grader.checks.leakage`), also marked in the students' table;
* written answers graded by hand: per question the mean points and how many are ungraded;
* pairs of submissions with similar code (see :mod:`grader.classroom.similarity`);
* every student with a link to their feedback page.

Everything students control (names, messages) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from grader.checks.results import GradeRow, ManualResult
from grader.pages.gradebook import atomic_write_text, late_sentence, module_label, sort_rows

SLOWEST = 10

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:70rem;padding:0 1rem;color:#1d2330;background:#fff}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e3e7ef;padding-bottom:.3rem;margin-top:2.2rem}
.muted{color:#5b6478}.cards{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}
.card{background:#f3f5fa;border-radius:.5rem;padding:.8rem 1.2rem;min-width:9rem}
.card b{display:block;font-size:1.6rem}table{border-collapse:collapse;width:100%;margin:.6rem 0}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e7ef;vertical-align:top}
th{background:#f3f5fa}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bad{color:#a4161a}.ok{color:#1b6e3a}.charts{display:flex;flex-wrap:wrap;gap:1rem}
.charts img{max-width:100%;height:auto;border:1px solid #e3e7ef;border-radius:.4rem}
code{background:#f3f5fa;padding:0 .2rem;border-radius:.2rem}
.table-wrap{overflow-x:auto}.notes{background:#fff4e5;border:1px solid #d08c00;padding:.6rem 1rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(row: GradeRow) -> float:
    return 100.0 * row.score / row.max_score if row.max_score else 0.0


def warm_up_report() -> None:
    """Import what drawing the report's charts needs (matplotlib and its SVG backend, about
    0.4 s): a batch calls it in a thread while the kernels run, so that writing the class
    outputs at its end waits only for the drawing."""
    import matplotlib.backends.backend_svg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def _svg_img(fig, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/svg+xml;base64,{data}" alt="{_e(alt)}">'


def score_histogram(rows: Sequence[GradeRow], title: str):
    """A matplotlib Figure: distribution of score percentages."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.0), dpi=100)
    ax = fig.add_subplot()
    values = [_pct(r) for r in rows]
    ax.hist(values, bins=[0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100.0001], color="#3a6ea5",
            edgecolor="white")
    ax.set_xlim(0, 100)
    ax.set_xlabel("score (% of the maximum)")
    ax.set_ylabel("submissions")
    ax.set_title(title)
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def pass_rate_chart(rates: Sequence[tuple[str, float, int]], title: str):
    """A matplotlib Figure: horizontal bars of the pass rate per check, hardest at the top."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 0.9 + 0.32 * max(1, len(rates))), dpi=100)
    ax = fig.add_subplot()
    labels = [r[0] for r in rates][::-1]
    values = [100 * r[1] for r in rates][::-1]
    colors = ["#a4161a" if v < 50 else "#d08c00" if v < 80 else "#1b6e3a" for v in values]
    ax.barh(labels, values, color=colors)
    ax.set_xlim(0, 100)
    ax.set_xlabel("submissions passing (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def check_pass_rates(rows: Sequence[GradeRow]) -> list[tuple[str, float, int]]:
    """``(check id, pass rate, submissions scored)`` per check, lowest pass rate first.

    Submissions that could not be graded at all count as failing every check of their module.
    Checks worth no points (notes such as an ungraded extra) and written answers (their own
    section) are left out.
    """
    ids: dict[str, None] = {}
    for row in rows:
        for check in row.checks:
            if not getattr(check, "manual", False) and check.max_points > 0:
                ids.setdefault(check.id, None)
    rates = []
    for check_id in ids:
        passed = total = 0
        for row in rows:
            found = [c for c in row.checks if c.id == check_id]
            if found or row.error is not None:
                total += 1
                passed += bool(found and found[0].passed)
        rates.append((check_id, passed / total if total else 0.0, total))
    return sorted(rates, key=lambda r: (r[1], r[0]))


def _descriptions(module: str | None, recorded: dict | None = None) -> dict[str, str]:
    """Check id -> description: as recorded for the rubric the batch graded with (which is
    the ``--rubric`` one when given), else from the course's rubric."""
    if recorded and recorded.get(module):
        return dict(recorded[module])
    try:
        from grader.checks.rubric import load_rubric

        return {c.id: c.description for c in load_rubric(module).checks} if module else {}
    except Exception:  # noqa: BLE001 - descriptions are a nicety
        return {}


def _link(student: str, links: dict[str, str]) -> str:
    target = links.get(student)
    return f'<a href="{_e(target)}">{_e(student)}</a>' if target else _e(student)


def _module_section(module: str, rows: Sequence[GradeRow], links: dict[str, str],
                    descriptions: dict | None = None) -> str:
    scores = [_pct(r) for r in rows]
    rates = check_pass_rates(rows)
    desc = _descriptions(None if module == "unknown" else module, descriptions)
    charts = [_svg_img(score_histogram(rows, f"Module {module}: scores"),
                       f"Histogram of module {module} scores")]
    if rates:
        charts.append(_svg_img(pass_rate_chart(rates, f"Module {module}: pass rate per check"),
                               f"Pass rate per check of module {module}"))
    lines = [f'<section id="module-{_e(module)}"><h2>Module {_e(module)}</h2>',
             f'<p>{len(rows)} submission(s); median {statistics.median(scores):.0f}%,'
             f" mean {statistics.fmean(scores):.0f}%; {_full_marks(rows)}.</p>",
             f'<div class="charts">{"".join(charts)}</div>']
    if rates:
        lines.append('<div class="table-wrap"><table><tr><th>check</th><th>what it asks</th>'
                     "<th>passing</th></tr>")
        for check_id, rate, total in rates:
            cls = "bad" if rate < 0.5 else "ok" if rate >= 0.8 else ""
            lines.append(f"<tr><td><code>{_e(check_id)}</code></td><td>{_e(desc.get(check_id, ''))}"
                         f'</td><td class="num {cls}">{rate * 100:.0f}%&nbsp;of&nbsp;{total}</td></tr>')
        lines.append("</table></div>")
    lines.append("</section>")
    return "\n".join(lines)


def _automatic_full(row: GradeRow) -> bool:
    """Every automatic check (not a written answer) of the row has all its points."""
    auto = [c for c in row.checks if not getattr(c, "manual", False)]
    return row.error is None and bool(auto) and all(c.points >= c.max_points for c in auto)


def _full_marks(rows: Sequence[GradeRow]) -> str:
    """"N with full marks", plus those whose only missing points are ungraded written answers."""
    full = sum(1 for r in rows if r.max_score and r.score >= r.max_score)
    waiting = sum(1 for r in rows if not (r.max_score and r.score >= r.max_score)
                  and _automatic_full(r)
                  and any(getattr(c, "manual", False) and not c.graded for c in r.checks))
    text = f"{full} with full marks"
    if waiting:
        text += (f"; {waiting} more with full marks on every automatic check, waiting only for"
                 " their written answers to be graded")
    return text


def _problems(rows: Sequence[GradeRow], links: dict[str, str]) -> str:
    failed = [r for r in rows if r.error is not None]
    out = ['<section id="failed"><h2>Submissions that could not be graded</h2>']
    if not failed:
        out.append("<p>None: every submission was executed and scored.</p>")
    else:
        out.append("<table><tr><th>student</th><th>module</th><th>reason</th><th>file</th></tr>")
        for r in failed:
            out.append(f"<tr><td>{_link(r.student, links)}</td><td>{_e(r.module or '?')}</td>"
                       f'<td class="bad">{_e(r.error)}</td><td>{_e(Path(r.submission).name)}</td></tr>')
        out.append("</table>")
    slow = sorted(rows, key=lambda r: -r.duration_s)[:SLOWEST]
    out.append(f'</section><section id="slowest"><h2>Slowest submissions (top {SLOWEST})</h2>')
    out.append("<table><tr><th>student</th><th>module</th><th>grading time</th><th>score</th></tr>")
    for r in slow:
        out.append(f"<tr><td>{_link(r.student, links)}</td><td>{_e(r.module or '?')}</td>"
                   f'<td class="num">{r.duration_s:.1f} s</td>'
                   f'<td class="num">{r.score:g}&nbsp;/&nbsp;{r.max_score:g}</td></tr>')
    out.append("</table></section>")
    return "\n".join(out)


def _flags(row: GradeRow) -> list[str]:
    return list(getattr(row, "flags", None) or [])


def _flagged(rows: Sequence[GradeRow], links: dict[str, str]) -> str:
    """Submissions whose models appear to have been trained on the test split."""
    out = ['<section id="flagged"><h2>Flagged: models that appear to have seen the test set'
           '</h2><p class="muted">Accuracy on the public test split above accuracy on the'
           " grader's private hold-out by more than the calibrated margin; the check scores"
           " 0.</p>"]
    hits = [(r, c) for r in rows for c in r.checks if getattr(c, "flag", None)]
    if not hits:
        out.append("<p>None.</p></section>")
        return "\n".join(out)
    out.append("<table><tr><th>student</th><th>module</th><th>check</th><th>test split</th>"
               "<th>private hold-out</th></tr>")
    for r, c in hits:
        d = c.details or {}
        out.append(f"<tr><td>{_link(r.student, links)}</td><td>{_e(r.module or '?')}</td>"
                   f"<td><code>{_e(c.id)}</code></td>"
                   f'<td class="num bad">{d.get("public_accuracy", float("nan")):.3f}</td>'
                   f'<td class="num">{d.get("private_accuracy", float("nan")):.3f}</td></tr>')
    out.append("</table></section>")
    return "\n".join(out)


def _similarity(pairs: Sequence, links: dict[str, str], threshold: float) -> str:
    out = ['<section id="similarity"><h2>Similar code</h2>',
           f'<p class="muted">Pairs where at least {threshold * 100:.0f}% of one submission\'s'
           " exercise code (template removed, names and literals normalised) is found in the"
           " other's, measured in both directions. <b>copy</b>: both directions are high, the"
           " codes are largely the same; <b>contained</b>: only the smaller code is inside the"
           " larger one (e.g. a partial notebook next to a finished one), which is not the same"
           " as copying the whole. A prompt to look, not a verdict.</p>"]
    if not pairs:
        out.append("<p>No pair above the threshold.</p></section>")
        return "\n".join(out)
    out.append('<div class="table-wrap"><table><tr><th>module</th><th>student A</th>'
               "<th>student B</th><th>A in B</th><th>B in A</th><th>kind</th><th>what it means"
               "</th></tr>")
    for p in pairs:
        a_in_b = getattr(p, "a_in_b", None)
        b_in_a = getattr(p, "b_in_a", None)
        kind = getattr(p, "kind", None) or "copy"
        describe = getattr(p, "describe", None)
        out.append(f"<tr><td>{_e(p.module or '?')}</td><td>{_link(p.student_a, links)}</td>"
                   f"<td>{_link(p.student_b, links)}</td>"
                   f'<td class="num">{_share(a_in_b, p.similarity)}</td>'
                   f'<td class="num">{_share(b_in_a, p.similarity)}</td>'
                   f"<td>{_e(kind)}</td><td>{_e(describe() if describe else '')}</td></tr>")
    out.append("</table></div></section>")
    return "\n".join(out)


def _share(value: float | None, fallback: float) -> str:
    return f"{(fallback if value is None else value) * 100:.0f}%"


def _notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return f'<section id="run-notes" class="notes"><h2>Notes from this run</h2><ul>{items}</ul></section>'


def minimal_report(notes: Sequence[str], *, warning: str | None = None) -> str:
    """A bare report.html for when the full one could not be rendered: the notes, the links."""
    warn = f'<p id="sandbox-warning"><b>WARNING: {_e(warning)}</b></p>' if warning else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Class report</title><style>{_CSS}</style></head><body>\n"
            f"<h1>Class report</h1>{warn}{_notes(notes)}"
            '<p><a href="grades.csv">grades.csv</a> &middot; <a href="grades.json">grades.json</a></p>'
            "\n</body></html>\n")


def _students(rows: Sequence[GradeRow], links: dict[str, str]) -> str:
    modules = sorted({module_label(r) for r in rows}, key=lambda m: (m == "unknown", m))
    by_student: dict[str, dict[str, GradeRow]] = {}
    for r in sort_rows(rows):
        by_student.setdefault(r.student, {})[module_label(r)] = r
    head = "".join(f"<th>{_e(m)}</th>" for m in modules)
    out = ['<section id="students"><h2>Students</h2>',
           f'<div class="table-wrap"><table><tr><th>student</th><th>name</th>{head}<th>total</th>'
           "<th>flags</th><th>late</th></tr>"]
    for student, mods in by_student.items():
        name = next((r.name for r in mods.values() if r.name), "")
        cells = []
        for m in modules:
            r = mods.get(m)
            if r is None:
                cells.append('<td class="num muted">-</td>')
            else:
                cls = ' bad' if r.error else ''
                mark = ' <span class="bad" title="saw the test set">&#9873;</span>' \
                    if _flags(r) else ''
                cells.append(f'<td class="num{cls}">{r.score:g}&nbsp;/&nbsp;{r.max_score:g}{mark}</td>')
        total = sum(r.score for r in mods.values())
        flags = sorted({f"{r.module}: {f}" for r in mods.values() for f in _flags(r)})
        late = "; ".join(f"{r.module}: {late_sentence(r.late)}" for r in mods.values() if r.late)
        out.append(f"<tr><td>{_link(student, links)}</td><td>{_e(name)}</td>{''.join(cells)}"
                   f'<td class="num">{total:g}</td>'
                   f'<td class="bad">{_e(", ".join(flags))}</td><td class="late">{_e(late)}</td></tr>')
    out.append("</table></div></section>")
    return "\n".join(out)


_INTAKE_HEADS = {"unknown": "Files of users not on the roster (not graded)",
                 "missing": "Roster students without a submission",
                 "older": "Older submissions superseded by a resubmission (the latest counts)",
                 "refused": "Files or roster rows refused"}


def _intake(intake: dict | None) -> str:
    """Issue 23: what the Canvas download intake could not place, one list each."""
    if not intake or not any(intake.get(k) for k in _INTAKE_HEADS):
        return ""
    out = ['<section id="canvas-intake"><h2>Canvas download</h2>']
    for kind, head in _INTAKE_HEADS.items():
        lines = intake.get(kind) or []
        if lines:
            items = "".join(f"<li>{_e(line)}</li>" for line in lines)
            out.append(f'<h3>{_e(head)}: {len(lines)}</h3><ul id="intake-{kind}">{items}</ul>')
    out.append("</section>")
    return "\n".join(out)


def render_report(rows: Sequence[GradeRow], *, feedback_links: dict[str, str] | None = None,
                  similar: Sequence = (), threshold: float = 0.8,
                  generated: datetime | None = None, warning: str | None = None,
                  notes: Sequence[str] = (), intake: dict | None = None,
                  descriptions: dict | None = None) -> str:
    """The report's HTML text (see the module docstring); ``warning`` is shown first, then
    ``notes`` (steps of the run that failed, e.g. the similarity check)."""
    links = feedback_links or {}
    rows = sort_rows(rows)
    when = (generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    students = {r.student for r in rows}
    failed = sum(r.error is not None for r in rows)
    median = statistics.median([_pct(r) for r in rows]) if rows else 0.0
    by_module: dict[str, list[GradeRow]] = {}
    for r in rows:
        by_module.setdefault(module_label(r), []).append(r)
    cards = [(len(rows), "submissions"), (len(students), "students"),
             (f"{median:.0f}%", "median score"), (failed, "could not be graded"),
             (sum(bool(_flags(r)) for r in rows), "saw the test set"),
             (len(similar), "similar pairs")]
    body = [f"<h1>Class report</h1><p class=\"muted\">Generated {when}.</p>",
            *([f'<p class="warning" id="sandbox-warning" style="background:#fde2e1;'
               f'border:2px solid #b42318;padding:.8em;font-weight:bold">'
               f'WARNING: {_e(warning)}</p>'] if warning else []),
            *([_notes(notes)] if notes else []),
            '<div class="cards">' + "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>'
                                            for v, k in cards) + "</div>",
            '<p><a href="grades.csv">grades.csv</a> &middot; <a href="grades.json">grades.json</a>'
            ' &middot; <a href="similarity.json">similarity.json</a></p>',
            _intake(intake)]
    if not rows:
        body.append("<p>No submissions have been graded yet.</p>")
    for module in sorted(by_module, key=lambda m: (m == "unknown", m)):
        body.append(_module_section(module, by_module[module], links, descriptions))
    if rows:
        body.append(_problems(rows, links))
        body.append(_flagged(rows, links))
    body.append(_similarity(similar, links, threshold))
    if rows:
        body.append(report_section(rows))
        body.append(_students(rows, links))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Class report</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(rows: Sequence[GradeRow], out: Path, *, feedback_links: dict[str, str] | None = None,
                 similar: Sequence = (), threshold: float = 0.8, warning: str | None = None,
                 notes: Sequence[str] = (), intake: dict | None = None,
                 descriptions: dict | None = None) -> Path:
    """Write ``out/report.html`` atomically and return its path."""
    path = Path(out) / "report.html"
    atomic_write_text(path, render_report(rows, feedback_links=feedback_links, similar=similar,
                                          threshold=threshold, warning=warning, notes=notes,
                                          intake=intake, descriptions=descriptions))
    return path


# ----------------------------------------------------------------------------------------
# Written answers (moved from grader.classroom.manual: the report must not import the
# classroom stage above it)
# ----------------------------------------------------------------------------------------


def _points(value: float) -> str:
    return f"{value:g}"


def report_section(rows: Sequence[GradeRow]) -> str:
    """The report's "Written answers" section: per question, the mean of the graded points
    and how many answers are still ungraded ("" when no row has a written question)."""
    stats: dict[tuple[str, str], list[ManualResult]] = {}
    for row in rows:
        for check in row.checks:
            if isinstance(check, ManualResult):
                stats.setdefault((row.module or "?", check.id), []).append(check)
    if not stats:
        return ""
    e = html.escape
    waiting = sum(not c.graded for checks in stats.values() for c in checks)
    todo = (f"<p>{waiting} answer(s) still ungraded. Grade them with <code>python -m grader"
            " manual export DIR</code>, then <code>manual import</code>.</p>" if waiting else
            "<p>Every written answer is graded.</p>")
    out = ['<section id="written"><h2>Written answers (graded by hand)</h2>', todo,
           "<table><tr><th>module</th><th>question</th><th>mean of graded</th>"
           "<th>graded</th><th>ungraded</th></tr>"]
    for (module, question), checks in sorted(stats.items()):
        graded = [c.points for c in checks if c.graded]
        mean = (f"{statistics.fmean(graded):.2f} / {_points(checks[0].max_points)}"
                if graded else "-")
        out.append(f"<tr><td>{e(module)}</td><td><code>{e(question)}</code></td>"
                   f'<td class="num">{mean}</td><td class="num">{len(graded)}</td>'
                   f'<td class="num">{len(checks) - len(graded)}</td></tr>')
    out.append("</table></section>")
    return "\n".join(out)
