"""Level 5, a whole class: batch grading, workers, resume, similarity, manual marks, LMS export."""
