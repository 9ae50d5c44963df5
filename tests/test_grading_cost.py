"""What grading costs around the notebook: the batch's scheduling and start-up.

* A local batch holds ``jobs`` kernel slots; a submission gives its slot up the moment its
  kernel is gone, so the next kernel runs while it is scored. The scheduler is tested with
  stand-in workers that only sleep (what is scheduled, not what grading does); real grading
  through this scheduler is what every batch test does (``test_batch_adversarial`` with two
  jobs, the CLI tests with one).
* The grader's own processes skip jsonschema's optional IRI grammar (about 1 s each); a
  student's kernel, which imports ``grader`` for its self-checks, is left alone.
* ``batch.json`` keeps the phases of the last ``grade`` (read by bench/grading_overhead.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from grader.checks.results import GradeRow
from grader.classroom import workers
from grader.classroom.resume import Task
from grader.submission.options import GradingOptions


class _Clock:
    def __init__(self) -> None:
        self.events: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()

    def log(self, kind: str, key: str) -> None:
        with self.lock:
            self.events.append((time.monotonic(), kind, key))

    def intervals(self, start: str, end: str) -> dict[str, tuple[float, float]]:
        first = {key: t for t, kind, key in self.events if kind == start}
        return {key: (first[key], t) for t, kind, key in self.events if kind == end}


def _stand_ins(monkeypatch, clock: _Clock, *, kernel_s: float, score_s: float, pools: list):
    class Worker:
        started = 0

        def __init__(self) -> None:
            Worker.started += 1

        def grade(self, task, options, *, timeout_s, scorer=None, on_kernel_done):
            clock.log("kernel", task.key)
            time.sleep(kernel_s)
            clock.log("kernel_done", task.key)
            on_kernel_done()
            time.sleep(score_s)  # scored while the next kernel may run
            clock.log("scored", task.key)
            return GradeRow(student=task.student, module=task.module, score=1.0,
                            max_score=1.0, error=None)

        def close(self) -> None:
            pass

    class Pool:
        def __init__(self, size: int, **options) -> None:
            pools.append(size)

        @contextmanager
        def lease(self):
            yield None

        def close(self) -> None:
            pass

    from grader.scoring import scoring_server

    monkeypatch.setattr(workers, "WorkerProcess", Worker)
    monkeypatch.setattr(scoring_server, "ScorerPool", Pool)
    return Worker


def _tasks(count: int) -> list[Task]:
    return [Task(path=Path(f"s{i}.ipynb"), student=f"s{i}", module="01", key=f"s{i}-01",
                 fingerprint="f") for i in range(count)]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_kernel_slot_is_given_up_when_the_kernel_is_gone_never_before(monkeypatch, jobs):
    clock, pools = _Clock(), []
    worker = _stand_ins(monkeypatch, clock, kernel_s=0.3, score_s=0.4, pools=pools)
    rows: dict[str, float] = {}
    executor = workers.LocalExecutor(jobs)
    executor.start(5)
    options = GradingOptions.resolve(fast=True, sandbox="none", data_dir="/nowhere")
    executor.run(_tasks(5), options, lambda task, row: rows.setdefault(task.key, time.monotonic()))
    assert sorted(rows) == [f"s{i}-01" for i in range(5)]  # one row each
    kernels = sorted(clock.intervals("kernel", "kernel_done").values())
    # never more than `jobs` kernels at once
    for start, _ in kernels:
        assert sum(1 for s, e in kernels if s <= start < e) <= jobs
    # and a kernel started while an earlier submission was still being scored
    scored = clock.intervals("kernel_done", "scored").values()
    assert any(done <= start < end for start, _ in kernels for done, end in scored)
    # one more submission in flight than kernel slots, so one more scoring process
    assert pools == [jobs + 1]
    assert worker.started == 5  # one fresh worker process per submission


def test_one_submission_gets_one_worker_and_one_scoring_process(monkeypatch):
    clock, pools = _Clock(), []
    worker = _stand_ins(monkeypatch, clock, kernel_s=0.05, score_s=0.05, pools=pools)
    executor = workers.LocalExecutor(2)
    executor.start(1)
    options = GradingOptions.resolve(fast=True, sandbox="none", data_dir="/nowhere")
    executor.run(_tasks(1), options, lambda task, row: None)
    assert pools == [1] and worker.started == 1


def test_workers_started_for_a_batch_that_then_fails_are_stopped():
    """The data copy can fail after the workers started (a missing dataset): none is left."""
    executor = workers.LocalExecutor(2)
    executor.start(3)
    procs = [w.proc for w in executor._idle]  # noqa: SLF001 - the processes under test
    assert len(procs) == 2 and all(p.is_alive() for p in procs)
    executor.close()
    assert not any(p.is_alive() for p in procs)
    assert all(p.exitcode == 0 for p in procs)  # they ended on their own, unused


def _imported(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps("
                          "{m: sys.modules.get(m) is not None for m in ('rfc3987_syntax',"
                          " 'nbformat')}))"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_grader_processes_skip_the_iri_grammar_but_a_kernel_keeps_it():
    from importlib import metadata

    try:  # not importorskip: this process imported grader, which blocks the import here
        metadata.distribution("rfc3987-syntax")
    except metadata.PackageNotFoundError:
        pytest.skip("rfc3987-syntax is not installed: nothing to skip")
    assert _imported("import grader, nbformat") == {"rfc3987_syntax": False, "nbformat": True}
    # a kernel (ipykernel imported first) importing grader for its self-checks
    assert _imported("import ipykernel, grader, nbformat") == {"rfc3987_syntax": True,
                                                              "nbformat": True}
