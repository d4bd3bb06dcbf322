# cambio — the few commands a developer needs. Needs only make and Python >= 3.11.
#
#   make run     set up .venv and run the exchange (cambio serve, data in ./cambio-data)
#   make test    set up .venv with the dev extras and run the test suite
#   make demo    set up .venv and replay the demo stream through the engine
#   make lint    ruff check, ruff format --check, mypy --strict src/
#   make bench   the engine and journal benchmarks (bench/engine.py, bench/journal.py)
#   make soak    kill -9 / recover rounds against a real server (scripts/crash_soak.py)
#
# The virtualenv is built once; stamp files inside it (newer than pyproject.toml) make
# re-runs instant, and editing pyproject.toml re-installs. Set PYTHON to choose the
# interpreter used to create it (default: python3.11, else python3).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.cambio-run.stamp
DEV_STAMP := $(VENV)/.cambio-dev.stamp

.DEFAULT_GOAL := help
.PHONY: help run demo test lint bench soak venv dev clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

run: $(RUN_STAMP)
	$(BIN)/cambio serve --data cambio-data

demo: $(RUN_STAMP)
	$(BIN)/cambio demo

test: $(DEV_STAMP)
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src/

bench: $(DEV_STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/journal.py

soak: $(DEV_STAMP)
	$(BIN)/python scripts/crash_soak.py --rounds 200

venv: $(RUN_STAMP)
dev: $(DEV_STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# A missing (or dangling) interpreter means no usable venv: (re)create it from scratch.
$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: no python3 found; install Python >= 3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: $(PYTHON) is older than 3.11; run: make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv --clear $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

# The dev install is a superset of the plain one, so it satisfies `run` too.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@ $(RUN_STAMP)
