# The two commands: `make demo` and `make test`. Both bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint format clean venv graphviz

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) core/pyproject.toml Makefile
	$(PY) -m pip install -q -e "core[test]" ruff
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/plait run examples/numbers.py --param n=10

test: $(STAMP) graphviz
	$(PY) -m pytest

# flow.visualize() and its tests need Graphviz's `dot`. Installed with apt-get when we are root
# on Debian/Ubuntu and it is missing; otherwise a hint (the tests that need it then skip).
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing graphviz (for flow.visualize)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; } \
	      || echo "Could not install graphviz; the visualize tests need it"; \
	  else \
	    echo "Graphviz's dot is not installed: apt-get install graphviz (or brew install graphviz)"; \
	  fi; \
	}

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
