# Quick start: `make run` (API + worker on embedded PostgreSQL/Redis), `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest clean bench bench-quick schema

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/helpdesk run

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# helpdesk/db/schema.sql after adding a migration (tests/db/test_schema.py compares).
schema: $(STAMP)
	$(BIN)/python -m helpdesk.db.schema > helpdesk/db/schema.sql.new
	mv helpdesk/db/schema.sql.new helpdesk/db/schema.sql

# Benchmarks against same-run baselines (issue 8); results in bench/results/.
bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
