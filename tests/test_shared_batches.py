"""The shared gradings refuse a reader that would make a second worker grade them again."""

from __future__ import annotations

import pytest
from shared_batches import shared_group, shared_mark


def test_a_reader_without_the_shared_group_is_refused_before_grading(lesson_graded):
    with pytest.raises(AssertionError, match=r"shared_mark\('01', 'solution'\)"):
        lesson_graded("01", "solution")


@pytest.mark.xdist_group("another")
@shared_mark("02", "blank")
def test_a_reader_with_another_group_too_is_refused(lesson_graded):
    with pytest.raises(AssertionError, match="'another', 'lesson02-blank'"):
        lesson_graded("02", "blank")


@shared_mark("03", "solution")
def test_a_reader_of_another_grading_is_refused(lesson_graded):
    with pytest.raises(AssertionError, match=r"shared_mark\('04', 'solution'\)"):
        lesson_graded("04", "solution")
    with pytest.raises(AssertionError):
        shared_group("03", "notebook")
