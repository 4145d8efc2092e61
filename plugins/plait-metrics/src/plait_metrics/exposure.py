"""Getting the metrics out: a ``/metrics`` endpoint, or a push to a Prometheus Pushgateway.

Both are plain functions over a ``PlaitMetrics``; the plugin calls them from its settings.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from plait_metrics.collector import PlaitMetrics
from plait_metrics.errors import MetricsConfigError

__all__ = ["push_flow", "serve"]

logger = logging.getLogger("plait.plugins.metrics")


def serve(metrics: PlaitMetrics, port: int, addr: str = "127.0.0.1") -> Any:
    """Serve ``metrics`` at ``http://addr:port/metrics`` from a daemon thread; returns the server.

    ``port=0`` picks a free port (``server.server_port`` tells which). ``server.shutdown()``
    stops it. Raises ``OSError`` when the address is taken.

    Example::

        server = serve(metrics, 9464)   # curl http://127.0.0.1:9464/metrics
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server


def push_flow(
    metrics: PlaitMetrics,
    flow_name: str,
    gateway: str,
    job: str = "plait",
    grouping_key: dict[str, str] | None = None,
    timeout: float = 2.0,
    username: str | None = None,
    password_secret: str | None = None,
) -> bool:
    """Push the series of ``flow_name`` to the Pushgateway at ``gateway``; ``True`` if it worked.

    The push is a ``POST`` (``pushadd_to_gateway``) to the group ``{job, flow, **grouping_key}``:
    it replaces the group's metrics that this push carries and keeps the others (so the last
    success time survives a failed run). It gives up after ``timeout`` seconds in all (connecting,
    sending and waiting for the answer together); a failure is logged with the plugin's name and
    never raised. With ``username``, the push uses HTTP basic auth with the password read from
    the Plait secret named ``password_secret`` (``plait.secrets.Secret``: masked in logs).

    Example::

        push_flow(metrics, "orders", "http://127.0.0.1:9091", grouping_key={"instance": "batch-1"})
    """
    from prometheus_client import pushadd_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    key = {"flow": flow_name, **(grouping_key or {})}
    view = metrics.flow_view(flow_name)
    outcome: dict[str, BaseException] = {}

    def push() -> None:
        try:
            handler = default_handler
            if username is not None and password_secret is not None:
                from plait.secrets import read_secret_setting

                password = read_secret_setting(
                    "[plugins.metrics]", "push_password_secret", password_secret, MetricsConfigError
                )

                def handler(url: str, method: str, timeout: Any, headers: Any, data: bytes) -> Any:
                    return basic_auth_handler(url, method, timeout, headers, data, username, password)

            pushadd_to_gateway(gateway, job=job, registry=view, grouping_key=key, timeout=timeout, handler=handler)
        except BaseException as exc:
            outcome["error"] = exc

    # urllib's timeout bounds each socket operation, not the whole request: a thread joined
    # with the timeout bounds the time the flow run waits, whatever the gateway does.
    worker = threading.Thread(target=push, name="plait-metrics-push", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        error: BaseException | str = f"no answer within push_timeout = {timeout:g} s"
    elif "error" in outcome:
        error = outcome["error"]
    else:
        return True
    logger.warning(
        "plait-metrics: could not push the metrics of flow %r to the Pushgateway at %s (%s); "
        "the flow run is not affected",
        flow_name,
        gateway,
        _describe(error, timeout),
    )
    return False


def _describe(error: BaseException | str, timeout: float) -> str:
    from plait.secrets import mask

    if isinstance(error, str):
        return error
    text = f"{type(error).__name__}: {error}"
    if "timed out" in text:
        text += f" (push_timeout = {timeout:g} s)"
    return mask(text)
