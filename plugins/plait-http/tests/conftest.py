from __future__ import annotations

import logging

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
