"""Level 0, shared by every stage: errors, paths, the course file, student ids, CSV cells,
process trees (limits, clean-up, orphan guard, thread pools), the results key."""
