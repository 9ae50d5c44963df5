"""Level 5, a whole class: batch grading, workers, resume, the class outputs, similarity,
manual marks, LMS export."""
