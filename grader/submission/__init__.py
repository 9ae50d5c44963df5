"""Level 6, one submission in, a graded row out: validate, restore, inject parameters, then the
steps of :mod:`grader.submission.pipeline` run the kernel (:mod:`grader.kernel`) and score its
artifacts outside it (:mod:`grader.scoring`); :func:`grading.grade_submission` is the entry."""
