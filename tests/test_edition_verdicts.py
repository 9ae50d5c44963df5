"""The student edition gives verdicts: installed alone, every self-check says "correct" to a
right answer and "not yet" with a hint to a wrong one, without holding answers.

``tests/edition_answers.py`` plays the student in a Python that sees only the installed
edition (``python -S``, the edition and this venv's third-party packages on ``PYTHONPATH``),
in fast mode on the real data: real models trained briefly, their histories, functions
written right and wrong. The wrong answers include those a teaching review saw pass as
"looks complete": a percentage for an accuracy, a reversed comparison, training
instead of validation accuracy, a schedule that decays one epoch late, images and labels
split apart, binary cross-entropy for ten one-hot classes, ``min`` for the best rate, the
best model chosen on the test set, and a "regularised" model with neither L2 nor dropout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from nbclient import NotebookClient
from test_edition import (
    REPO_URL,
    build,
    edition_kernel,
    filled_from_solution,
    installed_edition,
    outputs_text,
)

from grader.checks.references.digests import render
from grader.checks.rubric import load_rubric
from grader.checks.verdicts.digests import DIGESTS_FILE

DRIVER = Path(__file__).resolve().with_name("edition_answers.py")

#: Per lesson, per wrong answer: words its "not yet" message must hold (what to fix).
WRONG = {
    "01": {
        ("01.test_accuracy", "wrong: a percentage"): "hint: divide the number of test images",
        ("01.test_accuracy", "wrong: the training accuracy"): "hint: divide",
        ("01.colors_help", "wrong: the comparison reversed"): "colours help only when",
        ("01.lr_sweep", "wrong: training instead of validation accuracy"):
            "is not the best validation accuracy of lr_histories",
    },
    "02": {
        ("02.fashion_epochs", "wrong: the worst epoch as the best"):
            "another reported epoch has a higher validation accuracy",
        ("02.fashion_confidence", "wrong: statistics of an untrained model"):
            "Compute the statistics from fashion_model.predict(fx_val)",
        ("02.fashion_architectures", "wrong: only two other architectures"):
            "train at least three architectures",
        ("02.one_hot_row", "wrong: a one-hot row of another label"): "hint: a one-hot row",
    },
    "03": {
        ("03.schedule", "wrong: decays one epoch late"):
            "schedule(epoch=2, lr=0.1) returned 0.1, which is not right; hint:",
        ("03.schedule", "wrong: decays from the first epoch"): "which is not right; hint:",
        ("03.schedule", "wrong: returns text"): "should return a single number",
        ("03.lr_preview", "wrong: the late schedule's preview"): "`lr_preview[2]`",
        ("03.n_weight_updates", "wrong: one epoch's updates"): "hint: Keras updates the weights",
        ("03.n_weight_updates", "wrong: every training image, validation included"):
            "hint: Keras updates the weights",
        ("03.regularised_params", "wrong: no L2 and no dropout"):
            "has no L2 penalty and no dropout",
        ("03.sgd_setup", "wrong: Adam instead of SGD"): "expected the optimizer",
    },
    "04": {
        ("04.prepare_dataset", "wrong: images and labels split apart"):
            "carry another image's label: split images and labels together",
        ("04.compile", "wrong: binary cross-entropy for ten one-hot classes"):
            "does not fit our labels",
        ("04.predictions", "wrong: the probabilities"): "take the class with the largest",
        ("04.confusion_matrix", "wrong: rows and columns swapped"):
            "rows should be the true class",
        ("04.best_dropout_rate", "wrong: min instead of max"): "hint: the best is the key",
        ("04.best_model_choice", "wrong: chosen on the test set"):
            "accuracies on the test set: choose the best model on the validation split",
        ("04.best_model_choice", "wrong: not the best of val_scores"):
            "best_model does not predict like that model",
    },
}


@pytest.fixture(scope="module")
def edition_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verdicts")
    proc = build(root / "dl-student", "--repo-url", REPO_URL)
    assert proc.returncode == 0, proc.stderr
    return installed_edition(root / "dl-student", root)


def answers_in_edition(site: Path, lesson: str, data_dir: str, cwd: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{sysconfig.get_paths()['purelib']}",
           "DLCOURSE_FAST": "1", "DLCOURSE_DATA_DIR": data_dir, "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("DLCOURSE_GRADING", None)
    proc = subprocess.run([sys.executable, "-S", str(DRIVER), lesson], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.xdist_group("edition")
@pytest.mark.parametrize("lesson", sorted(WRONG))
def test_installed_edition_says_correct_or_not_yet_with_a_hint(edition_site, lesson, data_dir,
                                                               tmp_path):
    records = answers_in_edition(edition_site, lesson, data_dir, tmp_path)
    probe, cases = records[0], records[1:]
    assert all(Path(p).is_relative_to(edition_site) for p in probe["probe"]), probe
    assert not probe["references"] and not probe["submission"], probe
    right = [c for c in cases if c["case"] == "right"]
    assert right and all(c["verdict"] == "correct" for c in right), right
    wrong = {(c["check"], c["case"]): c for c in cases if c["case"] != "right"}
    assert set(wrong) == set(WRONG[lesson]), set(wrong) ^ set(WRONG[lesson])
    assert len(wrong) >= 3
    for key, words in WRONG[lesson].items():
        found = wrong[key]
        assert found["verdict"] == "not yet" and found["raised"], found
        assert words in found["message"], found
    assert not [c for c in cases if "looks complete" in c["message"]]


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.xdist_group("edition")
@pytest.mark.parametrize("lesson", ["01", "03", "04"])  # 02: test_edition.py runs it
def test_installed_edition_runs_the_lesson_with_every_self_check_correct(
        edition_site, lesson, data_dir, tmp_path, monkeypatch):
    """The lesson filled in from the solution, in a kernel that sees only the edition, fast
    mode: every self-check cell prints "correct" (none "looks complete"), no cell fails."""
    monkeypatch.setenv("JUPYTER_PATH", edition_kernel(tmp_path, edition_site, data_dir))
    rubric = load_rubric(lesson)
    source = edition_site.parent / "dl-student" / "notebooks"
    nb = filled_from_solution(source / rubric.notebook, lesson)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "assets").symlink_to(source / "assets")
    NotebookClient(nb, timeout=1800, kernel_name="edition", allow_errors=True,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    errors = [(c.id, outputs_text(c)[-500:]) for c in nb.cells
              if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert not errors, errors
    verdicts = [line for c in nb.cells for line in outputs_text(c).splitlines()
                if line.startswith(f"[{lesson}.")]
    seen = {line.split("]", 1)[0][1:] for line in verdicts}
    assert seen == {c.id for c in rubric.checks}, {c.id for c in rubric.checks} ^ seen
    assert all("] correct: " in line for line in verdicts), [
        line for line in verdicts if "] correct: " not in line]


def test_digests_file_is_what_the_references_give():
    """``digests.json`` is generated: writing it again from the references changes nothing."""
    assert DIGESTS_FILE.read_text(encoding="utf-8") == render()


def test_every_reference_a_rubric_names_has_an_in_kernel_verdict():
    """Without one the edition could only say "looks complete" for that check."""
    from grader.base.paths import MODULES
    from grader.checks.verdicts import VERDICTS

    missing = [c.id for m in MODULES for c in load_rubric(m).checks
               if c.reference is not None and c.reference not in VERDICTS]
    assert not missing
