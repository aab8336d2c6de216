# Two commands: `make run` (set up and serve the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean help

help:
	@echo "make run    set up .venv, create the instance if new, serve on http://127.0.0.1:5000"
	@echo "make test   set up .venv and run the whole test suite"
	@echo "make lint   ruff"
	@echo "make bench  run the benchmarks (writes docs/benchmarks.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The plugin packages of examples/ (every folder with a pyproject.toml), installed
# as their authors install them; tests/examples/test_examples.py runs their tests.
EXAMPLES := $(wildcard examples/*/pyproject.toml)

$(STAMP): $(BIN)/python setup.cfg pyproject.toml $(EXAMPLES)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(if $(EXAMPLES),$(BIN)/python -m pip install --quiet --no-deps $(foreach p,$(EXAMPLES),-e $(dir $(p))))
	@touch $(STAMP)

# `meiqia init` is safe to run every time: on an instance that has its team it only
# brings the database up to date (what `meiqia db upgrade` does).
run: $(STAMP)
	$(BIN)/meiqia init
	$(BIN)/meiqia run

# One test process per core (at most 4): much of the suite waits on sockets, servers
# and Chromium, so two processes on two cores finish in about 6 minutes instead of 10.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	@for script in benchmarks/[a-z]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
