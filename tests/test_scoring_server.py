"""The warm scoring process: same results as a fresh child, same limits, no strangers.

Real Keras models of the tiny fixture module are scored on the real MNIST data, once in a
fresh child (:func:`grader.scoring.score_process.score_isolated`) and then by one warm process
(:mod:`grader.scoring.scoring_server`), before and after a wrong model from another "student".
"""

from __future__ import annotations

import json
from multiprocessing.connection import AuthenticationError, Client

import helpers_notebooks as fx
import pytest

from grader.base.processes import tree_rss_mb
from grader.data.holdout import plan_holdout
from grader.scoring.score_process import ScoreLimits, score_isolated
from grader.scoring.scoring_server import WarmScorer, _alive, score_warm

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("warm-scoring")]


def _artifacts(folder, data_dir, *, units: int = 16, epochs: int = 2):
    """What the export cell would write for a student who trained ``units`` hidden units."""
    import keras

    from helpers.data import load_dataset

    keras.utils.set_random_seed(7)
    (x, y), _ = load_dataset("mnist", fast=True, data_dir=data_dir)
    model = keras.Sequential([keras.Input(shape=(784,)),
                              keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    run = model.fit(x.reshape(len(x), -1) / 255.0, y, epochs=epochs, batch_size=64, verbose=0)
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    (folder / "param_bytes.json").write_text(json.dumps({"value": model.count_params() * 4}))
    history = {k: [float(v) for v in vals] for k, vals in run.history.items()}
    (folder / "history.json").write_text(json.dumps({"value": history}))
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir):
    from grader.checks.context import Context

    root = tmp_path_factory.mktemp("warm")
    rubric = fx.build_rubric(root)
    ctx = Context(mode="fast", dataset="mnist", data_dir=data_dir, verify=True,
                  choice_key="warm-test", holdout=plan_holdout(data_dir, fast=True, key=b"k" * 32))
    good = _artifacts(root / "good", data_dir)
    wrong = _artifacts(root / "wrong", data_dir, units=32, epochs=1)
    kwargs = {"problems": {"normalize_images": "`normalize_images` was not exported"},
              "unfinished": {}}
    cold = score_isolated(rubric, good, {}, ctx, **kwargs)
    return {"rubric": rubric, "ctx": ctx, "good": good, "wrong": wrong, "kwargs": kwargs,
            "cold": cold, "root": root}


def _rows(result):
    checks, notes = result
    return [(c.id, c.points, c.passed, c.message) for c in checks], notes


def test_warm_scores_like_a_fresh_child_and_is_reused(setup):
    cold_rows, _ = _rows(setup["cold"])
    assert [r[2] for r in cold_rows] == [False, True, True, True, True]  # function not exported
    with WarmScorer() as scorer:
        handle = scorer.handle()
        first = score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                           limits=ScoreLimits(), **setup["kwargs"])
        wrong = score_warm(scorer.handle(), setup["rubric"], setup["wrong"], {}, setup["ctx"],
                           limits=ScoreLimits(), **setup["kwargs"])
        again = score_warm(scorer.handle(), setup["rubric"], setup["good"], {}, setup["ctx"],
                           limits=ScoreLimits(), **setup["kwargs"])
        assert scorer.handle().pid == handle.pid and scorer.starts == 1
    assert _rows(first) == _rows(setup["cold"])
    assert _rows(again) == _rows(setup["cold"])  # the other student's model left no trace
    wrong_rows, _ = _rows(wrong)
    assert [r[2] for r in wrong_rows][1:3] == [False, False]  # 32 units: params and bytes off
    assert not _alive(handle.pid)  # closed with the batch


def test_memory_limit_kills_the_warm_process_and_the_next_submission_gets_a_new_one(setup):
    with WarmScorer() as scorer:
        handle = scorer.handle()
        checks, notes = score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                                   limits=ScoreLimits(memory_mb=150), **setup["kwargs"])
        assert all(c.points == 0 for c in checks)
        assert "MB, more than the grader's 150 MB limit" in checks[1].message
        assert any(n.startswith("scoring stopped") for n in notes)
        assert not _alive(handle.pid)
        fresh = scorer.handle()
        assert fresh.pid != handle.pid and scorer.starts == 2
        result = score_warm(fresh, setup["rubric"], setup["good"], {}, setup["ctx"],
                            limits=ScoreLimits(), **setup["kwargs"])
    assert _rows(result) == _rows(setup["cold"])


def test_time_limit_kills_the_warm_process(setup):
    with WarmScorer() as scorer:
        handle = scorer.handle()
        # 10 ms: loading a .keras file alone takes longer on any machine (a 1 s limit was
        # met by a fast CI host, and the test failed)
        checks, _ = score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                               limits=ScoreLimits(timeout_s=0.01, poll_s=0.01),
                               **setup["kwargs"])
        assert all(c.points == 0 for c in checks)
        assert "took longer than 0.01 s" in checks[0].message
        assert not _alive(handle.pid)


def test_a_client_without_the_key_is_refused_and_the_grader_still_served(setup):
    with WarmScorer() as scorer:
        handle = scorer.handle()
        # wait until it listens (it imports Keras first)
        result = score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                            limits=ScoreLimits(), **setup["kwargs"])
        with pytest.raises(AuthenticationError):
            Client(handle.address, family="AF_UNIX", authkey=b"guessed" * 4)
        after = score_warm(scorer.handle(), setup["rubric"], setup["good"], {}, setup["ctx"],
                           limits=ScoreLimits(), **setup["kwargs"])
        assert scorer.handle().pid == handle.pid
    assert _rows(result) == _rows(after) == _rows(setup["cold"])


def test_recycled_after_max_uses_and_on_memory_growth(setup):
    with WarmScorer(max_uses=1) as scorer:
        first = scorer.handle()
        score_warm(first, setup["rubric"], setup["good"], {}, setup["ctx"],
                   limits=ScoreLimits(), **setup["kwargs"])
        assert not _alive(first.pid)  # it left after its one submission
        second = scorer.handle()
        assert second.pid != first.pid
    with WarmScorer(recycle_mb=100) as scorer:  # any Keras process is past 100 MB
        first = scorer.handle()
        result = score_warm(first, setup["rubric"], setup["good"], {}, setup["ctx"],
                            limits=ScoreLimits(), **setup["kwargs"])
        assert not _alive(first.pid) and tree_rss_mb(first.pid) == 0
    assert _rows(result) == _rows(setup["cold"])


def test_an_unreachable_server_falls_back_to_a_fresh_child(setup):
    from grader.base.processes import kill_tree

    with WarmScorer() as scorer:
        handle = scorer.handle()
        kill_tree(handle.pid)
        result = score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                            limits=ScoreLimits(), **setup["kwargs"])
    assert _rows(result) == _rows(setup["cold"])


def test_a_frozen_server_is_given_up_and_a_fresh_child_scores(setup):
    """Alive but not answering (SIGSTOP after its first submission): the handshake has a
    deadline, the frozen server is killed and the submission is scored cold, same points."""
    import os
    import signal
    import time

    with WarmScorer() as scorer:
        handle = scorer.handle()
        score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                   limits=ScoreLimits(), **setup["kwargs"])
        os.kill(handle.pid, signal.SIGSTOP)
        start = time.monotonic()
        from grader.scoring.scoring_server import request

        status, message = request(handle, ("not sent",), timeout_s=60, memory_mb=6000,
                                  handshake_s=2.0)
        assert status == "unavailable" and "did not answer within 2 s" in message
        assert time.monotonic() - start < 30
        assert not _alive(handle.pid)  # killed, not left stopped
        fresh = scorer.handle()
        assert fresh.pid != handle.pid
        result = score_warm(fresh, setup["rubric"], setup["good"], {}, setup["ctx"],
                            limits=ScoreLimits(), **setup["kwargs"])
    assert _rows(result) == _rows(setup["cold"])


def test_a_stranger_holding_the_server_does_not_hang_the_grader(setup):
    """A client that connects and then says nothing keeps the server in its half of the
    handshake; the grader's own request gives up on time and scores cold, same points."""
    import socket

    with WarmScorer() as scorer:
        handle = scorer.handle()
        score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                   limits=ScoreLimits(), **setup["kwargs"])
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(handle.address)  # accepted; never answers the challenge
        try:
            result = score_warm(handle, setup["rubric"], setup["good"], {}, setup["ctx"],
                                limits=ScoreLimits(), **setup["kwargs"])
        finally:
            silent.close()
        assert not _alive(handle.pid)
    assert _rows(result) == _rows(setup["cold"])


def test_a_preloaded_scorer_scores_the_same_and_a_broken_preload_changes_nothing(setup, data_dir,
                                                                                tmp_path):
    """What a warm scorer loads before its first request (the datasets, TensorFlow's first
    fit) changes no result; a preload that cannot be done only leaves the work to the request."""
    plan = setup["ctx"].holdout
    good = {"mode": plan.mode, "seed": plan.seed, "source_dir": plan.source_dir,
            "kernel_dir": None, "data_dir": data_dir, "datasets": ["mnist"]}
    missing = str(tmp_path / "missing")
    broken = dict(good, source_dir=missing, data_dir=missing, datasets=["mnist", "no_such"])
    for preload in (good, broken):
        with WarmScorer(preload=preload) as scorer:
            result = score_warm(scorer.handle(), setup["rubric"], setup["good"], {}, setup["ctx"],
                                limits=ScoreLimits(), **setup["kwargs"])
            assert scorer.starts == 1  # scored warm, not by a fresh child after a failed start
        assert _rows(result) == _rows(setup["cold"])


def _one_value(tmp_path, data_dir, name: str, value, choice_key: str):
    """An artifacts folder holding one exported value, and a fast grading context."""
    from grader.checks.context import Context

    folder = tmp_path / "artifacts"
    folder.mkdir()
    (folder / f"{name}.json").write_text(json.dumps({"value": value}))
    ctx = Context(mode="fast", dataset="fashion_mnist", data_dir=data_dir, verify=True,
                  choice_key=choice_key, holdout=plan_holdout(data_dir, fast=True,
                                                              key=b"k" * 32))
    return folder, ctx


def _reruns(result, check_id: str):
    """A scored check's re-runs (its message when it has none)."""
    check = next(c for c in result[0] if c.id == check_id)
    return check.details["reruns"] if check.details else check.message


def test_reruns_done_ahead_are_the_ones_computed_after(data_dir, tmp_path):
    """Lesson 03's learning-rate re-runs, run ahead by a warm scorer (as while a kernel runs),
    give the check exactly the values the same scorer computes when nothing was done ahead."""
    from grader.checks.references.lesson03 import LEARNING_RATES, LR_EPOCHS
    from grader.checks.rubric import load_rubric
    from grader.scoring.scoring_server import run_ahead_warm

    epochs = LR_EPOCHS["fast"]
    histories = {f"{lr:g}": {"loss": [1.0] * epochs if lr == 1e-6 else [1.0, 0.8][:epochs],
                             "val_accuracy": [0.5] * epochs} for lr in LEARNING_RATES}
    folder, ctx = _one_value(tmp_path, data_dir, "lr_histories", histories, "ahead-test")
    rubric = load_rubric("03")
    args = {"problems": {}, "unfinished": {}, "limits": ScoreLimits()}

    def reruns(result):
        return _reruns(result, "03.lr_histories")

    with WarmScorer() as scorer:
        status = run_ahead_warm(scorer.handle(), ctx, ["lesson03_lr_histories"],
                                limits=ScoreLimits())
        ahead = score_warm(scorer.handle(), rubric, folder, {}, ctx, **args)
        after = score_warm(scorer.handle(), rubric, folder, {}, ctx, **args)  # nothing ahead
        assert scorer.starts == 1
    assert status == "result: ('ok', 3)"
    assert isinstance(reruns(ahead), list) and len(reruns(ahead)) == 3
    assert reruns(ahead) == reruns(after)


def test_reruns_of_the_students_choice_run_ahead_on_the_early_values(data_dir, tmp_path):
    """Lesson 02's architecture re-runs, run ahead by a warm scorer on the early export's
    table, give the check the values the same scorer computes after; the lesson's fixed plans'
    request does not run them, and a table that changed since computes afresh."""
    from grader.checks.rubric import load_rubric
    from grader.scoring.scoring_server import run_ahead_warm

    table = {"64": 0.8, "512": 0.82, "256-128": 0.83, "32-16": 0.78}
    folder, ctx = _one_value(tmp_path, data_dir, "fashion_architectures", table, "early-test")
    rubric = load_rubric("02")
    args = {"problems": {}, "unfinished": {}, "limits": ScoreLimits()}
    refs = ["lesson02_fashion_architectures"]

    def reruns(result):
        return _reruns(result, "02.fashion_architectures")

    with WarmScorer() as scorer:
        fixed = run_ahead_warm(scorer.handle(), ctx, refs, limits=ScoreLimits())
        early = run_ahead_warm(scorer.handle(), ctx, refs, limits=ScoreLimits(),
                               objects={"fashion_architectures": table})
        ahead = score_warm(scorer.handle(), rubric, folder, {}, ctx, **args)
        after = score_warm(scorer.handle(), rubric, folder, {}, ctx, **args)  # nothing ahead
        changed = run_ahead_warm(scorer.handle(), ctx, refs, limits=ScoreLimits(),
                                 objects={"fashion_architectures": {"16": 0.8, "48": 0.8,
                                                                    "96": 0.8, "24": 0.8}})
        again = score_warm(scorer.handle(), rubric, folder, {}, ctx, **args)
        assert scorer.starts == 1
    assert fixed == "result: ('ok', 0)" and early == "result: ('ok', 2)"
    assert changed == "result: ('ok', 2)"
    assert isinstance(reruns(ahead), list) and len(reruns(ahead)) == 2
    assert reruns(ahead) == reruns(after) == reruns(again)


def test_a_timing_done_ahead_beside_busy_processes_lets_in_nothing_they_slowed(data_dir,
                                                                                tmp_path):
    """Lesson 01's batch-size timings run ahead while sixteen busy processes (what a hostile
    kernel can start) slow the warm scorer: times twelve times the grader's own timing alone
    are within four times those slowed timings, yet the CPU bound refuses every one of them
    beside the kernel, and the check falls back to timing them again after it; the honest
    times, far below what the slowed timing saw, never lose points for it.

    What the timings after the kernel see depends on the rest of the machine (under xdist,
    another worker's kernels: once a 0.49 s timing took 2.14 s), so the verdicts after the
    kernel are asserted only where those timings were not slowed past the factor; the rule
    after the kernel is tested on fixed figures in test_experiments."""
    import subprocess
    import sys
    import time

    from grader.checks.references.lesson01 import BATCH_SIZES
    from grader.checks.rubric import load_rubric
    from grader.scoring.scoring_server import run_ahead_warm

    folder, ctx = _one_value(tmp_path, data_dir, "batch_seconds",
                             {str(size): 1.0 for size in BATCH_SIZES}, "timing-beside")
    ctx = type(ctx)(**{**ctx.__dict__, "dataset": "cifar10"})
    rubric = load_rubric("01")
    args = {"problems": {}, "unfinished": {}, "limits": ScoreLimits()}
    refs = ["lesson01_batch_timing"]
    spin = "import time\nend = time.time() + 180\nwhile time.time() < end:\n    pass\n"

    def score(seconds: dict[int, float]) -> list[dict]:
        other = max(seconds.values())  # sizes not timed: keeps batch 4 no faster than 1024
        (folder / "batch_seconds.json").write_text(json.dumps(
            {"value": {str(size): seconds.get(size, other) for size in BATCH_SIZES}}))
        return _reruns(score_warm(scorer.handle(), rubric, folder, {}, ctx, **args),
                       "01.batch_timing")

    def settle() -> None:
        """Wait until the scorer has cleaned up after its last answer (about 0.45 s of CPU
        alone): done beside the spinners, that clean-up once held off the next handshake
        past its 10 s limit (a clean-clone CI run, another xdist worker busy too)."""
        import psutil

        proc, until = psutil.Process(scorer.handle().pid), time.monotonic() + 60
        used = sum(proc.cpu_times()[:2])
        while time.monotonic() < until:
            time.sleep(0.5)
            used, before = sum(proc.cpu_times()[:2]), used
            if used - before < 0.02:
                return

    def ahead_beside_spinners() -> None:
        settle()
        spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(16)]
        try:
            assert run_ahead_warm(scorer.handle(), ctx, refs, limits=ScoreLimits()) \
                == "result: ('ok', 2)"
        finally:
            for p in spinners:
                p.kill()
                p.wait()

    with WarmScorer() as scorer:
        alone = {int(r["configuration"].split()[-1]): r["rerun_seconds"]
                 for r in score({size: 1.0 for size in BATCH_SIZES})}  # nothing ahead
        ahead_beside_spinners()
        invented = score({size: 12 * seconds for size, seconds in alone.items()})
        ahead_beside_spinners()
        honest = score(alone)
        assert scorer.starts == 1
    assert isinstance(invented, list) and len(invented) == 2, invented
    for r in invented:
        # refused beside the kernel (a beside record that agrees is returned as is), though
        # within four times the wall seconds the spinners made: only the CPU bound refused it
        assert "beside_kernel" not in r and "beside_rerun_seconds" in r, r
        assert r["reported_seconds"] <= 4 * r["beside_rerun_seconds"], r
        after = [r["rerun_seconds"], r.get("first_rerun_seconds", r["rerun_seconds"])]
        if 4 * max(after) < r["reported_seconds"]:  # after the kernel, nothing slowed them
            assert not r["agrees"], r
    # honest seconds below a quarter of what the spinners let the grader measure are refused
    # beside the kernel and timed again after it: the slowed timing costs time, never points
    assert isinstance(honest, list) and len(honest) == 2, honest
    for r in honest:
        after = [r["rerun_seconds"], r.get("first_rerun_seconds", r["rerun_seconds"])]
        assert r["agrees"] or min(after) > 4 * r["reported_seconds"], r
