"""The ``grade`` command's intake: a Canvas download staged, and the late-work record written.

``grade --roster`` stages the "Download Submissions" zip (:mod:`grader.lms.canvas_zip`);
every ``canvas-pull.json`` of the folders to grade (:mod:`grader.lms.canvas_late`) and the
course file give ``OUT/late.json`` and ``OUT/course-settings.json`` before any kernel starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from grader.base.errors import GraderError

if TYPE_CHECKING:
    from grader.checks.rubric import Rubric
    from grader.lms.canvas_zip import Intake


def grade_intake(course_file: Path | None, out: Path, submissions: list, roster: Path | None,
                 rubric: Rubric | None) -> tuple[list, Intake | None]:
    """The folders to grade (a Canvas download staged when ``roster`` is given) and the
    intake; writes ``OUT/late.json`` from every ``canvas-pull.json`` and the course file."""
    from grader.base.course import load_course
    from grader.classroom.late import save_record
    from grader.lms import course_record
    from grader.lms.canvas_late import pulled_times, record_from_pulls

    course = load_course(course_file)
    if out.exists() and not out.is_dir():
        raise GraderError(f"--out {str(out)!r} is a file; expected a folder (it is created"
                          " if missing). Fix: choose another --out.")
    course = course_record.settings_for(out, course, "grade")
    submissions, intake = list(submissions), None
    if roster is not None:
        from grader.lms.canvas_zip import stage_download
        from grader.submission.validate import course_release_stems, module_from_name

        if len(submissions) != 1:
            raise GraderError("--roster reads one Canvas download: pass one zip or folder"
                              f" (got {len(submissions)} paths)")
        stems = course_release_stems()
        if rubric is not None:
            stems[Path(rubric.notebook).stem] = rubric.module
        intake = stage_download(Path(submissions[0]), roster, out, course=course,
                                module_of=lambda name: module_from_name(Path(name), stems))
        submissions = [intake.folder]
    pulls = [p for s in submissions if Path(s).is_dir() and (p := pulled_times(Path(s)))]
    record = record_from_pulls(course, pulls, intake.lists() if intake else None)
    out.mkdir(parents=True, exist_ok=True)
    course_record.save(out, course)
    save_record(out, record)
    return submissions, intake


def print_intake(intake: Intake | None) -> None:
    """What the intake left out, printed for the instructor (nothing without an intake)."""
    if intake is None:
        return
    heads = {"unknown": "file(s) of users not on the roster (not graded)",
             "missing": "roster student(s) without a submission",
             "older": "older submission(s) superseded by a resubmission (the latest counts)",
             "refused": "file(s) or roster row(s) refused"}
    for kind, lines in intake.lists().items():
        if lines:
            print(f"{len(lines)} {heads[kind]}:")
            for line in lines:
                print(f"  {line}")
