"""Level 0, shared by every stage: errors, paths, child processes, the results key."""
