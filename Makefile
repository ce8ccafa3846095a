# One task runner: `make demo` (main job), `make test` (install everything + all checks + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint types unit docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## the main job, end to end, on the embedded default (a local repository laid out like CVMFS)
demo: $(STAMP)
	$(BIN)/python docs/examples/pipeline.py --workdir demo-run

lint: $(STAMP)
	$(BIN)/ruff format --check src tests tools docs/examples
	$(BIN)/ruff check src tests tools docs/examples

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

## install everything and run the whole suite (slow tests included): what .ci/run calls
test: lint types unit

bench: $(STAMP)
	$(BIN)/python tools/bench/verify.py

clean:
	rm -rf $(VENV) demo-run dist site .pytest_cache .mypy_cache .ruff_cache
