"""plait-docker's tests run against a real Podman service (``plait_docker.testing``)."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _plait_logs_propagate():
    # Plait's default handler is attached to the "plait" logger at the first flow run; caplog
    # listens on the root logger, which "plait" records reach as long as they propagate.
    logger = logging.getLogger("plait")
    old = logger.propagate
    logger.propagate = True
    yield
    logger.propagate = old


@pytest.fixture
def engine(docker_env):
    """The low-level Docker API client on the session's Podman service."""
    from plait_docker import get_client

    return get_client().api


@pytest.fixture
def no_containers_left(engine):
    """Fails the test if it leaves a container of plait-docker's behind (and removes them, so
    that the tests after it are not failed for what this one left)."""
    yield
    left = engine.containers(all=True, filters={"label": "plait.managed"})
    for container in left:
        engine.remove_container(container["Id"], force=True)
    assert left == [], f"containers left behind: {[c['Names'] for c in left]}"
