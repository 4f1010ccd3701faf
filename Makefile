# Two commands for newcomers: `make demo` (set up + run the main job) and `make test`;
# `make lint` is what CI runs before the tests.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test system-deps lint bench bench-trust

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

# Issue 9's benchmark in one command (about 1 h 15 min on 2 cores): backtests, Prosimos truth
# (in its own venv, since Prosimos pins pandas < 3), the helpdesk and order-to-cash loops
# against their counterfactual truth, and canaries; then the page. BPI 2012 and the Prosimos
# model come from ../shared/data: without it the backtests leave BPI 2012 out and the Prosimos
# step says why it cannot run (its failure does not stop the rest: the leading "-").
PROSIMOS_VENV ?= /tmp/prosimos-venv
bench-trust: setup
	test -x $(PROSIMOS_VENV)/bin/python || ($(PY) -m venv $(PROSIMOS_VENV) && $(PROSIMOS_VENV)/bin/pip install -q prosimos)
	$(BIN)/python benchmarks/bench_backtests.py --bootstrap 5 --replications 20 --write
	-PROSIMOS_PYTHON=$(PROSIMOS_VENV)/bin/python $(BIN)/python benchmarks/bench_prosimos_truth.py --seeds 1 2 3 4 5 6 --cases 3000 --bootstrap 5 --replications 5 --truth-runs 20 --write
	-PROSIMOS_PYTHON=$(PROSIMOS_VENV)/bin/python $(BIN)/python benchmarks/bench_prosimos_truth.py --seeds 1 2 3 4 5 6 --cases 3000 --bootstrap 5 --replications 5 --truth-runs 20 --slow "W_Beoordelen fraude=6" --write
	$(BIN)/python benchmarks/bench_counterfactual.py --seeds 20 --regimes default,second-line-bottleneck,unreliable-bot,overload,nothing-helps --write
	$(BIN)/python benchmarks/bench_o2c_truth.py --seeds 20 --regimes default,risky-auto-approve,nothing-helps --write
	$(BIN)/python benchmarks/bench_canary.py --seeds 20 --write
	$(BIN)/python benchmarks/assemble.py
