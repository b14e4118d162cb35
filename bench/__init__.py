"""Benchmarks of the helpdesk against baselines measured in the same run (issue 8).

`python -m bench` (`make bench`, `make bench-quick`) starts its own PostgreSQL and Redis
(or uses HELPDESK_DATABASE_URL / HELPDESK_REDIS_URL), migrates a fresh database, runs the
real API (`helpdesk serve`) and worker (`helpdesk worker`) as separate processes, drives
them over loopback with an HTTP client in this process, and writes
`bench/results/<date>-<host>.json` and `.md`. Nothing here is part of the test suite and
nothing asserts a wall-clock threshold: the numbers are reported, never checked.
"""
