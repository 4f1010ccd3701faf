# Two commands for newcomers: `make demo` (set up + run the main job) and `make test`;
# `make lint` is what CI runs before the tests.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test system-deps lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev,postgres]'
	touch $@

demo: setup
	$(BIN)/closedloop demo --yes

system-deps:
	bash scripts/install-system-deps.sh

test: setup system-deps
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check closedloop tests app.py benchmarks scripts

# Each section of docs/benchmarks.md names the command that reproduces it (they need
# ../shared/data and take minutes to an hour); this target re-assembles the page.
bench: setup
	$(BIN)/python benchmarks/assemble.py
