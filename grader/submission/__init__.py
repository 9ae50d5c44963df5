"""Level 3, one submission in, a graded row out: validate, restore, parameters, execute in
the sandbox, export, vet and score the artifacts (:func:`grading.grade_submission`)."""
