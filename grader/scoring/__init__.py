"""Level 5, what decides the grade, outside the student's kernel: export the rubric's objects,
vet a saved model before loading it, and score in a child process (or a warm scoring server)."""
