"""A small demo data set for a first `make run`."""
