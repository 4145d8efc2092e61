"""Fixtures: a real Prometheus and Pushgateway on free local ports, a StatsD recorder, flows.

Prometheus and the Pushgateway are Debian's packages (``make services-prometheus`` installs
them); the tests that need them skip, with the reason, only when the binaries are missing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import plait_metrics
import pytest
from plait_metrics.testing import (
    PrometheusServer,
    ServiceProcess,
    find_binary,
    free_port,
    run_prometheus,
    run_pushgateway,
)

from plait.config import reset_config


def _binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        pytest.skip(f"{name} is not installed: run `make services-prometheus` (apt-get install {name})")
    return path


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A Prometheus Pushgateway on a free local port."""
    binary = _binary("prometheus-pushgateway")
    with run_pushgateway(tmp_path_factory.mktemp("pushgateway"), binary) as service:
        yield service


@pytest.fixture(scope="session")
def endpoint_port() -> int:
    """The port the plugin's /metrics endpoint uses in the tests Prometheus scrapes."""
    return free_port()


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, pushgateway: ServiceProcess, endpoint_port: int
) -> Iterator[PrometheusServer]:
    """Prometheus scraping the Pushgateway and the plugin's endpoint every second."""
    binary = _binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    with run_prometheus(tmp, [pushgateway.address], [f"127.0.0.1:{endpoint_port}"], binary=binary) as service:
        yield service


class UdpRecorder:
    """A UDP socket on 127.0.0.1 that keeps every datagram it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.datagrams: list[bytes] = []

    def receive(self, count: int, deadline: float = 10.0) -> list[bytes]:
        """Wait for ``count`` more datagrams (failing after ``deadline`` seconds)."""
        self.sock.settimeout(deadline)
        got = []
        for _ in range(count):
            try:
                got.append(self.sock.recv(65535))
            except TimeoutError:
                pytest.fail(f"only {len(got)} of {count} StatsD datagrams arrived within {deadline:g} s: {got!r}")
        self.datagrams += got
        return got

    def receive_lines(self, count: int, deadline: float = 10.0) -> list[bytes]:
        """Wait for datagrams until they hold ``count`` lines in all; returns the datagrams."""
        got: list[bytes] = []
        while sum(d.count(b"\n") + 1 for d in got) < count:
            got += self.receive(1, deadline)
        return got

    def lines(self, count: int) -> list[str]:
        """The lines of the next ``count`` datagrams."""
        return [line for d in self.receive(count) for line in d.decode().split("\n")]

    def nothing_more(self) -> bool:
        self.sock.settimeout(0.2)
        try:
            extra = self.sock.recv(65535)
        except TimeoutError:
            return True
        self.datagrams.append(extra)
        return False


@pytest.fixture
def statsd() -> Iterator[UdpRecorder]:
    recorder = UdpRecorder()
    yield recorder
    recorder.sock.close()


@pytest.fixture
def plait_plugin() -> object:
    """The plugin under test, for plait.testing's fixtures."""
    from plait_metrics import plugin

    return plugin


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plait_hooks: object) -> Iterator[None]:
    """Every test: only this plugin installed (strict mode), an empty config, the plugin off.

    ``flow.run()`` then calls the plugin's hooks through the real plugin manager, as in a
    user's process; the settings come from ``set_settings`` or ``plait_metrics.start(...)``.
    """
    config = tmp_path / "plait-config.toml"
    config.write_text("")
    monkeypatch.setenv("PLAIT_CONFIG", str(config))
    for name in list(os.environ):
        if name.startswith("PLAIT__PLUGINS__METRICS__"):
            monkeypatch.delenv(name)
    reset_config()
    plait_metrics.stop()
    yield
    plait_metrics.stop()
    reset_config()


@pytest.fixture
def set_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``set_settings(port="0", ...)``: ``[plugins.metrics]`` keys as ``PLAIT__PLUGINS__METRICS__*``."""

    def set_keys(**keys: str) -> None:
        for key, value in keys.items():
            monkeypatch.setenv(f"PLAIT__PLUGINS__METRICS__{key.upper()}", value)
        reset_config()

    return set_keys
