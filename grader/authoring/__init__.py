"""Level 3, the course release: solution cells, student notebooks, the in-notebook self-check."""
