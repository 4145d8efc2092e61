# The two commands: `make demo` and `make test`. Both bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint format clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) core/pyproject.toml Makefile
	$(PY) -m pip install -q -e "core[test]" ruff
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/plait run examples/numbers.py --param n=10

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check core tests benchmarks examples
	$(BIN)/ruff format --check core tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format core tests benchmarks examples
	$(BIN)/ruff check --fix core tests benchmarks examples

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
