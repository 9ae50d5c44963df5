"""Level 7, what people read: per-student feedback, the class report, the gradebook files."""
