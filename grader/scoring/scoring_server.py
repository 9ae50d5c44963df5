"""A warm scoring process: Keras imported once, reused for many submissions.

Scoring a submission in a fresh child (:func:`grader.scoring.score_process.score_isolated`) pays for
starting Python and importing TensorFlow every time: about 5 s of a module-02 score step
that otherwise loads two small models and re-runs one short experiment. A batch worker
therefore keeps one :class:`WarmScorer`: a long-lived child that imports Keras before it
is needed (while the first kernel still runs) and then scores one submission at a time.

What stays the same as in a fresh child:

* the archives are vetted before loading and loaded in safe mode (:mod:`grader.scoring.vetting`);
* the caller watches the whole process tree's resident memory and the time limit and
  kills it when a submission breaks them (the next submission gets a new process);
* nothing is read from the kernel's folders: requests come from the grader over a Unix
  socket in a private folder (mode 0700), and both ends prove they hold a random key
  (``multiprocessing.connection``'s HMAC handshake) before a byte is unpickled.

What is new: state could carry from one submission to the next. Between requests the
process clears Keras's session and collects garbage; re-runs seed themselves
(:func:`grader.checks.experiments.seed_for`), so a re-run scores the same warm or cold. The
process exits after :attr:`WarmScorer.max_uses` submissions or once its resident memory
passes :attr:`WarmScorer.recycle_mb`, and a new one starts for the next submission.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from grader.base.processes import exit_when_orphaned, thread_environment, tree_rss_mb


@dataclass(frozen=True)
class ScorerHandle:
    """How a grading process reaches a warm scorer (picklable: it goes to worker processes).

    Attributes
    ----------
    address : str
        Path of the server's Unix socket.
    authkey : bytes
        The key both ends prove they hold before anything is unpickled.
    pid : int
        The server's process id: the caller watches its tree's memory and kills it on a
        broken limit.
    """

    address: str
    authkey: bytes
    pid: int


class WarmScorer:
    """Owner of one warm scoring process: start it, hand out its address, restart it.

    Parameters
    ----------
    threads : int, optional
        TensorFlow/OpenMP threads of the scoring process (a batch gives it the kernels' share).
    log : Path, optional
        File the process's own output (TensorFlow's log lines) is appended to.
    max_uses : int
        Submissions scored before the process is replaced by a fresh one.
    recycle_mb : int
        Resident memory (MB, whole tree) after a submission above which it is replaced.
    preload : dict, optional
        What to load before the first request (:func:`warm_up`): the batch's data folder,
        hold-out plan and datasets.
    """

    def __init__(self, *, threads: int | None = None, log: Path | None = None,
                 max_uses: int = 50, recycle_mb: int = 2500, preload: dict | None = None) -> None:
        self.threads = threads
        self.preload = preload
        self.log = log
        self.max_uses = max_uses
        self.recycle_mb = recycle_mb
        self._folder = Path(tempfile.mkdtemp(prefix="dlcourse-score-"))  # mode 0700
        self._proc: subprocess.Popen | None = None
        self._handle: ScorerHandle | None = None
        self._generation = 0
        self.starts = 0

    def handle(self) -> ScorerHandle:
        """The running server's handle, starting a new server when the last one is gone."""
        if self._proc is not None and self._proc.poll() is None and not _alive(self._proc.pid):
            self._proc.wait(10)  # killed a moment ago (a broken limit): reap it
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._handle is not None
        return self._handle

    def _start(self) -> None:
        from grader.scoring.score_process import reference_modules

        self._generation += 1
        address = str(self._folder / f"s{self._generation}.sock")
        authkey = secrets.token_bytes(32)
        config = {"path": sys.path, "address": address, "authkey": authkey.hex(),
                  "threads": self.threads, "modules": reference_modules(),
                  "max_uses": self.max_uses, "recycle_mb": self.recycle_mb,
                  "parent": os.getpid(), "preload": self.preload}
        output = open(self.log, "ab") if self.log is not None else None  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "grader.scoring.scoring_server"], stdin=subprocess.PIPE,
                stdout=output if output is not None else subprocess.DEVNULL,
                stderr=output if output is not None else subprocess.DEVNULL, close_fds=True)
        finally:
            if output is not None:
                output.close()
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(config).encode() + b"\n")
        self._proc.stdin.close()
        self._handle = ScorerHandle(address, authkey, self._proc.pid)
        self.starts += 1

    def close(self) -> None:
        """Stop the server and remove its folder."""
        from grader.base.processes import kill_tree

        if self._proc is not None and self._proc.poll() is None:
            kill_tree(self._proc.pid)
            self._proc.wait(10)
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> WarmScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ScorerPool:
    """One :class:`WarmScorer` per submission a local batch has in flight.

    The first ``eager`` servers start at once, so their TensorFlow import overlaps the first
    kernels; the others start when first leased (a submission leases its server before its
    kernel starts, so that import still overlaps its kernel) and do not compete with the
    first kernels for the cores.
    """

    def __init__(self, size: int, *, eager: int | None = None, **options) -> None:
        """``size`` servers, each a :class:`WarmScorer` with ``options``."""
        import queue

        self._scorers = [WarmScorer(**options) for _ in range(size)]
        self._free: queue.Queue[WarmScorer] = queue.Queue()
        for index, scorer in enumerate(self._scorers):
            if eager is None or index < eager:
                scorer.handle()
            self._free.put(scorer)

    @contextmanager
    def lease(self):
        """A handle for one submission (a fresh server if the last one exited or was killed)."""
        scorer = self._free.get()
        try:
            yield scorer.handle()
        finally:
            self._free.put(scorer)

    def close(self) -> None:
        for scorer in self._scorers:
            scorer.close()


_THREAD_SCORERS = threading.local()


def thread_scorer(threads: int | None = None, log: Path | None = None) -> ScorerHandle:
    """The warm scorer of the calling thread (a Dask worker thread keeps one for its life)."""
    scorer = getattr(_THREAD_SCORERS, "scorer", None)
    if scorer is None:
        import atexit

        scorer = WarmScorer(threads=threads, log=log)
        _THREAD_SCORERS.scorer = scorer
        atexit.register(scorer.close)
    return scorer.handle()


def request(handle: ScorerHandle, payload: tuple, *, timeout_s: float, memory_mb: int,
            poll_s: float = 0.2, connect_s: float = 120.0, handshake_s: float = 10.0):
    """Send one scoring request to a warm server and wait for its answer within the limits.

    Returns
    -------
    ("result", value)
        The server's answer (what :func:`grader.scoring.score_process.score_in_child` returns).
    ("failure", message)
        The server broke a limit or died while scoring: it has been killed.
    ("unavailable", message)
        No server could be reached (gone before the request was sent): score cold instead.
    """
    from multiprocessing.connection import AuthenticationError

    from grader.base.processes import kill_tree
    from grader.scoring.score_process import limit_failure

    connect_until = time.monotonic() + connect_s
    conn = None
    while conn is None:
        if not _alive(handle.pid):
            return "unavailable", "the warm scoring process is gone"
        try:
            conn = _handshake(handle, timeout_s=handshake_s)
        except TimeoutError:  # alive but not answering (stopped, or held by a stranger)
            kill_tree(handle.pid)
            _wait_gone(handle.pid, 10.0)  # a stopped process takes a moment to die
            return "unavailable", (f"the warm scoring process did not answer within "
                                   f"{handshake_s:g} s")
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > connect_until:
                kill_tree(handle.pid)
                return "unavailable", "the warm scoring process did not start in time"
            time.sleep(0.05)
        except (OSError, EOFError, AuthenticationError) as exc:  # it died, or it is not ours
            kill_tree(handle.pid)
            return "unavailable", f"the warm scoring process refused the connection ({exc})"
    deadline = time.monotonic() + timeout_s  # from the request on: start-up is not the student's
    try:
        conn.send(payload)
        failure = None
        while True:
            if conn.poll(poll_s):
                try:
                    answer = conn.recv()
                except (EOFError, OSError):
                    failure = "the grader's scoring process died"
                break
            failure = limit_failure(handle.pid, memory_mb=memory_mb, timeout_s=timeout_s,
                                    deadline=deadline)
            if failure is None and not _alive(handle.pid):
                failure = "the grader's scoring process died"
            if failure:
                break
    except (OSError, EOFError):
        failure = "the grader's scoring process died"
    finally:
        conn.close()
    if failure is not None:
        kill_tree(handle.pid)
        _wait_gone(handle.pid, 10.0)
        return "failure", failure
    closing, result = answer
    if closing:  # it exits after this answer: let it go before the owner looks again
        _wait_gone(handle.pid, 10.0)
    return "result", result


def _handshake(handle: ScorerHandle, *, timeout_s: float):
    """Connect and authenticate within ``timeout_s``.

    ``multiprocessing.connection.Client`` blocks without a limit in its HMAC handshake, so a
    server that is alive but not answering would hold the batch worker for ever. The handshake
    runs in a thread; past the limit this raises :class:`TimeoutError` (the caller kills the
    server, which ends the thread's wait). Connection errors are raised as ``Client`` raises them.
    """
    import threading
    from multiprocessing.connection import Client

    box: dict = {}

    def attempt() -> None:
        try:
            box["conn"] = Client(handle.address, family="AF_UNIX", authkey=handle.authkey)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=attempt, name="warm-scorer-handshake", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no handshake within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["conn"]


def score_warm(handle: ScorerHandle, rubric, artifacts: Path, inputs: dict, ctx, *,
               problems: dict[str, str], unfinished: dict[str, str], limits,
               threads: int | None = None, log: Path | None = None):
    """:func:`grader.scoring.score_process.score_isolated`'s work, done by a warm scoring process.

    Same arguments, limits and results; when the warm process cannot be reached, a fresh
    child scores instead (slower, same result).
    """
    from grader.scoring.score_process import finish, score_arguments, score_isolated

    args = score_arguments(rubric, artifacts, inputs, ctx, problems=problems,
                           unfinished=unfinished, threads=threads)
    status, value = request(handle, args, timeout_s=limits.timeout_s,
                            memory_mb=limits.memory_mb, poll_s=limits.poll_s)
    if status == "result":
        return finish(rubric, value, None)
    if status == "failure":
        return finish(rubric, None, value)
    return score_isolated(rubric, artifacts, inputs, ctx, problems=problems,
                          unfinished=unfinished, limits=limits, threads=threads, log=log)


AHEAD = "ahead"
"""First item of a request to run re-runs ahead (:mod:`grader.checks.speculation`)."""


def run_ahead_warm(handle: ScorerHandle, ctx, references: list[str], *, limits,
                   threads: int | None = None, objects: dict | None = None) -> str:
    """Ask the warm process to run the re-runs planned for ``references`` now, while the
    kernel runs; returns when it has. ``objects``: the early export's plain values, for the
    plans that need them. Under the scoring limits: a process that breaks one is killed, and
    the score request then scores in a fresh child (same result, later). Returns
    ``"<status>: <answer>"`` of :func:`request` (the pipeline needs nothing from it)."""
    from grader.scoring.score_process import reference_modules

    status, value = request(handle, (AHEAD, ctx, list(references), reference_modules(), threads,
                                     objects),
                            timeout_s=limits.timeout_s, memory_mb=limits.memory_mb,
                            poll_s=limits.poll_s)
    return f"{status}: {value}"


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(pid: int, timeout_s: float) -> None:
    until = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < until:
        time.sleep(0.02)


def warm_up(preload: dict | None) -> None:
    """Do before the first request what it would otherwise wait for (while the first kernel
    still runs): TensorFlow's first fit and prediction, and reading every dataset the batch
    scores on (the instructor's files for the public test split and the private hold-out,
    the kernel copy for re-runs; :func:`helpers.data.load_dataset` keeps them). Nothing of a
    submission is involved; a failure here only leaves the work to the first request."""
    try:
        from grader.checks.experiments import warm_up_training

        warm_up_training()
        if not preload:
            return
        from grader.checks.context import Context
        from grader.data.holdout import HoldoutPlan

        plan = HoldoutPlan(mode=preload["mode"], seed=int(preload["seed"]),
                           source_dir=preload["source_dir"], kernel_dir=preload["kernel_dir"])
        ctx = Context(mode=plan.mode, data_dir=preload["data_dir"], holdout=plan)
        for name in preload["datasets"]:
            ctx.raw_test_split(name)
            ctx.raw_train_split(name)
            ctx.private_split(name)
    except Exception:  # noqa: BLE001 - the first request does the same work and reports it
        pass


def serve() -> None:
    """Server entry point: configuration as one JSON line on stdin, then requests on the socket."""
    import gc
    import importlib
    from multiprocessing.connection import AuthenticationError, Listener

    config = json.loads(sys.stdin.buffer.readline())
    sys.path[:] = config["path"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    threads = config.get("threads")
    if threads:
        os.environ.update(thread_environment(threads))
    exit_when_orphaned(int(config["parent"]), code=0)  # the batch is gone: so is its scorer
    import keras  # the point of a warm process: pay for these once

    from grader.checks.speculation import forget
    from grader.scoring.export import load_artifacts  # noqa: F401 - imported ahead of the first request
    from grader.scoring.score import score_checks  # noqa: F401
    from grader.scoring.score_process import run_ahead_in_child, score_in_child

    for module in config["modules"]:
        importlib.import_module(module)
    warm_up(config.get("preload"))
    listener = Listener(config["address"], family="AF_UNIX",
                        authkey=bytes.fromhex(config["authkey"]))
    uses = 0
    while True:
        try:
            conn = listener.accept()
        except (AuthenticationError, OSError, EOFError):
            continue  # not the grader: nothing was read from it
        try:
            args = conn.recv()
        except (EOFError, OSError):
            conn.close()
            continue
        if args and isinstance(args[0], str) and args[0] == AHEAD:  # while a kernel runs
            _answer(conn, False, run_ahead_in_child(*args[1:]))
            continue
        result = score_in_child(*args)
        uses += 1
        # Measured before the clean-up below (so erring towards a fresh process): the answer
        # goes out first, and the clean-up (about 0.5 s) is off the submission's path.
        closing = (uses >= int(config["max_uses"])
                   or tree_rss_mb(os.getpid()) > float(config["recycle_mb"]))
        if closing:
            listener.close()
        _answer(conn, closing, result)
        if closing:
            os._exit(0)
        forget()  # re-runs done ahead belong to this submission only
        keras.backend.clear_session()
        gc.collect()


def _answer(conn, closing: bool, result) -> None:
    try:
        conn.send((closing, result))
    except (OSError, EOFError):
        pass  # the grader gave up on this request
    conn.close()


if __name__ == "__main__":
    serve()
