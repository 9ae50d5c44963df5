"""Accuracy on the private hold-out, compared with the public test split.

An ``accuracy`` check in grading (:func:`grader.checks.kinds.run_check` with a hold-out plan in
its :class:`~grader.checks.context.Context`) is decided here: the model must reach the rubric's
threshold on the private hold-out (:mod:`grader.data.holdout`), images the student's kernel never
had. The same model is also scored on the public test split, prepared the same way; a
public accuracy above the private one by more than :data:`grader.data.holdout.FLAG_MARGIN` means
the model has most likely been fitted on the test images: the check then scores 0 and is
flagged ``saw_test_set``.
"""

from __future__ import annotations

from grader.checks.context import CheckFailed, Context, model_accuracy
from grader.checks.rubric import CheckSpec

SAW_TEST_SET = "saw_test_set"
"""The flag of an accuracy check whose model appears to have been trained on the test split."""


def leak_message(public: float, private: float, margin: float) -> str:
    """What the student reads when the model is flagged."""
    return (f"this model appears to have seen the test set: test accuracy {public:.3f} vs"
            f" {private:.3f} on images it never had (images the grader kept aside from the"
            f" training data). Honest models score within {margin:.2f} of each other on the"
            " two, yours differs by more, so this check scores 0. Fix: train only on the"
            " training split (x_train, y_train, or a part of it for validation) and use"
            " x_test, y_test only to measure the final model")


def score_with_holdout(spec: CheckSpec, model, ctx: Context) -> tuple[str, dict]:
    """Score an ``accuracy`` check on the private hold-out and check the public gap.

    Returns
    -------
    message, details
        ``details`` holds ``private_accuracy``, ``public_accuracy``, ``gap`` (public -
        private), ``margin`` and the hold-out size.

    Raises
    ------
    CheckFailed
        Below the threshold on the hold-out, or flagged (``flag="saw_test_set"``).
    """
    from grader.data.holdout import FLAG_MARGIN

    private = model_accuracy(model, ctx, inputs=spec.inputs, dataset=spec.dataset,
                             split="private")
    public = model_accuracy(model, ctx, inputs=spec.inputs, dataset=spec.dataset,
                            split="public")
    margin = FLAG_MARGIN[ctx.mode]
    need = spec.threshold[ctx.mode]
    details = {"private_accuracy": round(private, 4), "public_accuracy": round(public, 4),
               "gap": round(public - private, 4), "margin": margin, "threshold": need}
    if public - private > margin:
        raise CheckFailed(leak_message(public, private, margin), flag=SAW_TEST_SET,
                          details=details)
    if private < need:
        raise CheckFailed(
            f"accuracy {private:.3f} on images the grader kept aside (test split:"
            f" {public:.3f}) is below the {need:g} this exercise asks for in {ctx.mode} mode;"
            " train longer or revisit the model. The grader feeds the model the images"
            " prepared as the lessons do, pixels / 255 (values 0 to 1): a model trained on"
            " inputs prepared otherwise (e.g. standardised) scores lower here",
            details=details)
    return (f"accuracy {private:.3f} on images the grader kept aside (needed {need:g} in"
            f" {ctx.mode} mode); test split: {public:.3f}"), details


def flag_leaks(row) -> None:
    """Copy flagged checks into the row: its ``flags`` list and one note per check."""
    for check in row.checks:
        if check.flag == SAW_TEST_SET and SAW_TEST_SET not in row.flags:
            row.flags.append(SAW_TEST_SET)
        if check.flag == SAW_TEST_SET:
            details = check.details or {}
            row.notes.insert(0,
                f"{check.id}: flagged, the model appears to have seen the test set (test"
                f" accuracy {details.get('public_accuracy', float('nan')):.3f} vs"
                f" {details.get('private_accuracy', float('nan')):.3f} on the grader's"
                " private images); the check scores 0")
