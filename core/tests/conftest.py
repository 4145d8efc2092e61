"""Shared fixtures of the engine's tests.

``executor`` runs a test on the in-process executors (local, threads); ``any_executor`` adds
the process pool, for the few tests whose behaviour must match there too (they fork, so they
stay few and small, and their tasks live at module level so workers can find them).
"""

from __future__ import annotations

import logging
import sys

import pytest

import plait.logging as plait_logging
from plait.engine.executors import LocalExecutor, ProcessExecutor, ThreadExecutor


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
