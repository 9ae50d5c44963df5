"""Where grading runs: isolated worker processes on this machine, or a Dask cluster.

Locally, each submission is graded by :func:`grader.submission.grading.grade_submission` in a fresh
worker process (``spawn``) that starts its own kernel, so a crash, a loop or a memory hog
never touches another submission, and whatever goes wrong in a worker becomes that
submission's row. On Dask, the same function is submitted to the cluster. Both report
each result through a callback the moment it arrives, behind one interface
(:class:`Executor`: ``run(tasks, options, on_result)``).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Protocol

from grader.base.errors import GraderError
from grader.checks.results import GradeRow
from grader.classroom.resume import Task
from grader.submission.options import GradingOptions

SCORING_ALLOWANCE_S = 900.0
"""Seconds allowed on top of the notebook limits for kernel start-up, export and scoring
before the batch gives up on a worker (a grader hang, never a student's loop)."""


def error_row(task: Task, message: str, duration: float = 0.0) -> GradeRow:
    """A row for a submission the batch could not get a result for (never a student's fault);
    every check of the task's rubric (loaded once when the batch was planned) at zero."""
    from grader.checks.results import CheckResult

    row = GradeRow(student=task.student, module=task.module, score=0.0, max_score=0.0,
                   error=message, submission=str(task.path), duration_s=round(duration, 3))
    rubric = task.rubric
    if rubric is not None:
        row.max_score = rubric.max_score
        row.checks = [CheckResult(c.id, 0.0, c.points, False, "not graded: " + message)
                      for c in rubric.checks]
    return row


def _import_all(imports: Sequence[str]) -> None:
    import importlib

    for name in imports:
        importlib.import_module(name)


def grade_task(task: Task, options: GradingOptions, scorer=None,
               on_kernel_done: Callable[[], None] | None = None) -> GradeRow:
    """:func:`grader.submission.grading.grade_submission` of ``task`` with its rubric, after
    importing ``options.imports`` (modules registering a custom rubric's references; the
    course's own references register themselves)."""
    from grader.submission.grading import grade_submission

    _import_all(options.imports)
    return grade_submission(task, options, rubric=task.rubric, scorer=scorer,
                            on_kernel_done=on_kernel_done)


def grade_warm(task: Task, options: GradingOptions) -> GradeRow:
    """The Dask task body: :func:`grade_task` on this worker's machine (its sandbox checked,
    its data folder found: :meth:`GradingOptions.on_this_host`) with the calling thread's warm
    scoring process (Dask workers keep one per worker thread for their whole life)."""
    from grader.scoring.scoring_server import thread_scorer

    options = options.on_this_host()
    log = options.log_path
    handle = thread_scorer(options.threads, Path(log) if log else None)
    return grade_task(task, options, scorer=handle)


def _child(conn, parent: int) -> None:
    """Worker process body: import the grading code, wait for one submission, grade it and
    send the row back (``("kernel_done", None)`` first, the moment its kernel is gone)."""
    from grader.base.processes import exit_when_orphaned

    # the batch was killed: stop this grading and its kernel
    exit_when_orphaned(parent, code=3, kill_children=True)
    import grader.submission.grading  # noqa: F401 - paid while the batch prepares, not after
    try:
        task, options, scorer = conn.recv()
    except (EOFError, OSError):  # the batch ended before it needed this worker
        return
    try:
        row = grade_task(task, options, scorer=scorer,
                         on_kernel_done=lambda: conn.send(("kernel_done", None)))
        conn.send(("ok", row.to_dict()))
    except BaseException:  # noqa: BLE001 - a grader bug, reported as this submission's error
        conn.send(("error", traceback.format_exc(limit=6)))
    finally:
        conn.close()


class WorkerProcess:
    """A fresh ``spawn`` process that grades exactly one submission.

    It starts before its submission is known: its Python start-up and imports overlap the
    batch's own preparation (the kernels' data copy) or the previous submission's grading.
    One process per submission keeps what a crash, a loop or a memory hog does to one
    submission away from every other.
    """

    def __init__(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_child, args=(child, os.getpid()), name="grade-worker",
                                daemon=False)
        self.proc.start()
        child.close()

    def grade(self, task: Task, options: GradingOptions, *, timeout_s: float, scorer=None,
              on_kernel_done: Callable[[], None] = lambda: None) -> GradeRow:
        """Hand ``task`` to the process and wait for its row (at most ``timeout_s``);
        ``on_kernel_done`` is called once its kernel is gone (or it ends without one)."""
        from grader.base.processes import kill_tree

        start = time.perf_counter()
        try:
            self.conn.send((task, options, scorer))
            status, payload = self._answer(start + timeout_s, on_kernel_done)
        except TimeoutError:
            kill_tree(self.proc.pid, root=False)
            self.proc.kill()
            return error_row(task, f"grading did not finish within {timeout_s:.0f} s and was"
                              " stopped; the other submissions were not affected",
                              time.perf_counter() - start)
        except (EOFError, OSError):
            self.proc.join(10)
            return error_row(task, f"the grading process for this submission died (exit code"
                              f" {self.proc.exitcode}); the other submissions were not affected",
                              time.perf_counter() - start)
        finally:
            on_kernel_done()
            self.close()
        if status != "ok":
            row = error_row(task, "internal grader error; the traceback is in this row's"
                            " instructor notes", time.perf_counter() - start)
            row.instructor_notes.append(payload)
            return row
        return GradeRow.from_dict(payload)

    def _answer(self, deadline: float, on_kernel_done: Callable[[], None]) -> tuple[str, object]:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0 or not self.conn.poll(left):
                raise TimeoutError
            status, payload = self.conn.recv()
            if status != "kernel_done":
                return status, payload
            on_kernel_done()

    def close(self) -> None:
        """Close the pipe (an idle process then exits on its own) and reap the process."""
        self.conn.close()
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)


def grade_isolated(task: Task, options: GradingOptions, *, timeout_s: float, scorer=None,
                   worker: WorkerProcess | None = None,
                   on_kernel_done: Callable[[], None] = lambda: None) -> GradeRow:
    """Grade ``task`` in a worker process (``worker``, or a fresh one); whatever happens there
    becomes a row.

    A file that is not a notebook at all is graded here instead: no kernel is started for
    it, so a worker process would only add start-up time (``worker`` is then left unused).
    """
    if task.read_error is not None:
        return error_row(task, task.read_error)
    if not task.readable:
        return grade_task(task, options)
    worker = worker if worker is not None else WorkerProcess()
    return worker.grade(task, options, timeout_s=timeout_s, scorer=scorer,
                        on_kernel_done=on_kernel_done)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def kernel_threads(jobs: int, cores: int | None = None) -> int:
    """Threads per kernel so that ``jobs`` kernels share the cores without oversubscribing."""
    return max(1, (cores or usable_cores()) // jobs)


OnResult = Callable[[Task, GradeRow], None]


class Executor(Protocol):
    """Where a batch's submissions are graded: :class:`LocalExecutor` or :class:`DaskExecutor`."""

    def start(self, count: int) -> None:
        """Begin what does not need the batch's data yet, for ``count`` submissions (called
        before the data copy)."""

    def run(self, tasks: Sequence[Task], options: GradingOptions, on_result: OnResult) -> None:
        """Grade ``tasks`` with ``options``; call ``on_result`` with each row as it arrives."""

    def close(self) -> None:
        """Stop what :meth:`start` started when :meth:`run` will not be called."""


def local_timeout(limits) -> float:
    """Seconds the batch waits for one worker process before it stops it."""
    return (limits.kernel_start_timeout_s + limits.notebook_timeout_s + limits.export_timeout_s
            + 3 * limits.kill_grace_s + SCORING_ALLOWANCE_S)


class LocalExecutor:
    """``jobs`` kernels at once on this machine, each submission in its own worker process.

    A submission holds one of the ``jobs`` kernel slots only while its kernel runs: once its
    kernel is gone it is scored (in one of a pool of warm scoring processes) while the next
    submission's kernel already runs, so with more submissions than ``jobs`` one more
    submission is in flight than there are slots (and one more scoring process). Worker
    processes are started ahead of their submissions (:class:`WorkerProcess`).
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._idle: list[WorkerProcess] = []
        self._lock = threading.Lock()
        self._wanted = jobs  # workers still to be handed a submission

    def start(self, count: int) -> None:
        """Start the worker processes of the first ``jobs`` of ``count`` submissions (their
        imports overlap the batch's data copy)."""
        with self._lock:
            self._wanted = count
            while len(self._idle) < min(self.jobs, self._wanted):
                self._idle.append(WorkerProcess())

    def _take_worker(self) -> WorkerProcess:
        """An idle worker; a fresh one starts for the next submission when one will come."""
        with self._lock:
            worker = self._idle.pop() if self._idle else WorkerProcess()
            self._wanted -= 1
            if len(self._idle) < min(self.jobs, self._wanted):
                self._idle.append(WorkerProcess())
            return worker

    def close(self) -> None:
        """Stop the worker processes that were never handed a submission."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()

    def run(self, tasks: Sequence[Task], options: GradingOptions, on_result: OnResult) -> None:
        from grader.scoring.scoring_server import ScorerPool

        isolated = [t for t in tasks if t.read_error is None and t.readable]
        self._wanted = len(isolated)  # none has been handed a worker yet
        in_worker = {id(t) for t in isolated}
        if not tasks:
            self.close()
            return
        timeout = local_timeout(options.limits)
        log = options.log_path
        in_flight = min(len(tasks), self.jobs + (len(isolated) > self.jobs))
        scorers = ScorerPool(max(1, min(in_flight, len(isolated))), eager=self.jobs,
                             threads=options.threads, log=Path(log) if log else None,
                             preload=scoring_preload(tasks, options))
        kernels = threading.Semaphore(self.jobs)

        def grade(task: Task) -> GradeRow:
            if id(task) not in in_worker:
                return grade_isolated(task, options, timeout_s=timeout)
            kernels.acquire()
            released = threading.Event()

            def kernel_done() -> None:  # the slot goes to the next submission's kernel
                if not released.is_set():
                    released.set()
                    kernels.release()

            try:
                with scorers.lease() as handle:
                    return grade_isolated(task, options, timeout_s=timeout, scorer=handle,
                                          worker=self._take_worker(), on_kernel_done=kernel_done)
            finally:
                kernel_done()

        pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="grade")
        try:
            futures = {pool.submit(grade, t): t for t in tasks}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    row = future.result()
                except Exception as exc:  # noqa: BLE001 - never lose the batch to one submission
                    row = error_row(task, f"internal grader error: {type(exc).__name__}: {exc}")
                on_result(task, row)
        except BaseException:  # Ctrl-C: start nothing new; what is saved stays saved
            pool.shutdown(wait=False, cancel_futures=True)
            scorers.close()
            self.close()
            raise
        pool.shutdown(wait=True)
        scorers.close()
        self.close()


def scoring_preload(tasks: Sequence[Task], options: GradingOptions) -> dict | None:
    """What a warm scoring process loads before its first request: the batch's data folder,
    hold-out plan and the datasets the tasks' rubrics score on (None: nothing to load)."""
    plan = options.holdout
    if plan is None or options.data_dir is None:
        return None
    datasets = sorted({name for t in tasks if t.rubric is not None
                       for name in t.rubric.scoring_datasets})
    return {"mode": plan.mode, "seed": plan.seed, "source_dir": plan.source_dir,
            "kernel_dir": plan.kernel_dir, "data_dir": options.data_dir, "datasets": datasets}


def connect_dask(address: str):
    """A ``distributed.Client`` for ``address``, or a :class:`GraderError` saying what to fix."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise GraderError("--scheduler needs Dask distributed, which is not installed. Fix:"
                          " pip install 'dlcourse[dask]' (or drop --scheduler)") from exc
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise GraderError(f"cannot connect to the Dask scheduler at {address!r}: {exc}. Fix:"
                          " start one (`dask scheduler`, a dask-jobqueue or dask-kubernetes"
                          " cluster) and pass its address, e.g. tcp://host:8786") from exc


def dask_threads(client) -> int:
    """Kernel threads for a cluster: per host, its cores divided by the worker threads on it."""
    info = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) \
        else client.scheduler_info()["workers"]
    cores = client.run(usable_cores)
    per_host: dict[str, list[int]] = {}
    for address, worker in info.items():
        host = worker.get("host") or address.rsplit(":", 1)[0]
        entry = per_host.setdefault(host, [0, 0])
        entry[0] = max(entry[0], int(cores.get(address, 1)))
        entry[1] += int(worker.get("nthreads", 1))
    if not per_host:
        raise GraderError("the Dask cluster has no workers. Fix: start workers (`dask worker"
                          " tcp://host:8786`) or scale the cluster, then rerun.")
    return max(1, min(c // max(1, n) for c, n in per_host.values()))


def _takes_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


class DaskExecutor:
    """The submissions as tasks on a Dask cluster (``client``); workers keep their own logs
    and warm scoring processes."""

    def __init__(self, client) -> None:
        self.client = client

    def start(self, count: int) -> None:
        """Nothing to start here: Dask workers keep their own processes."""

    def close(self) -> None:
        """Nothing to stop here (the batch closes the client)."""

    def run(self, tasks: Sequence[Task], options: GradingOptions, on_result: OnResult) -> None:
        from distributed import as_completed as dask_completed

        futures = {}
        for task in tasks:
            if task.read_error is not None:
                on_result(task, error_row(task, task.read_error))
                continue
            future = self.client.submit(grade_warm, task, options, pure=False,
                                        key=f"grade-{task.key}-{task.fingerprint[:12]}")
            futures[future.key] = (future, task)
        for future in dask_completed([f for f, _ in futures.values()]):
            task = futures[future.key][1]
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker, a grader bug: one row's error
                row = error_row(task, f"grading failed on the Dask cluster: {type(exc).__name__}:"
                                 f" {exc}")
            on_result(task, row)
            future.release()
