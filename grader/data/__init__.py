"""Level 1, the data a kernel may read: the private hold-out kept from it, and the kernel copy
of the datasets (fast mode's written once per machine and verified at every use)."""
