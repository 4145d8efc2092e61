"""A StatsD emitter: the metrics as StatsD lines over UDP, flushed in batches.

The hooks never send anything: counters and gauges are read from the registry at each flush
(a counter is sent as its increase since the previous flush), and timers are drained from
``PlaitMetrics.timers``. A flush happens at the end of every flow run and every
``interval`` seconds in a background thread. Lines (``name:value|type``) are packed into
datagrams of at most ``max_packet`` bytes, separated by newlines::

    plait.flow_runs.orders.Success:1|c
    plait.task_runs.orders.extract.Success:3|c
    plait.tasks_running.orders.extract:0|g
    plait.task_run_duration.orders.extract:12.500|ms
    plait.flow_run_duration.orders:40.125|ms

Flow and task names are sanitized for StatsD: every character other than letters, digits,
``_`` and ``-`` becomes ``_`` (``"daily etl"`` -> ``daily_etl``).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections import deque
from typing import Any

from plait_metrics.collector import TIMERS_KEPT, PlaitMetrics

__all__ = ["StatsdEmitter", "statsd_name"]

logger = logging.getLogger("plait.plugins.metrics")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def statsd_name(name: str) -> str:
    """``name`` made safe as one dot-separated part of a StatsD metric name."""
    return _UNSAFE.sub("_", name) or "_"


class StatsdEmitter:
    """Sends ``metrics`` to a StatsD daemon at ``address`` (``(host, port)``) over UDP.

    Example::

        emitter = StatsdEmitter(metrics, ("127.0.0.1", 8125), prefix="plait")
        emitter.start()      # flush every `interval` seconds in a daemon thread
        ...
        emitter.flush()      # now (the plugin does this at the end of every flow run)
        emitter.close()

    A send that fails (no route, a full buffer) is logged once per kind of error and dropped:
    metrics never fail a run.
    """

    def __init__(
        self,
        metrics: PlaitMetrics,
        address: tuple[str, int],
        prefix: str = "plait",
        interval: float = 10.0,
        max_packet: int = 1432,
    ) -> None:
        if metrics.timers is None:
            metrics.timers = deque(maxlen=TIMERS_KEPT)
        self.metrics = metrics
        self.address = address
        self.prefix = f"{prefix}." if prefix else ""
        self.interval = interval
        self.max_packet = max_packet
        self._sent: dict[tuple[str, tuple[str, ...]], float] = {}
        self._names: dict[tuple[str, ...], str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: set[str] = set()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def start(self) -> None:
        """Flush every ``interval`` seconds in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="plait-metrics-statsd", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the flushing thread, flush once more and close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
        self._sock.close()

    def flush(self) -> int:
        """Send everything new since the last flush; returns the number of lines sent."""
        with self._lock:
            lines = self.lines()
            for packet in self._packets(lines):
                try:
                    self._sock.sendto(packet, self.address)
                except OSError as exc:
                    kind = type(exc).__name__
                    if kind not in self._errors:
                        self._errors.add(kind)
                        logger.warning(
                            "plait-metrics: could not send metrics to StatsD at %s:%s (%r); "
                            "they are dropped and the runs go on",
                            *self.address,
                            exc,
                        )
            return len(lines)

    def lines(self) -> list[str]:
        """The StatsD lines for what changed since the last call (counters, gauges, timers)."""
        m = self.metrics
        out: list[str] = []
        out += self._counter_lines(m.flow_runs, "flow_runs")
        out += self._counter_lines(m.task_runs, "task_runs")
        out += self._gauge_lines(m.tasks_running, "tasks_running")
        timers = m.timers
        assert timers is not None
        while timers:
            try:
                flow, task, seconds = timers.popleft()
            except IndexError:  # drained by another thread
                break
            if task is None:
                name = self._name("flow_run_duration", (flow,))
            else:
                name = self._name("task_run_duration", (flow, task))
            out.append(f"{name}:{seconds * 1000:.3f}|ms")
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def _counter_lines(self, counter: Any, kind: str) -> list[str]:
        out = []
        for family in counter.collect():
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = tuple(sample.labels[k] for k in ("flow", "task", "state") if k in sample.labels)
                key = (kind, labels)
                delta = sample.value - self._sent.get(key, 0.0)
                if delta > 0:
                    self._sent[key] = sample.value
                    out.append(f"{self._name(kind, labels)}:{delta:g}|c")
        return sorted(out)

    def _gauge_lines(self, gauge: Any, kind: str) -> list[str]:
        out = []
        for family in gauge.collect():
            for sample in family.samples:
                labels = (sample.labels["flow"], sample.labels["task"])
                key = (kind, labels)
                if self._sent.get(key) != sample.value:
                    self._sent[key] = sample.value
                    out.append(f"{self._name(kind, labels)}:{sample.value:g}|g")
        return sorted(out)

    def _name(self, kind: str, labels: tuple[str, ...]) -> str:
        key = (kind, *labels)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self.prefix + ".".join([kind, *(statsd_name(v) for v in labels)])
        return name

    def _packets(self, lines: list[str]) -> list[bytes]:
        packets: list[bytes] = []
        current = b""
        for line in lines:
            data = line.encode()
            if current and len(current) + 1 + len(data) > self.max_packet:
                packets.append(current)
                current = b""
            current = data if not current else current + b"\n" + data
        if current:
            packets.append(current)
        return packets
