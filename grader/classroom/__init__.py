"""Level 8, a whole class: batch grading, workers, resume, the class outputs, late work,
similarity, manual marks. The course platforms sit above it, in :mod:`grader.lms`."""
