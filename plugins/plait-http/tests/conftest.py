from __future__ import annotations

import logging
import socket

import pytest


@pytest.fixture
def plait_plugin():
    from plait_http import plugin

    return plugin


@pytest.fixture
def http_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="plait")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    return caplog


@pytest.fixture
def refused_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
