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

.PHONY: demo test bench bench-quick lint format clean venv services graphviz services-prometheus services-postgres

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Plait needs Python >= 3.11; run make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) core/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGIN_DIRS)) Makefile
	$(PY) -m pip install -q --disable-pip-version-check $(INSTALL)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/plait run examples/numbers.py --param n=10

test: $(STAMP) services
	$(PY) -m pytest
	@set -e; for d in $(PLUGIN_TEST_DIRS); do \
		echo "== $$d"; (cd $$d && $(CURDIR)/$(PY) -m pytest); \
	done

# Debian packages some tests use: graphviz (`dot`, for flow.visualize), postgresql (initdb and
# pg_ctl, for plait-sql's throwaway server), prometheus and prometheus-pushgateway (for
# plait-metrics), podman, runc, busybox-static, debootstrap and docker-registry (for
# plait-docker: a Podman service of the tests' own, images built from a static busybox and a
# Debian root filesystem, a local registry to push to). What is missing is installed in one apt-get call when we are root on
# Debian/Ubuntu. Elsewhere those tests skip and say why; under CI (CI set) a missing package
# fails the run instead, so CI never passes by skipping them.
services:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	{ command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; } \
	  || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v prometheus-pushgateway >/dev/null 2>&1 || missing="$$missing prometheus-pushgateway"; \
	command -v podman >/dev/null 2>&1 || missing="$$missing podman"; \
	command -v runc >/dev/null 2>&1 || missing="$$missing runc"; \
	{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing="$$missing busybox-static"; \
	{ command -v debootstrap || [ -x /usr/sbin/debootstrap ]; } >/dev/null 2>&1 || missing="$$missing debootstrap"; \
	[ -x /usr/bin/docker-registry ] || missing="$$missing docker-registry"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian packages for the tests:$$missing"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        $$missing >/dev/null; } || { echo "Could not install:$$missing"; [ -z "$$CI" ] || exit 1; }; \
	  else \
	    echo "Not installed:$$missing (apt-get install$$missing); the tests that need them skip"; \
	    [ -z "$$CI" ] || exit 1; \
	  fi; \
	fi

# older names of the target above
graphviz services-prometheus services-postgres: services

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
