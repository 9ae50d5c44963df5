"""Which graded rows ``canvas push`` may send, given the state Canvas holds for each submission.

Canvas's own rules (``instructure/canvas-lms``):

* ``app/models/submission.rb``: ``before_save :apply_late_policy`` runs on every grade save;
  ``score_late_or_none`` takes the saved score as the raw score and deducts the course's Late
  Policy from it (``new_score = raw_score - deducted``). A grade already penalised here would
  be penalised twice, so with the policy on the score before the deduction is sent
  (:func:`posted_points`) and a batch graded with another rule is refused.
* An excused submission (``excused``) keeps its excuse: no grade is posted over it.
* A student who resubmitted after the pull has a newer ``attempt`` (``submitted_at``): the
  grade is for the older one and is not sent (Canvas would mark it as not matching the
  current submission, ``grade_matches_current_submission``).
* Assignment settings (the Assignment object): with ``anonymous_grading`` Canvas lists
  submissions without their users, so none can be matched; with ``moderated_grading`` and
  ``grades_published`` false Canvas refuses a final grade (``submission.rb``
  ``can_grade_symbolic_status``: ``:moderation_in_progress``); a group assignment
  (``group_category_id``) without ``grade_group_students_individually`` gives one student's
  grade to the whole group, so the last student sent would decide everyone's grade. Each
  refuses the module's rows with a sentence naming the setting.
"""

from __future__ import annotations

from grader.checks.results import GradeRow
from grader.lms.canvas_late import canvas_deducts


def posted_points(row: GradeRow) -> float:
    """The points to send: the final score, or the score before the late deduction when
    Canvas's Late Policy makes that deduction itself on saving."""
    if row.late and row.late.get("applied_by") == "canvas" and row.raw_score is not None:
        return row.raw_score
    return row.score


def refusal(row: GradeRow, sub: dict, policy: dict | None) -> str:
    """Why this row must not be sent to this Canvas submission, or ``""``."""
    if sub.get("excused"):
        return ("excused in Canvas; no grade is posted over the excuse (remove the excuse in"
                " Canvas to grade it)")
    by_canvas = bool(row.late and row.late.get("applied_by") == "canvas")
    if canvas_deducts(policy):
        if row.late and not by_canvas and float(row.late.get("penalty") or 0) > 0:
            return ("the grade already holds the [late] penalty of course.toml, and Canvas's Late"
                    " Policy deducts again on every grade save (twice). Fix: pull and grade"
                    " again without [late] penalty_per_day; Canvas's policy is then used")
        if not by_canvas and sub.get("late"):
            return ("Canvas counts this submission late and its Late Policy will deduct, but"
                    " the batch was graded without that policy. Fix: pull and grade again so"
                    " the grade and its feedback follow it")
    elif by_canvas:
        return ("graded with Canvas's Late Policy, which Canvas no longer has: the score sent"
                " would carry no late deduction. Fix: pull and grade again")
    return ""


def assignment_refusal(assignment: dict) -> str:
    """Why no grade of this Canvas assignment can be sent, or ``""``."""
    aid = assignment.get("id")
    if assignment.get("anonymous_grading"):
        return (f"assignment {aid} uses anonymous grading: Canvas lists its submissions without"
                " their students, so no grade can be matched. Fix: turn anonymous grading off"
                " for it (Assignment > Edit), or enter these grades in SpeedGrader")
    if assignment.get("moderated_grading") and not assignment.get("grades_published"):
        return (f"assignment {aid} uses moderated grading and its grades are not published:"
                " Canvas refuses final grades until the moderator publishes them. Fix: publish"
                " the grades (Assignment > Moderate), then push again")
    if assignment.get("group_category_id") and not assignment.get("grade_group_students_individually"):
        return (f"assignment {aid} is a group assignment graded as a group: one student's grade"
                " would be given to the whole group (the last one sent wins). Fix: tick 'Assign"
                " grades to each student individually' in the assignment's settings")
    return ""


def resubmitted(pulled: dict | None, sub: dict) -> str:
    """Why the grade is for an older submission than Canvas now has, or ``""``."""
    if not pulled or not pulled.get("submitted_at") or not sub.get("submitted_at"):
        return ""
    if str(pulled["submitted_at"]) == str(sub["submitted_at"]) and \
            (pulled.get("attempt") is None or pulled.get("attempt") == sub.get("attempt")):
        return ""
    return (f"resubmitted in Canvas since the pull (attempt {sub.get('attempt')}, submitted"
            f" {sub.get('submitted_at')}); this grade is for attempt {pulled.get('attempt')}"
            f" ({pulled['submitted_at']}). Fix: pull and grade again")
