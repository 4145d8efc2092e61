"""Fixtures: a real Prometheus and Pushgateway on free local ports, a StatsD recorder, flows.

Prometheus and the Pushgateway are Debian's packages (``make services-prometheus`` installs
them); the tests that need them skip, with the reason, only when the binaries are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import plait_metrics
import pytest

from plait.config import reset_config

START_DEADLINE = 60.0  # seconds a service gets to become ready
QUERY_DEADLINE = 60.0  # seconds a series gets to appear in Prometheus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_until(condition: Callable[[], Any], deadline: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        try:
            last = condition()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    pytest.fail(f"timed out after {deadline:g} s waiting for {what}; last result: {last!r}")


class Service:
    """A server process on 127.0.0.1:port; ``stop()`` ends it."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            return http_get(f"{self.url}/-/ready", timeout=1.0) is not None

        wait_until(ready, START_DEADLINE, f"{self.name} on {self.url} to be ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: run `make services-prometheus` (apt-get install {name})")
    return path


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A Prometheus Pushgateway on a free local port."""
    binary = _binary("prometheus-pushgateway")
    tmp = tmp_path_factory.mktemp("pushgateway")
    port = free_port()
    service = Service(
        "prometheus-pushgateway",
        [binary, f"--web.listen-address=127.0.0.1:{port}", f"--persistence.file={tmp / 'pushgateway.data'}"],
        port,
        tmp / "pushgateway.log",
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def endpoint_port() -> int:
    """The port the plugin's /metrics endpoint uses in the tests Prometheus scrapes."""
    return free_port()


class Prometheus(Service):
    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (``/api/v1/query``)."""
        body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def wait_for(self, promql: str, expected: dict[tuple[tuple[str, str], ...], float], labels: list[str]) -> None:
        """Poll ``promql`` until its series, keyed by ``labels``, have exactly the ``expected`` values."""

        def seen() -> dict[tuple[tuple[str, str], ...], float]:
            out = {}
            for series in self.query(promql):
                key = tuple((k, series["metric"].get(k, "")) for k in labels)
                out[key] = float(series["value"][1])
            return out

        def matches() -> bool:
            return seen() == expected

        wait_until(matches, QUERY_DEADLINE, f"Prometheus to show {promql} = {expected}")


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, pushgateway: Service, endpoint_port: int
) -> Iterator[Prometheus]:
    """Prometheus scraping the Pushgateway and the plugin's endpoint every second."""
    binary = _binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: pushgateway\n"
        "    honor_labels: true\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{pushgateway.port}']\n"
        "  - job_name: plait-endpoint\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{endpoint_port}']\n"
    )
    port = free_port()
    service = Prometheus(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
        tmp / "prometheus.log",
    )
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


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
