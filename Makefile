# Plait's commands. The README's two are `make demo` and `make test`; both bootstrap .venv
# on a fresh machine (Python >= 3.11 on PATH as python3, or PYTHON=/path/to/python).
#
#   make demo    create .venv, install the core only (what the demo needs), run examples/numbers.py
#   make test    create .venv, install every distribution with its test extra and ruff, run every suite
#   make bench   print the benchmark tables (about 2 minutes; bench-quick: about 15 seconds)
#   make bench-server  plait-server through its API on SQLite and PostgreSQL (a few minutes)
#   make bench-orchestration  runs through agents, the reporter's cost, the scheduler (a few minutes)
#   make bench-docker  a flow run's start-up in a container (the Docker agent, Podman) vs a local agent
#   make fuzz    the long schemathesis run against a real plait-server (10,000 requests)
#   make chaos   kill -9 200 flow-run processes at random moments, two agents race for 200 runs, the server
#                away 60 s in the middle of a 10,000-task run (make test: 50 kills, 60 runs, 8 s in 3,000 tasks)
#   make soak    3 scheduler replicas, 500 flows on 1 s schedules, 5 minutes on PostgreSQL
#   make server-demo   a server with a demo database, an agent and scheduled flows (Ctrl-C stops it all)
#   make screenshots   docs/ui/*.png: the web UI's pages from a demo database, in headless Chromium
#   make bench-ui      the web UI's page timings (Navigation Timing in Chromium) and live-update delay
#   make vendor-ui     download the UI's pinned JavaScript (htmx, htmx-ext-sse, dagre) from npm again
#   make lint    ruff check and format check (make format fixes)
#   make clean   remove .venv and caches

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

# Every plugin folder with a pyproject.toml is installed (editable, with its test extra) and
# its tests run from its own folder, so a new plugin needs no change here.
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
PLUGIN_TEST_DIRS := $(patsubst %/tests,%,$(wildcard $(addsuffix /tests,$(PLUGIN_DIRS))))
# The orchestration server (server/, distribution plait-server) installs and tests the same way.
SERVER_DIR := server
INSTALL := -e "core[test]" $(foreach d,$(PLUGIN_DIRS),-e "$(d)[test]") -e "$(SERVER_DIR)[test]" ruff
# `make demo` needs the core alone (no plugins, no test tools): a fresh machine is ready in seconds.
DEMO_INSTALL := -e core
LINT_PATHS := $(wildcard core server tests benchmarks examples plugins cookiecutter-plugin)

.PHONY: demo test bench bench-quick bench-server bench-orchestration bench-docker lint format clean venv services graphviz services-prometheus services-postgres fuzz chaos soak server-demo screenshots bench-ui vendor-ui

# pip >= 24: the pip that Python 3.11's venv bundles (23.2) does not let an editable
# distribution installed with extras (`-e "server[test]"`) satisfy another one's plain
# requirement on it (plait-docker's test extra needs plait-server) and looks for it on PyPI.
PIP_MIN := pip>=24

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Plait needs Python >= 3.11; run make PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) core/pyproject.toml $(addsuffix /pyproject.toml,$(PLUGIN_DIRS)) $(SERVER_DIR)/pyproject.toml Makefile
	$(PY) -m pip install -q --disable-pip-version-check "$(PIP_MIN)"
	$(PY) -m pip install -q --disable-pip-version-check $(INSTALL)
	touch $(STAMP) $(DEMO_STAMP)

# The full install includes the demo's; after `make test`, `make demo` installs nothing.
$(DEMO_STAMP): $(PY) core/pyproject.toml Makefile
	$(PY) -m pip install -q --disable-pip-version-check $(DEMO_INSTALL)
	touch $(DEMO_STAMP)

venv: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/plait run examples/numbers.py --param n=10

test: $(STAMP) services
	$(PY) -m pytest
	@set -e; for d in $(PLUGIN_TEST_DIRS) $(SERVER_DIR); do \
		echo "== $$d"; (cd $$d && $(CURDIR)/$(PY) -m pytest); \
	done

# schemathesis against a real server: 10,000 generated requests on SQLite and 10,000 on
# PostgreSQL, zero 5xx and no tracebacks (`make test` runs the same test with 2,000 on SQLite).
fuzz: $(STAMP) services
	cd $(SERVER_DIR) && PLAIT_FUZZ_REQUESTS=10000 PLAIT_FUZZ_BACKENDS=sqlite,postgres \
		$(CURDIR)/$(PY) -m pytest -q -s tests/test_fuzz.py -p no:cacheprovider

# Orchestration's long fault and soak runs (`make test` runs shorter versions of both).
chaos: $(STAMP) services
	cd $(SERVER_DIR) && PLAIT_CHAOS_KILLS=200 PLAIT_CHAOS_RUNS=200 PLAIT_OUTAGE_SECONDS=60 PLAIT_OUTAGE_TASKS=10000 \
		$(CURDIR)/$(PY) -m pytest -q tests/test_chaos.py tests/test_outage.py -p no:cacheprovider

soak: $(STAMP) services
	cd $(SERVER_DIR) && PLAIT_SOAK_SECONDS=300 PLAIT_SOAK_FLOWS=500 $(CURDIR)/$(PY) -m pytest -q -s tests/test_soak.py -p no:cacheprovider

# Debian packages some tests use: graphviz (`dot`, for flow.visualize), postgresql (initdb and
# pg_ctl, for plait-sql's throwaway server), prometheus and prometheus-pushgateway (for
# plait-metrics), podman, runc, busybox-static, debootstrap and docker-registry (for
# plait-docker: a Podman service of the tests' own, images built from a static busybox and a
# Debian root filesystem, a local registry to push to), chromium and chromium-driver (the web
# UI's tests and screenshots drive a real headless Chromium). What is missing is installed in one
# apt-get call when we are root on Debian/Ubuntu. Elsewhere those tests skip and say why; under CI (CI set) a missing package
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
	{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || missing="$$missing chromium chromium-driver"; \
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

# State writes, run creation, a 10,000-item map's states and start-up, through a real
# `plait server start` process (benchmarks/bench_server.py; --quick for a smaller run).
bench-server: $(STAMP) services
	$(PY) benchmarks/bench_server.py

# A 10,000-item map through an agent (SQLite, PostgreSQL), the reporter's cost, scheduled start
# to Running, the scheduler's passes over 10,000 flows (benchmarks/bench_orchestration.py).
bench-orchestration: $(STAMP) services
	$(PY) benchmarks/bench_orchestration.py

# A flow run's start-up through the Docker agent (a container on a Podman service of its own)
# vs the local agent, one run at a time (benchmarks/bench_docker_agent.py; --quick: 10 runs).
bench-docker: $(STAMP) services
	$(PY) benchmarks/bench_docker_agent.py
# The web UI: a demo server to click through, its screenshots, its timings, its vendored JavaScript.
server-demo: $(STAMP)
	$(PY) server/scripts/server_demo.py

screenshots: $(STAMP) services
	$(PY) server/scripts/screenshots.py

bench-ui: $(STAMP) services
	$(PY) benchmarks/bench_ui.py

vendor-ui:
	server/scripts/vendor-ui.sh

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
