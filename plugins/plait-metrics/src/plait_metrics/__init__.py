"""plait-metrics: Prometheus and StatsD metrics of Plait flow and task runs.

Install it and configure ``[plugins.metrics]`` (see ``plait_metrics.settings``); every flow run
then feeds the metrics, with no change to the flows. ``plait_metrics.start(...)`` turns it on
from code, ``get_metrics().registry`` is the ``CollectorRegistry`` to serve yourself.
"""

from __future__ import annotations

from plait_metrics.collector import PlaitMetrics
from plait_metrics.errors import MetricsConfigError
from plait_metrics.exposure import push_flow, serve
from plait_metrics.plugin import MetricsRuntime, get_metrics, get_runtime, start, stop
from plait_metrics.settings import MetricsSettings
from plait_metrics.statsd import StatsdEmitter

__all__ = [
    "MetricsConfigError",
    "MetricsRuntime",
    "MetricsSettings",
    "PlaitMetrics",
    "StatsdEmitter",
    "get_metrics",
    "get_runtime",
    "push_flow",
    "serve",
    "start",
    "stop",
]

__version__ = "0.1.0"
