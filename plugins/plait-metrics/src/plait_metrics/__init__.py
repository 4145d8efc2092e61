"""plait-metrics: Prometheus and StatsD metrics of Plait flow and task runs.

Install it and configure ``[plugins.metrics]`` (see ``plait_metrics.settings``); every flow run
then feeds the metrics, with no change to the flows. ``plait_metrics.start(...)`` turns it on
from code, ``get_metrics().registry`` is the ``CollectorRegistry`` to serve yourself.
"""

from __future__ import annotations

import importlib
from typing import Any

# Plait imports plait_metrics.plugin (and so this package) in every process where it is
# installed: the names below are imported on first use, so prometheus_client is loaded only
# when metrics are really made.
_LAZY = {
    "PlaitMetrics": "plait_metrics.collector",
    "MetricsConfigError": "plait_metrics.errors",
    "push_flow": "plait_metrics.exposure",
    "serve": "plait_metrics.exposure",
    "MetricsRuntime": "plait_metrics.plugin",
    "get_metrics": "plait_metrics.plugin",
    "get_runtime": "plait_metrics.plugin",
    "start": "plait_metrics.plugin",
    "stop": "plait_metrics.plugin",
    "MetricsSettings": "plait_metrics.settings",
    "StatsdEmitter": "plait_metrics.statsd",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
