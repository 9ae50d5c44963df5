"""Load and score a submission's artifacts in a child process with its own limits.

Loading a student's model is the riskiest thing the grader does itself: the archive is
vetted from its configuration first (:mod:`grader.scoring.vetting`), and then loaded and scored in a
fresh child process whose memory (resident set of its whole process tree) and time are
limited. A model that still blows up kills only that child; the row says why and every
check it would have scored gets 0.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.base.processes import kill_tree, over_limits, thread_environment
from grader.checks.kinds import Context
from grader.checks.results import CheckResult
from grader.checks.rubric import Rubric


@dataclass(frozen=True)
class ScoreLimits:
    """Limits of the scoring child: seconds and megabytes (resident, whole process tree)."""

    timeout_s: float = 600.0
    memory_mb: int = 4000
    poll_s: float = 0.2


def model_bounds(rubric: Rubric):
    """Bounds for the models of ``rubric``: 20 times its largest expected parameter count or
    design budget, and never less than :class:`grader.scoring.vetting.ModelBounds`' default."""
    from grader.scoring.vetting import ModelBounds

    default = ModelBounds()
    expected = [int(c.expected) for c in rubric.checks
                if c.kind == "param_count" and isinstance(getattr(c, "expected", None), int)]
    expected += [int(c.max_params) for c in rubric.checks if c.kind == "design"]
    return ModelBounds(max_params=max([default.max_params, *(20 * e for e in expected)]),
                       max_units=default.max_units, max_layers=default.max_layers)


def reference_modules() -> list[str]:
    """Modules outside the grader that registered references (the child imports them too)."""
    from grader.checks.references import REFERENCES, FunctionCase

    found = set()
    for ref in REFERENCES.values():
        func = ref.reference if isinstance(ref, FunctionCase) else ref
        module = getattr(func, "__module__", None)
        if module and not module.startswith("grader"):
            found.add(module)
    return sorted(found)


def _set_up(modules: list[str], threads: int | None) -> None:
    """Quiet TensorFlow, cap the thread pools, import the modules registering references."""
    import importlib

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if threads:
        os.environ.update(thread_environment(threads))
    for module in modules:
        importlib.import_module(module)


def score_in_child(rubric: Rubric, artifacts: str, inputs: dict, ctx: Context,
           problems: dict[str, str], unfinished: dict[str, str], modules: list[str],
           threads: int | None) -> tuple:
    """The child's work: import reference modules, load the artifacts, run the checks."""
    try:
        _set_up(modules, threads)  # before anything imports TensorFlow
        from grader.scoring.export import load_artifacts
        from grader.scoring.score import score_checks

        objects, found = load_artifacts(rubric, Path(artifacts), inputs, model_bounds(rubric))
        found.update(problems)
        results, notes = score_checks(rubric, objects, found, ctx, unfinished=unfinished)
        return "ok", [r.to_dict() for r in results], notes
    except BaseException:  # noqa: BLE001 - a grader bug: reported, never raised in the batch
        return "error", traceback.format_exc(limit=6), []


def run_ahead_in_child(ctx: Context, references: list[str], modules: list[str],
                       threads: int | None, objects: dict | None = None) -> tuple:
    """A warm process's work while a kernel runs: the re-runs planned for ``references``
    (:func:`grader.checks.speculation.run_ahead`; with ``objects``, the early export's
    values, the plans that need them), kept for the submission's score request."""
    try:
        _set_up(modules, threads)
        import grader.checks.references  # noqa: F401 - the lessons register their plans
        from grader.checks.speculation import run_ahead

        return "ok", run_ahead(ctx, references, objects)
    except BaseException:  # noqa: BLE001 - the score request computes what is missing
        return "error", traceback.format_exc(limit=6)


def main() -> None:
    """Child entry point: sys.path as one JSON line, then the pickled arguments, on stdin;
    the pickled result goes to the file descriptor named in argv (a pipe only the parent
    holds). Both ends are the grader's own: nothing here is read from the kernel's folders."""
    import json
    import pickle

    sys.path[:] = json.loads(sys.stdin.buffer.readline())
    args = pickle.loads(sys.stdin.buffer.read())
    result = score_in_child(*args)
    with os.fdopen(int(sys.argv[1]), "wb") as out:
        pickle.dump(result, out)


def score_arguments(rubric: Rubric, artifacts: Path, inputs: dict[str, Any], ctx: Context, *,
                    problems: dict[str, str], unfinished: dict[str, str],
                    threads: int | None) -> tuple:
    """The arguments of :func:`score_in_child`, as a scoring process receives them."""
    return (rubric, str(artifacts), inputs, ctx, problems, unfinished, reference_modules(),
            threads)


def finish(rubric: Rubric, result: tuple | None,
           failure: str | None) -> tuple[list[CheckResult], list[str]]:
    """Checks and notes from a scoring process's answer, or zeros saying why it failed."""
    extra: list[str] = []
    if failure is None:
        if result is None:
            failure = "the grader's scoring process died"
        elif result[0] != "ok":
            failure = "the grader failed while scoring (internal error; details in the notes)"
            extra = [str(result[1])]
    if failure is not None:
        message = (f"not scored: {failure}. Fix: build the models the exercises ask for with"
                   " built-in Keras layers of the sizes asked for")
        checks = [CheckResult(c.id, 0.0, c.points, False, message) for c in rubric.checks]
        return checks, [f"scoring stopped: {failure}", *extra]
    _, rows, notes = result
    return [CheckResult(**c) for c in rows], list(notes)


def limit_failure(pid: int, *, memory_mb: int, timeout_s: float, deadline: float) -> str | None:
    """What the scoring process ``pid`` broke (memory, then time), said to the student; None
    when it is within both limits (one look of the watch loops here and in
    :mod:`grader.scoring.scoring_server`)."""
    broken = over_limits(pid, memory_mb=memory_mb, deadline=deadline)
    if broken is None:
        return None
    kind, rss = broken
    if kind == "memory":
        return (f"loading and scoring your exported objects used {rss:,.0f} MB, more"
                f" than the grader's {memory_mb:,} MB limit")
    return f"loading and scoring your exported objects took longer than {timeout_s:g} s"


def _kill(proc) -> None:
    kill_tree(proc.pid)
    proc.wait(10)


def score_isolated(rubric: Rubric, artifacts: Path, inputs: dict[str, Any], ctx: Context, *,
                   problems: dict[str, str], unfinished: dict[str, str],
                   limits: ScoreLimits = ScoreLimits(), threads: int | None = None,
                   log: Path | None = None) -> tuple[list[CheckResult], list[str]]:
    """Score ``rubric`` on the artifacts in ``artifacts`` in a child process.

    The child is a plain subprocess (not ``multiprocessing``), so this also works inside
    daemonic processes such as Dask workers; its own output (TensorFlow's log lines) is
    appended to ``log`` when given. Returns the checks and notes of
    :func:`grader.scoring.score.score_checks`; when the child breaks its limits or dies, every check
    scores 0 with a message saying why, and a note.
    """
    import json
    import pickle
    import subprocess

    payload = pickle.dumps(score_arguments(rubric, artifacts, inputs, ctx, problems=problems,
                                           unfinished=unfinished, threads=threads))
    read_fd, write_fd = os.pipe()
    output = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen([sys.executable, "-m", "grader.scoring.score_process", str(write_fd)],
                                stdin=subprocess.PIPE, pass_fds=(write_fd,), close_fds=True,
                                stdout=output, stderr=output)
    finally:
        os.close(write_fd)
        if output is not None:
            output.close()
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(_read_all(read_fd)), daemon=True)
    reader.start()
    failure = None
    try:
        proc.stdin.write(json.dumps(sys.path).encode() + b"\n" + payload)
        proc.stdin.close()
    except OSError:
        pass  # the child died at once: reported below
    deadline = time.monotonic() + limits.timeout_s
    while proc.poll() is None:
        failure = limit_failure(proc.pid, memory_mb=limits.memory_mb, timeout_s=limits.timeout_s,
                                deadline=deadline)
        if failure:
            _kill(proc)
            break
        time.sleep(limits.poll_s)
    reader.join(30)
    result = None
    if failure is None:
        try:
            result = pickle.loads(box[0]) if box and box[0] else None
        except Exception:  # noqa: BLE001 - a truncated result: the child died writing it
            result = None
        if result is None:
            failure = f"the grader's scoring process died (exit code {proc.returncode})"
    return finish(rubric, result, failure)


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


if __name__ == "__main__":
    main()
