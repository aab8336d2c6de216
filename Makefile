# Two commands: `make run` (set up and serve the demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where `make run` serves (`make run PORT=8080 HOST=0.0.0.0`; `meiqia run` also
# reads MEIQIA_PORT and MEIQIA_HOST).
HOST ?= 127.0.0.1
PORT ?= 5000
# pip's and setuptools' output goes here; printed in full only when a step fails.
LOG := $(VENV)/install.log
QUIETLY := sh scripts/quietly.sh

.PHONY: run test lint bench clean help

help:
	@echo "make run    set up .venv, create the instance if new, serve on http://$(HOST):$(PORT)"
	@echo "            (another port: make run PORT=8080)"
	@echo "make test   set up .venv and run the whole test suite"
	@echo "make lint   ruff"
	@echo "make bench  run the benchmarks (writes docs/benchmarks.md)"

$(BIN)/python:
	@$(QUIETLY) $(VENV).log "creating $(VENV)" $(PYTHON) -m venv $(VENV)
	@mv $(VENV).log $(VENV)/venv.log

# The plugin packages of examples/ (every folder with a pyproject.toml), installed
# as their authors install them; tests/examples/test_examples.py runs their tests.
EXAMPLES := $(wildcard examples/*/pyproject.toml)

# One line per step; the full pip log is $(LOG), printed if a step fails.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml $(EXAMPLES)
	@$(QUIETLY) $(LOG) "installing meiqia, its dependencies and the example plugins into $(VENV) (log: $(LOG))" \
		sh -c '$(BIN)/python -m pip install --upgrade pip && $(BIN)/python -m pip install -e ".[test]"$(if $(EXAMPLES), && $(BIN)/python -m pip install --no-deps $(foreach p,$(EXAMPLES),-e $(dir $(p))))'
	@touch $(STAMP)

# `meiqia init` is safe to run every time: on an instance that has its team it only
# brings the database up to date (what `meiqia db upgrade` does).
run: $(STAMP)
	@$(BIN)/meiqia init
	@$(BIN)/meiqia run --host $(HOST) --port $(PORT)

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
