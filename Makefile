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

.PHONY: demo test bench bench-quick lint format clean venv graphviz services-prometheus services-postgres

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Plait needs Python >= 3.11; run make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) core/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGIN_DIRS)) Makefile
	$(PY) -m pip install -q --disable-pip-version-check $(INSTALL)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/plait run examples/numbers.py --param n=10

test: $(STAMP) graphviz services-prometheus services-postgres
	$(PY) -m pytest
	@set -e; for d in $(PLUGIN_TEST_DIRS); do \
		echo "== $$d"; (cd $$d && $(CURDIR)/$(PY) -m pytest); \
	done

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

# plait-metrics' tests run a real Prometheus and Pushgateway (Debian's packages). Installed with
# apt-get when we are root on Debian/Ubuntu and they are missing; otherwise a hint (those tests
# then skip, saying why).
services-prometheus:
	@{ command -v prometheus && command -v prometheus-pushgateway; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing prometheus and prometheus-pushgateway (for plait-metrics' tests)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        prometheus prometheus-pushgateway >/dev/null; } \
	      || echo "Could not install prometheus; plait-metrics' Prometheus tests need it"; \
	  else \
	    echo "Prometheus is not installed: apt-get install prometheus prometheus-pushgateway"; \
	  fi; \
	}

# plait-sql's tests start a throwaway PostgreSQL server (initdb + pg_ctl in a temporary
# directory): they need the server programs, from Debian's `postgresql` when we are root and
# they are missing (found on PATH or in /usr/lib/postgresql/*/bin); otherwise a hint.
services-postgres:
	@{ command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; } \
	  || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing postgresql (for plait-sql's tests)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
	      || echo "Could not install postgresql; plait-sql's PostgreSQL tests need it"; \
	  else \
	    echo "PostgreSQL's server is not installed: apt-get install postgresql (or brew install postgresql)"; \
	  fi; \
	}

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
