from __future__ import annotations

import logging

import pytest


@pytest.fixture
def plait_plugin():
    from plait_slack import plugin

    return plugin


@pytest.fixture
def slack_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Records of plait-slack's own logger (and the engine's), at DEBUG and up."""
    caplog.set_level(logging.DEBUG, logger="plait.plugins.slack")
    caplog.set_level(logging.DEBUG, logger="plait")
    caplog.set_level(logging.DEBUG, logger="slack_sdk")
    return caplog


@pytest.fixture
def sleeps() -> list[float]:
    """An injected ``sleep`` that records instead of waiting."""
    return []


@pytest.fixture
def no_sleep(sleeps: list[float]):
    return sleeps.append


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
