"""Command line: ``python -m grader {release,normalize,grade,digest,manual,export,canvas,gradescope} ...``.

Commands that read the course file take ``--course FILE`` (default ``./course.toml``).

Exit codes: 0 success (for ``grade``: grading ran, whatever the scores), 1 ``release
--check`` found differences, 2 usage or configuration error (bad rubric, missing file),
130 ``grade`` interrupted with Ctrl-C (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from grader.base.errors import GraderError
from grader.base.paths import MODULES

if TYPE_CHECKING:
    from grader.base.course import Course
    from grader.lms.canvas_api import CanvasClient


def _student_edition(args: argparse.Namespace) -> int:
    from grader.base.course import load_course

    course = load_course(args.course)  # first: a bad course file fails before any slow import
    from grader.authoring.edition import parse_repository, write_edition

    if args.repo_url is not None:
        repo = parse_repository(args.repo_url, "--repo-url")
    else:
        repo = parse_repository(course.student_repo, f"{course.path}: course.student_repo")
    changed = write_edition(args.student_edition, repo, course.name)
    print(f"student edition in {args.student_edition} for {repo.url}: {len(changed)} file(s)"
          " written or removed. Commit the folder to that repository and push")
    return 0


def _hand_out_discussions(args: argparse.Namespace) -> int:
    if args.check or args.student_edition is not None or args.repo_url is not None:
        raise GraderError("--discussions MODULE DIR goes alone: it writes the discussions of one"
                          " module for students, after the deadline")
    from grader.authoring.release import write_discussions

    module, folder = args.discussions
    path = write_discussions(module, Path(folder))
    print(f"wrote {path}: hand it to the students once the deadline of module {module} has"
          " passed")
    return 0


def _release(args: argparse.Namespace) -> int:
    if args.discussions is not None:
        return _hand_out_discussions(args)
    if args.student_edition is not None:
        if args.check:
            raise GraderError("--check and --student-edition go separately: --check compares"
                              " notebooks/ with solutions/")
        return _student_edition(args)
    if args.repo_url is not None:
        raise GraderError("--repo-url needs --student-edition DIR (it is the edition's badge"
                          " and install address)")
    from grader.authoring.release import check_release, release

    if args.check:
        problems = check_release()
        if problems:
            print("notebooks/ is out of date with solutions/:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            print("Fix: run `python -m grader release` and commit notebooks/.", file=sys.stderr)
            return 1
        print("notebooks/ matches solutions/")
        return 0
    for path in release():
        print(f"wrote {path}")
    return 0


def _normalize(args: argparse.Namespace) -> int:
    from grader.authoring.release import normalize_file

    for path in args.notebooks:
        normalize_file(Path(path))
        print(f"normalized {path}")
    return 0


def _digest(args: argparse.Namespace) -> int:
    import ast

    from grader.checks.answers import NotAnAnswer, digest, position_digests

    try:
        value = ast.literal_eval(args.value)
    except (ValueError, SyntaxError):
        value = args.value  # not a Python literal: the text itself is the answer
    try:
        if args.per_position:
            if not isinstance(value, (list, tuple)):
                raise GraderError(f"--per-position needs a list, got {args.value!r}")
            digests = position_digests(args.check_id, value)
            print("answer_sha256 = [\n" + "".join(f'  "{d}",\n' for d in digests) + "]")
        else:
            print(f'answer_sha256 = "{digest(args.check_id, value)}"')
    except NotAnAnswer as exc:
        raise GraderError(f"{args.value!r} cannot be an answer: {exc}") from exc
    return 0


def _custom_module(args: argparse.Namespace) -> dict:
    """``rubric``/``solution``/``imports`` for grade_class from --rubric/--solution/--import."""
    if (args.rubric is None) != (args.solution is None):
        raise GraderError("--rubric and --solution go together: a custom module needs both its"
                          " rubric (TOML) and its solution notebook. Fix: pass both, or neither"
                          " to grade the course's modules.")
    if args.rubric is None:
        return {"imports": tuple(args.imports)}
    import importlib

    from grader.authoring.release import read_notebook
    from grader.checks.rubric import parse_rubric

    for name in args.imports:  # they register references the rubric names
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise GraderError(f"--import {name}: {exc}. Fix: put the module on PYTHONPATH") from exc
    if not args.solution.is_file():
        raise GraderError(f"--solution {str(args.solution)!r} is not a file; expected the"
                          " module's solution notebook (.ipynb)")
    return {"rubric": parse_rubric(args.rubric), "solution": read_notebook(args.solution),
            "imports": tuple(args.imports)}


def _grade(args: argparse.Namespace) -> int:
    custom = _custom_module(args)
    from grader.lms.intake import grade_intake, print_intake

    submissions, intake = grade_intake(args.course, args.out, args.submissions, args.roster,
                                       custom.get("rubric"))
    if args.fast and args.scheduler is None:  # a machine's first fast batch writes the shared
        from grader.data.kernel_cache import prepare_fast_copy  # data copy meanwhile

        prepare_fast_copy(os.environ.get("DLCOURSE_DATA_DIR"))  # grade_class joins it
    from grader.classroom.batch import grade_class
    from grader.kernel.limits import mode_limits

    limits = mode_limits(fast=args.fast, memory_mb=args.memory_mb, cell_timeout_s=args.cell_timeout)
    try:
        summary = grade_class(submissions=submissions, out=args.out, jobs=args.jobs,
                              fast=args.fast, seed=args.seed, force=args.force,
                              scheduler=args.scheduler, sandbox=args.sandbox, limits=limits,
                              ids=args.ids, **custom)
    except KeyboardInterrupt:
        print(f"interrupted: every result graded so far is saved in {args.out / 'results'};"
              " run the same command again to grade the rest", file=sys.stderr)
        return 130
    print(summary_line(summary))
    if summary.problems:
        print(f"{len(summary.problems)} student(s) not graded because their submissions could"
              " not be told apart or told whose (error rows in grades.csv and the report):")
        for problem in summary.problems:
            print(f"  {problem}")
    print_intake(intake)
    return 0


def summary_line(summary) -> str:
    """The console's last line: what this run did, in words that cannot contradict each other.

    "graded" counts the submissions this run handled; of those, "scored" ones were executed
    and scored, the others got a row with 0 points and the reason (not a notebook, kernel died).
    """
    scored = summary.graded - summary.errors
    head = f"graded {summary.graded} submission(s), {summary.skipped} already up to date"
    if summary.graded:
        head += f" ({scored} scored"
        head += (f", {summary.errors} given 0 points because they could not be run or scored:"
                 " the reason is in their row and in the report)" if summary.errors else ")")
    return (f"{head}; {len(summary.rows)} row(s) in {summary.out / 'grades.csv'};"
            f" class report: {summary.out / 'report.html'} ({summary.wall_s:.0f} s)")


def _manual(args: argparse.Namespace) -> int:
    from grader.classroom.manual import SCORES_NAME, export_manual
    from grader.classroom.manual_import import import_scores

    if args.action == "export":
        folder = export_manual(args.dir)
        print(f"wrote {folder / SCORES_NAME} and one page per question; start at"
              f" {folder / 'index.html'}")
        return 0
    if args.scores is None:
        raise GraderError("manual import needs the scores file: python -m grader manual import"
                          " DIR SCORES.csv")
    summary = import_scores(args.dir, args.scores)
    print(f"imported {summary.imported} mark(s) into {args.dir}; {summary.ungraded} written"
          " answer(s) still ungraded")
    return 0


def _export(args: argparse.Namespace) -> int:
    from grader.base.course import load_course
    from grader.lms.course_record import settings_for
    from grader.lms.gradebook_csv import export_canvas

    course = settings_for(args.dir, load_course(args.course), "export --canvas")
    result = export_canvas(args.canvas, args.dir, match=args.match_column, course=course,
                           dest=args.output)
    print(f"wrote {result.path}: {result.matched} roster student(s) with a submission")
    if result.missing:
        print(f"{len(result.missing)} roster student(s) without a submission (left empty):")
        for name in result.missing:
            print(f"  {name}")
    if result.unknown:
        print(f"{len(result.unknown)} submission(s) without a roster row (left out):")
        for name in result.unknown:
            print(f"  {name}")
    if result.conflicts:
        print(f"{len(result.conflicts)} roster cell(s) left empty because several submissions"
              " or roster rows share one key:")
        for text in result.conflicts:
            print(f"  {text}")
    if result.ungradable:
        print(f"{len(result.ungradable)} submission(s) could not be graded (left empty):")
        for line in result.ungradable:
            print(f"  {line}")
    for line in result.scaling:
        print(f"note: {line}")
    if result.ungraded:
        print(f"note: {result.ungraded} written answer(s) are still ungraded and count 0;"
              " run `python -m grader manual export` first")
    return 0


def _canvas(args: argparse.Namespace) -> int:
    from grader.base.course import load_course
    from grader.lms.canvas_api import CanvasClient, token_from_env
    from grader.lms.canvas_pull import require_canvas

    if args.action == "pull" and (args.apply or args.force):
        raise GraderError("--apply and --force go with canvas push; canvas pull changes nothing"
                          " in Canvas")
    course = load_course(args.course)
    if args.action == "push":
        from grader.lms.course_record import settings_for

        course = settings_for(args.dir, course, "canvas push")
    require_canvas(course)
    client = CanvasClient(course.canvas.base_url, token_from_env())
    if args.action == "pull":
        from grader.lms.canvas_pull import pull

        summary = pull(course, args.dir, client, args.module)
        print(f"pulled {summary.saved} notebook(s) into {args.dir}"
              + (f" ({summary.unchanged} unchanged since the last pull, not downloaded again)"
                 if summary.unchanged else "")
              + f"; submission times in {summary.path}; {summary.no_submission} student(s)"
              " have not submitted")
        for line in summary.skipped:
            print(f"  skipped: {line}")
        return 0
    return _canvas_push(args, course, client)


def _canvas_push(args: argparse.Namespace, course: Course, client: CanvasClient) -> int:
    """``canvas push``: the plan printed, then (``--apply``) sent, each with its feedback page."""
    from grader.lms.canvas_push import apply_push, number, plan_push

    plan = plan_push(course, args.dir, client, args.module)
    words = {"send": "send", "same": "already in Canvas",
             "changed": "changed in Canvas since the last push: " + ("overwrite (--force)"
                                                                    if args.force else "kept")}
    todo = [i for i in plan.items if i.action == "send" or args.force and i.action == "changed"]
    for item in plan.items:
        page = ("" if not any(item is t for t in todo) else f"\tattach feedback/{item.page.name}" if item.page
                else "\tno feedback page")
        print(f"{item.key}\tmodule {item.module}\tCanvas now {number(item.now)}\tnew"
              f" {number(item.new)}\t{words[item.action]}{page}")
    for line in plan.unmatched:
        print(f"  not sent: {line}")
    for line in plan.notes:
        print(f"note: {line}")
    if plan.ungraded:
        print(f"note: {plan.ungraded} written answer(s) are still ungraded and count 0 in the"
              " grades above; run `python -m grader manual export` first")
    if not args.apply:
        for item in todo:
            if item.page is None:
                print(f"  no feedback page: {item.key} (module {item.module}): {item.page_note}")
        pages = sum(i.page is not None for i in todo)
        print(f"dry run: nothing sent; {len(todo)} grade(s) would be sent, {pages} with the"
              " feedback page attached. Run again with --apply")
        return 0
    result = apply_push(course, args.dir, client, plan, force=args.force)
    for line in result.failures:
        print(f"  failed: {line}")
    for line in result.unattached:
        print(f"  no feedback page attached: {line}")
    kept = sum(i.action == "changed" for i in plan.items) if not args.force else 0
    print(f"sent {result.sent} grade(s) with a comment each ({result.attached} with the feedback"
          f" page attached); logged in {args.dir / 'canvas-push.json'}"
          + (f"; {kept} changed in Canvas kept (--force overwrites)" if kept else "")
          + (f"; {len(result.failures)} failed" if result.failures else ""))
    return 0


def _gradescope(args: argparse.Namespace) -> int:
    import time

    from grader.lms.gradescope import build_autograder
    from grader.lms.gradescope_results import write_results

    started = getattr(args, "started", None)
    started = started if started is not None else time.time()
    if args.action == "results":
        document = write_results(settings=args.settings, grades=args.grades, out=args.out,
                                 error=args.error, execution_time=time.time() - started)
        print(f"wrote {args.out}: {document['score']:g} point(s)")
        return 0
    if args.action == "upload":
        return _gradescope_upload(args, started)
    settings = build_autograder(module=args.module, out=args.zip, full=args.full,
                                course=args.course, bundle_data=args.bundle_data)
    data = "bundled" if args.bundle_data else "downloaded by setup.sh"
    print(f"wrote {args.zip}: module {settings['module']} ({settings['mode']} mode),"
          f" {len(settings['points'])} automatic check(s), {len(settings['questions'])} written"
          f" question(s) to create as manual questions; datasets"
          f" {', '.join(settings['datasets'])} ({data})")
    return 0


def _gradescope_upload(args: argparse.Namespace, started: float) -> int:
    """Print the notebook to grade, or write results.json with the upload's problem."""
    import time

    import nbformat

    from grader.lms.gradescope_results import load_settings, upload_document, write_document
    from grader.lms.gradescope_upload import find_notebook

    settings = load_settings(args.settings)
    solution = nbformat.read(args.solution, as_version=4) if args.solution else None
    ids = {c.get("id") for c in solution.cells} - {None} if solution is not None else None
    path, problem = find_notebook(args.submission, settings, ids)
    if problem is not None:
        write_document(upload_document(settings, problem, execution_time=time.time() - started),
                       args.out)
        print(f"wrote {args.out}: the upload cannot be graded: {problem}", file=sys.stderr)
        return 0
    print(path)
    return 0


def _gradescope_parser(sub) -> None:
    gs = sub.add_parser("gradescope", help="build a Gradescope autograder zip for one module",
                        description="build MODULE OUT.zip: an autograder zip (setup.sh,"
                        " run_autograder) writing Gradescope's results.json. results: what"
                        " run_autograder calls to turn grades.json into results.json.")
    act = gs.add_subparsers(dest="action", required=True)
    build = act.add_parser("build", help="write the autograder zip of MODULE")
    build.add_argument("module", choices=MODULES, metavar="MODULE", help="01, 02, 03 or 04")
    build.add_argument("zip", type=Path, metavar="OUT.zip")
    build.add_argument("--full", action="store_true",
                       help="grade in full mode (default: fast mode, about a minute per upload)")
    build.add_argument("--bundle-data", action="store_true",
                       help="put the module's datasets from DLCOURSE_DATA_DIR into the zip"
                       " (default: setup.sh downloads them)")
    build.add_argument("--course", type=Path, default=None, metavar="FILE",
                       help="the course file ([gradescope] visibility; default ./course.toml)")
    res = act.add_parser("results", help="(run_autograder) write results.json from grades.json")
    res.add_argument("--settings", type=Path, required=True, help="source/settings.json of the zip")
    res.add_argument("--grades", type=Path, default=None, help="grades.json written by grade")
    res.add_argument("--out", type=Path, required=True, help="results.json to write")
    res.add_argument("--error", default=None, help="why the upload could not be graded")
    res.add_argument("--started", type=float, default=None, help="start time (Unix seconds)")
    up = act.add_parser("upload", help="(run_autograder) print the one notebook to grade, or"
                        " write results.json saying what is wrong with the upload")
    up.add_argument("--settings", type=Path, required=True, help="settings.json of the zip")
    up.add_argument("--submission", type=Path, required=True, help="the upload's folder")
    up.add_argument("--solution", type=Path, default=None, help="the module's solution notebook")
    up.add_argument("--out", type=Path, required=True, help="results.json to write on a problem")
    up.add_argument("--started", type=float, default=None, help="start time (Unix seconds)")
    gs.set_defaults(func=_gradescope)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _release_parser(sub) -> None:
    """``release``: notebooks/ from solutions/, or the student edition."""
    rel = sub.add_parser("release", help="regenerate notebooks/ from solutions/, or write the"
                         " student edition",
                         description="Regenerate notebooks/ from solutions/; with"
                         " --student-edition DIR, write a repository students may see instead.")
    rel.add_argument("--check", action="store_true",
                     help="exit 1 and name the cells when notebooks/ is out of date")
    rel.add_argument("--student-edition", type=Path, metavar="DIR",
                     help="write (or update) the student edition in DIR: lessons, helpers,"
                     " self-check, README, LICENSE, pyproject.toml; no answers")
    rel.add_argument("--repo-url", metavar="URL",
                     help="the edition's GitHub repository, for the Colab badges and install"
                     " cells (default: student_repo in course.toml)")
    rel.add_argument("--course", type=Path, default=None, metavar="FILE",
                     help="the course file (default ./course.toml; see examples/course.toml)")
    rel.add_argument("--discussions", nargs=2, metavar=("MODULE", "DIR"),
                     help="after the deadline: write the discussions of MODULE's written"
                     " questions (left out of notebooks/ and the edition) to"
                     " DIR/<notebook>_discussions.md")
    rel.set_defaults(func=_release)
    norm = sub.add_parser("normalize", help="fill in cell ids and nbgrader metadata (authors)")
    norm.add_argument("notebooks", nargs="+")
    norm.set_defaults(func=_normalize)


def _grade_parser(sub) -> None:
    """``grade``: a class of submitted notebooks."""
    grade = sub.add_parser("grade", help="grade a class of submitted notebooks",
                           description="Grade submitted notebooks into a gradebook, feedback"
                           " pages and a class report. Exit 0 whenever grading ran.")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                       help=".ipynb files or folders (searched recursively)")
    grade.add_argument("--out", required=True, type=Path,
                       help="output folder (grades.csv, grades.json, feedback/, report.html)")
    grade.add_argument("--jobs", type=_positive_int, default=1,
                       help="submissions graded at once on this machine (default 1)")
    grade.add_argument("--fast", action="store_true",
                       help="fast mode: small data, few epochs, fast-mode thresholds")
    grade.add_argument("--seed", type=int, default=None,
                       help="SEED injected into every notebook (default: the lesson's own SEED)")
    grade.add_argument("--force", action="store_true",
                       help="regrade submissions whose result is already up to date")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on a Dask cluster, e.g. tcp://host:8786")
    grade.add_argument("--sandbox", choices=("auto", "bwrap", "uid", "none"), default="auto",
                       help="where student kernels run: bwrap = a bubblewrap sandbox (no network,"
                       " no access to other files or processes), uid = as an unprivileged uid of"
                       " its own without bubblewrap (root only; it can read files readable by"
                       " all), none = as the grader's user; auto (default) = bwrap when it"
                       " works here, else uid when the grader is root, else none with a warning")
    grade.add_argument("--memory-mb", type=_positive_int, default=6000,
                       help="memory limit of each kernel's whole process tree in MB (default 6000)")
    grade.add_argument("--cell-timeout", type=_positive_int, default=None,
                       help="seconds one cell may run before it is interrupted (default 600 with"
                       " --fast, 2400 in full mode)")
    grade.add_argument("--ids", choices=("auto", "folder", "file"), default="auto",
                       help="where each student's name comes from: folder = the first folder"
                       " under SUBMISSION (SUBMISSION/<student>/...; nbgrader's"
                       " submitted/<student>/...), file = the file name (<student>_<release"
                       " name>.ipynb, for loose files such as an LMS download), auto (default)"
                       " = folder for files in folders, file for loose files at the top."
                       " Two files of one student and module are an error row, never both"
                       " graded")
    grade.add_argument("--rubric", type=Path, metavar="TOML",
                       help="grade against this rubric instead of the course's (with --solution)")
    grade.add_argument("--solution", type=Path, metavar="IPYNB",
                       help="the solution notebook of --rubric's module")
    grade.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                       help="import MODULE first (it registers references a custom rubric names);"
                       " repeatable")
    grade.add_argument("--roster", type=Path, metavar="ROSTER.csv",
                       help="read SUBMISSION as Canvas's Download Submissions zip (or its"
                       " unpacked folder): files are mapped to students by the Canvas user id"
                       " in their names and this roster's ID column (Grades > Export)")
    grade.add_argument("--course", type=Path, default=None, metavar="FILE",
                       help="the course file: deadlines, late policy, [canvas] student_key"
                       " (default ./course.toml)")
    grade.set_defaults(func=_grade)


def _manual_parsers(sub) -> None:
    """``digest`` (maintainers) and ``manual`` (written answers by hand)."""
    dig = sub.add_parser("digest", help="print the answer_sha256 of a by-hand answer (maintainers)",
                         description="Print the rubric line answer_sha256 = ... for CHECK_ID's"
                         " answer VALUE (a Python literal: 1234, 0.5, True, '[1, 2, 3]').")
    dig.add_argument("check_id", metavar="CHECK_ID", help='the rubric id, e.g. "03.rgb_input_dim"')
    dig.add_argument("value", metavar="VALUE", help="the answer, as a Python literal")
    dig.add_argument("--per-position", action="store_true",
                     help="one digest per entry of a list answer (messages can name wrong entries)")
    dig.set_defaults(func=_digest)
    man = sub.add_parser("manual", help="grade written answers by hand (export, then import)",
                         description="export DIR: write DIR/manual/scores.csv and one page per"
                         " written question; import DIR SCORES.csv: merge the points and"
                         " comments into the gradebook, the feedback pages and the report.")
    man.add_argument("action", choices=("export", "import"))
    man.add_argument("dir", type=Path, metavar="DIR", help="a folder written by grade --out")
    man.add_argument("scores", type=Path, nargs="?", metavar="SCORES.csv",
                     help="(import) the filled-in scores file")
    man.set_defaults(func=_manual)


def _canvas_parsers(sub) -> None:
    """``export --canvas`` (the roster's CSV) and ``canvas pull|push`` (REST API)."""
    exp = sub.add_parser("export", help="export the gradebook for an LMS (Canvas)",
                         description="Write DIR/canvas.csv for Canvas's gradebook import: the"
                         " roster's identity columns and each module's final score in the"
                         " roster's own assignment column (the one whose title ends in the"
                         " module's Canvas assignment id, from [canvas] assignments).")
    exp.add_argument("dir", type=Path, metavar="DIR", help="a folder written by grade --out")
    exp.add_argument("--canvas", type=Path, required=True, metavar="ROSTER.csv",
                     help="the CSV of Canvas's Grades > Export (the class roster)")
    exp.add_argument("--match-column", default=None,
                     help="roster column holding the grader's student ids (default: the one"
                     " [canvas] student_key names, SIS Login ID unless set)")
    exp.add_argument("--course", type=Path, default=None, metavar="FILE",
                     help="the course file (default ./course.toml; see examples/course.toml)")
    exp.add_argument("--output", type=Path, default=None,
                     help="where to write the CSV (default DIR/canvas.csv)")
    exp.set_defaults(func=_export)
    can = sub.add_parser("canvas", help="pull submissions from / push grades to Canvas (REST API)",
                         description="pull DIR: every module of [canvas] assignments into"
                         " DIR/<student key>/ with DIR/canvas-pull.json (submission times)."
                         " push DIR: the grades of a grade --out folder back to Canvas, a dry"
                         " run unless --apply. The token comes from CANVAS_TOKEN.")
    can.add_argument("action", choices=("pull", "push"))
    can.add_argument("dir", type=Path, metavar="DIR",
                     help="pull: where the notebooks go; push: a folder written by grade --out")
    can.add_argument("--apply", action="store_true", help="(push) send the grades; without it"
                     " only print what would change")
    can.add_argument("--force", action="store_true", help="(push) overwrite grades changed in"
                     " Canvas since the last push")
    can.add_argument("--course", type=Path, default=None, metavar="FILE",
                     help="the course file (default ./course.toml; see examples/course.toml)")
    can.add_argument("--module", action="append", default=None, metavar="MODULE",
                     help="only this module's assignment (repeat for several; default: all)")
    can.set_defaults(func=_canvas)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m grader",
        description="Release the course notebooks, grade a class of submitted notebooks, grade"
        " written answers by hand and export the grades. Run python -m grader COMMAND --help"
        " for one command.",
        epilog="Exit codes: 0 success (grade: grading ran, whatever the scores); 1 release"
        " --check found differences; 2 usage or configuration error; 130 grade interrupted"
        " (run the same command again to resume).")
    sub = parser.add_subparsers(dest="command", required=True)
    _release_parser(sub)
    _grade_parser(sub)
    _manual_parsers(sub)
    _canvas_parsers(sub)
    _gradescope_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
