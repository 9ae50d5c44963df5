"""Level 2, the course release: solution cells, student notebooks, the in-notebook self-check."""
