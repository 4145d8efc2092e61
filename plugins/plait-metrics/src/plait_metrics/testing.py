"""Test helpers: a real Prometheus and Pushgateway on free ports of 127.0.0.1.

For this plugin's tests and for end-to-end tests elsewhere (a flow that must "show up in
Prometheus"). They need the ``prometheus`` and ``prometheus-pushgateway`` programs (Debian's
packages; ``make services-prometheus``); ``find_binary`` returns ``None`` when one is missing,
so a test can skip with the reason. Nothing here needs pytest::

    from plait_metrics.testing import run_prometheus, run_pushgateway

    with run_pushgateway(tmp_path) as gateway, run_prometheus(tmp_path, [gateway.address]) as prometheus:
        plait_metrics.start({"pushgateway": gateway.url})
        flow.run()
        prometheus.wait_for('plait_flow_runs_total{flow="etl"}', {(("state", "Failed"),): 1.0}, ["state"])
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from plait.testing import free_port  # one copy, in the core

__all__ = [
    "PrometheusServer",
    "ServiceError",
    "ServiceProcess",
    "find_binary",
    "free_port",
    "http_get",
    "run_prometheus",
    "run_pushgateway",
    "wait_until",
]

START_DEADLINE = 60.0  # seconds a service gets to become ready
QUERY_DEADLINE = 60.0  # seconds a series gets to appear in Prometheus


class ServiceError(AssertionError):
    """A service did not start, or a condition was not met before its deadline."""


def http_get(url: str, timeout: float = 5.0) -> bytes:
    """The body of a GET (raises on HTTP errors)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def find_binary(name: str) -> str | None:
    """The path of program ``name``, or ``None`` when it is not installed."""
    return shutil.which(name)


def wait_until(condition: Callable[[], Any], deadline: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; ``ServiceError`` after ``deadline`` s.

    Connection errors and bad answers while polling count as "not yet".
    """
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
    raise ServiceError(f"timed out after {deadline:g} s waiting for {what}; last result: {last!r}")


class ServiceProcess:
    """A server process listening on 127.0.0.1:``port``; ``stop()`` ends it."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT)

    def wait_ready(self, deadline: float = START_DEADLINE) -> None:
        """Poll ``/-/ready`` until it answers 200 (both Prometheus and the Pushgateway have it)."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            return http_get(f"{self.url}/-/ready", timeout=1.0) is not None

        wait_until(ready, deadline, f"{self.name} on {self.url} to be ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


class PrometheusServer(ServiceProcess):
    """A Prometheus server, with its HTTP API's instant query."""

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query (``GET /api/v1/query``): a list of series."""
        try:
            body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        except urllib.error.HTTPError as exc:  # 400 for a bad query, with the reason in JSON
            body = exc.read()
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise ValueError(f"Prometheus refused {promql!r}: {answer}")
        return answer["data"]["result"]

    def values(self, promql: str, labels: Sequence[str]) -> dict[tuple[tuple[str, str], ...], float]:
        """``{((label, value), ...): sample}`` for the series of ``promql``, keyed by ``labels``."""
        out = {}
        for series in self.query(promql):
            key = tuple((k, series["metric"].get(k, "")) for k in labels)
            out[key] = float(series["value"][1])
        return out

    def wait_for(
        self,
        promql: str,
        expected: dict[tuple[tuple[str, str], ...], float],
        labels: Sequence[str],
        deadline: float = QUERY_DEADLINE,
    ) -> None:
        """Poll ``promql`` until its series (keyed by ``labels``) are exactly ``expected``."""
        wait_until(
            lambda: self.values(promql, labels) == expected, deadline, f"Prometheus to show {promql} = {expected}"
        )


@contextmanager
def run_pushgateway(tmp: Path, binary: str | None = None) -> Iterator[ServiceProcess]:
    """A Pushgateway on a free port of 127.0.0.1, persisting to ``tmp``; stopped on exit."""
    binary = binary or find_binary("prometheus-pushgateway")
    if binary is None:
        raise ServiceError("prometheus-pushgateway is not installed: make services-prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    service = ServiceProcess(
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


@contextmanager
def run_prometheus(
    tmp: Path,
    pushgateways: Sequence[str] = (),
    endpoints: Sequence[str] = (),
    scrape_interval: str = "1s",
    binary: str | None = None,
) -> Iterator[PrometheusServer]:
    """Prometheus on a free port of 127.0.0.1, storing in ``tmp``; stopped on exit.

    It scrapes every ``scrape_interval`` the ``pushgateways`` (``host:port``, job
    ``pushgateway``, with ``honor_labels`` so pushed ``job`` labels stay) and the ``endpoints``
    (``host:port`` serving ``/metrics``, job ``plait-endpoint``).
    """
    binary = binary or find_binary("prometheus")
    if binary is None:
        raise ServiceError("prometheus is not installed: make services-prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "prometheus.yml"
    lines = [
        "global:",
        f"  scrape_interval: {scrape_interval}",
        f"  evaluation_interval: {scrape_interval}",
        "scrape_configs:",
    ]
    if pushgateways:
        lines += [
            "  - job_name: pushgateway",
            "    honor_labels: true",
            "    static_configs:",
            f"      - targets: {json.dumps(list(pushgateways))}",
        ]
    if endpoints:
        lines += [
            "  - job_name: plait-endpoint",
            "    static_configs:",
            f"      - targets: {json.dumps(list(endpoints))}",
        ]
    config.write_text("\n".join(lines) + "\n")
    port = free_port()
    service = PrometheusServer(
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
