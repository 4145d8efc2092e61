"""Fixtures of the plait-dask tests: one real LocalCluster (worker processes on 127.0.0.1) shared
by the session, and the engine tests' logging reset."""

from __future__ import annotations

import logging

import pytest

import plait.logging as plait_logging


@pytest.fixture(scope="session")
def cluster():
    """A LocalCluster with 2 worker processes (2 threads each, resource GPU=2), bound to 127.0.0.1."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=2,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        resources={"GPU": 2},
    ) as cluster:
        yield cluster


@pytest.fixture
def address(cluster):
    """The shared cluster's scheduler address, for ``DaskExecutor(address)``."""
    return cluster.scheduler_address


@pytest.fixture(autouse=True)
def restore_logging():
    """Undo what a run did to the ``plait`` logger (handlers, level, configured flag)."""
    plait_logger = logging.getLogger("plait")
    handlers = list(plait_logger.handlers)
    level = plait_logger.level
    configured = plait_logging._configured
    yield
    plait_logger.handlers[:] = handlers
    plait_logger.setLevel(level)
    plait_logging._configured = configured


@pytest.fixture
def plait_plugin():
    """The plugin under test, for ``plait.testing``'s fixtures."""
    from plait_dask import plugin

    return plugin
