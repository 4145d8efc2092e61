"""Shared fixtures of the engine's tests.

``executor`` runs a test on the in-process executors (local, threads); ``any_executor`` adds
the process pool, for the few tests whose behaviour must match there too (they fork, so they
stay few and small, and their tasks live at module level so workers can find them).
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from pathlib import Path

import pytest

# The plugin-discovery cache (plait.hooks.discovery) of test processes stays out of ~/.cache.
if "PLAIT_TEST_CACHE" not in os.environ:
    import tempfile as _tempfile

    os.environ["PLAIT_TEST_CACHE"] = os.environ["XDG_CACHE_HOME"] = _tempfile.mkdtemp(prefix="plait-test-cache-")

import plait.logging as plait_logging
from plait.engine.executors import LocalExecutor, ProcessExecutor, ThreadExecutor
from plait.hooks import manager

pytest_plugins = ["pytester"]


def _make(name: str):
    if name == "local":
        return LocalExecutor()
    if name == "threads":
        return ThreadExecutor(max_workers=4)
    return ProcessExecutor(max_workers=2)


@pytest.fixture(params=["local", "threads"])
def executor(request):
    """An in-process executor instance: LocalExecutor, then ThreadExecutor."""
    return _make(request.param)


@pytest.fixture(params=["local", "threads", "processes"])
def any_executor(request):
    """Every built-in executor, the process pool included."""
    return _make(request.param)


@pytest.fixture(autouse=True)
def restore_logging():
    """Undo what a run did to logging: the ``plait`` logger's handlers, level and the
    once-per-process configuration flag, so each test starts from the same place."""
    plait_logger = logging.getLogger("plait")
    handlers = list(plait_logger.handlers)
    level = plait_logger.level
    propagate = plait_logger.propagate
    configured = plait_logging._configured
    stdout = sys.stdout
    yield
    plait_logger.handlers[:] = handlers
    plait_logger.setLevel(level)
    plait_logger.propagate = propagate
    plait_logging._configured = configured
    if isinstance(sys.stdout, plait_logging._StdoutRouter) and not isinstance(stdout, plait_logging._StdoutRouter):
        sys.stdout = stdout


def _installed_plugins() -> str:
    import importlib.metadata

    return ",".join(sorted({ep.name for ep in importlib.metadata.entry_points(group="plait")}))


#: Plugins installed in this environment (``make test`` installs every plugins/* distribution):
#: the core's tests switch them off, so they see only the plugins they make themselves.
_INSTALLED_PLUGINS = _installed_plugins()


@pytest.fixture(autouse=True)
def _fresh_plugin_state(monkeypatch):
    """Each test discovers plugins, reads config and sets up logging afresh, without the
    plugins installed in the environment."""
    from plait import config

    for var in ("PLAIT_LOAD_PLUGINS", "PLAIT_DISABLE_PLUGINS", "PLAIT_TRACE_PLUGINS", "PLAIT_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    if _INSTALLED_PLUGINS:
        monkeypatch.setenv("PLAIT_DISABLE_PLUGINS", _INSTALLED_PLUGINS)
    manager.reset_hooks()
    config.reset_config()
    plait_logger = logging.getLogger("plait")
    level = plait_logger.level
    plait_logger.setLevel(logging.INFO)  # other commands (backfill) quieten it for the process
    yield
    plait_logger.setLevel(level)
    manager.reset_hooks()
    config.reset_config()
    for handler in [h for h in plait_logger.handlers if isinstance(h, plait_logging.PluginHandler)]:
        plait_logger.removeHandler(handler)
    plait_logging._configured = False


@pytest.fixture
def install_dist(tmp_path, monkeypatch):
    """Make an installed distribution on sys.path: ``install_dist(name, modules, entry_points)``.

    It is a real ``*.dist-info`` folder next to real modules, found by importlib.metadata
    exactly like a pip-installed one.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    created_modules: list[str] = []

    def install(dist: str, modules: dict[str, str], entry_points: dict[str, str], version: str = "1.0") -> Path:
        for name, source in modules.items():
            (site / f"{name}.py").write_text(textwrap.dedent(source))
            created_modules.append(name)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[plait]\n{lines}")
        return info

    yield install
    import sys

    for name in created_modules:
        sys.modules.pop(name, None)
