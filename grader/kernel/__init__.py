"""Level 4, what runs as the student: the kernel, its sandbox (one class per mode: bubblewrap,
a leased uid, none), its control groups, the course code it may see, and the clean-up after it.

Nothing here decides a grade: :mod:`grader.scoring` reads what the kernel left behind.
"""
