# Plait's commands. The README's two are `make demo` and `make test`; both bootstrap .venv
# on a fresh machine (Python >= 3.11 on PATH as python3, or PYTHON=/path/to/python).
#
#   make demo    create .venv, install everything, run examples/numbers.py with `plait run`
#   make test    create .venv, install everything with test dependencies, run the whole suite
#   make bench   print the benchmark tables (about 2 minutes; bench-quick: about 15 seconds)
#   make lint    ruff check and format check (make format fixes)
#   make clean   remove .venv and caches

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

# Every plugin folder with a pyproject.toml is installed (editable, with its test extra) and
# its tests run from its own folder, so a new plugin needs no change here.
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
PLUGIN_TEST_DIRS := $(patsubst %/tests,%,$(wildcard $(addsuffix /tests,$(PLUGIN_DIRS))))
INSTALL := -e "core[test]" $(foreach d,$(PLUGIN_DIRS),-e "$(d)[test]") ruff
LINT_PATHS := $(wildcard core tests benchmarks examples plugins cookiecutter-plugin)

.PHONY: demo test bench bench-quick lint format clean venv

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Plait needs Python >= 3.11; run make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) core/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGIN_DIRS)) Makefile
	$(PY) -m pip install -q --disable-pip-version-check $(INSTALL)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/plait run examples/numbers.py --param n=10

test: $(STAMP)
	$(PY) -m pytest
	@set -e; for d in $(PLUGIN_TEST_DIRS); do \
		echo "== $$d"; (cd $$d && $(CURDIR)/$(PY) -m pytest); \
	done

bench: $(STAMP)
	$(PY) benchmarks/run.py

bench-quick: $(STAMP)
	$(PY) benchmarks/run.py --quick

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
