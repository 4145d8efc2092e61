"""The Plait plugin (entry point ``metrics`` in the group ``plait``): the two state hooks.

On the first flow run of the process the plugin reads ``[plugins.metrics]`` and, if it is on,
starts what the settings ask for (the ``/metrics`` server, the StatsD emitter). Then every task
state change updates the metrics in memory (no I/O), and the end of every flow run flushes
StatsD and pushes to the Pushgateway. Errors there are logged with the plugin's name and never
change a run.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import TYPE_CHECKING, Any

from plait import hookimpl
from plait.errors import PlaitError
from plait.settings import Setting, Settings
from plait_metrics.settings import DEFAULT_BUCKETS, MetricsSettings

if TYPE_CHECKING:
    # prometheus_client is imported when the plugin starts, never by merely being installed
    from plait_metrics.collector import PlaitMetrics
    from plait_metrics.statsd import StatsdEmitter

__all__ = [
    "MetricsRuntime",
    "get_metrics",
    "get_runtime",
    "plait_flow_state_changed",
    "plait_register_settings",
    "plait_task_state_changed",
    "start",
    "stop",
]

logger = logging.getLogger("plait.plugins.metrics")


class MetricsRuntime:
    """What the plugin runs in this process: the metrics and their ways out.

    Example (what the plugin does itself on the first flow run)::

        runtime = MetricsRuntime(MetricsSettings.from_mapping({"port": 9464}))
        runtime.start()
    """

    def __init__(self, settings: MetricsSettings) -> None:
        from plait_metrics.collector import PlaitMetrics

        self.settings = settings
        self.metrics = PlaitMetrics(settings.buckets, timers=settings.statsd_address is not None)
        self.server: Any = None
        self.statsd: StatsdEmitter | None = None

    def start(self) -> None:
        """Start the ``/metrics`` server and the StatsD emitter the settings ask for."""
        from plait_metrics.exposure import serve
        from plait_metrics.statsd import StatsdEmitter

        s = self.settings
        if s.port is not None and self.server is None:
            try:
                self.server = serve(self.metrics, s.port, s.addr)
            except OSError as exc:
                logger.error(
                    "plait-metrics: cannot serve /metrics on %s:%s (%s); set [plugins.metrics] port "
                    "to a free port. Flows run without the endpoint",
                    s.addr,
                    s.port,
                    exc,
                )
            else:
                logger.info("plait-metrics: serving /metrics on http://%s:%s/metrics", s.addr, self.port)
        if s.statsd_address is not None and self.statsd is None:
            self.statsd = StatsdEmitter(self.metrics, s.statsd_address, s.statsd_prefix, s.statsd_interval)
            self.statsd.start()

    @property
    def port(self) -> int | None:
        """The port ``/metrics`` is served on (the chosen one when the setting is 0)."""
        return self.server.server_port if self.server is not None else None

    def flow_run_ended(self, flow_name: str) -> None:
        """Flush StatsD and push to the Pushgateway, as configured."""
        if self.statsd is not None:
            self.statsd.flush()
        s = self.settings
        if s.pushgateway is not None:
            from plait_metrics.exposure import push_flow

            push_flow(
                self.metrics,
                flow_name,
                s.pushgateway,
                s.job,
                s.grouping_key,
                s.push_timeout,
                s.push_username,
                s.push_password_secret,
            )

    def stop(self) -> None:
        """Stop the server and the emitter (flushing it once more)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.statsd is not None:
            self.statsd.close()
            self.statsd = None


# --- the process's runtime ---------------------------------------------------------------------

_runtime: MetricsRuntime | None = None
#: The metrics the task hook feeds; ``None`` while the plugin is off (the hook then returns).
_metrics: PlaitMetrics | None = None
_decided = False
_lock = threading.Lock()


def start(settings: MetricsSettings | dict[str, Any] | None = None) -> MetricsRuntime | None:
    """Turn the plugin on in this process with ``settings`` (default: ``[plugins.metrics]``).

    The plugin calls this itself at the first flow run; call it earlier to serve ``/metrics``
    before any flow runs, or with explicit settings. Returns ``None`` when the settings leave
    the plugin off. A running runtime is stopped first.

    Example::

        import plait_metrics

        plait_metrics.start({"port": 9464})
    """
    with _lock:
        _stop_locked()
        return _start_locked(settings)


def stop() -> None:
    """Turn the plugin off and forget its settings (the next flow run reads them again)."""
    with _lock:
        _stop_locked()


def get_runtime() -> MetricsRuntime | None:
    """The running ``MetricsRuntime``, or ``None`` when the plugin is off or not started yet."""
    return _runtime


def get_metrics() -> PlaitMetrics | None:
    """The process's ``PlaitMetrics`` (``.registry`` to serve them yourself), or ``None``."""
    return _metrics


def _start_locked(settings: MetricsSettings | dict[str, Any] | None) -> MetricsRuntime | None:
    global _runtime, _metrics, _decided
    if settings is None:
        settings = MetricsSettings.from_mapping(_config_section())
    elif not isinstance(settings, MetricsSettings):
        settings = MetricsSettings.from_mapping(settings)
    _decided = True
    if not settings.enabled:
        return None
    runtime = MetricsRuntime(settings)
    runtime.start()
    _runtime, _metrics = runtime, runtime.metrics
    return runtime


def _stop_locked() -> None:
    global _runtime, _metrics, _decided
    runtime, _runtime, _metrics, _decided = _runtime, None, None, False
    if runtime is not None:
        runtime.stop()


def _wanted(values: Any) -> str | None:
    if values.get("enabled") is False:
        return "enabled = false"
    if values.get("enabled") or any(values.get(k) is not None for k in ("port", "pushgateway", "statsd")):
        return None
    return "none of port, pushgateway, statsd is set (or enabled = true)"


def _check(values: Any) -> str | None:
    try:
        MetricsSettings.from_mapping(values)
    except PlaitError as exc:
        return str(exc).removeprefix("[plugins.metrics] ")
    return None


#: ``[plugins.metrics]`` (see ``plait_metrics.settings`` for what each key does).
SETTINGS = Settings(
    "plugins.metrics",
    Setting("enabled", bool, help="on with none of port/pushgateway/statsd (metrics only in the registry), or off"),
    Setting("port", int, help="serve /metrics on this port (long-running processes)"),
    Setting("addr", str, "127.0.0.1", help="the address /metrics listens on"),
    Setting("pushgateway", str, help="push at the end of every flow run to this Pushgateway URL"),
    Setting("push_timeout", float, 2.0, help="seconds a push may take"),
    Setting("push_username", str, help="HTTP basic auth user for the Pushgateway"),
    Setting("push_password_secret", str, help="name of the plait secret holding its password"),
    Setting("job", str, "plait", help="the Pushgateway's job label"),
    Setting("grouping_key", dict[str, str], {}, help="more grouping labels"),
    Setting("statsd", str, help="StatsD host:port (UDP)"),
    Setting("statsd_prefix", str, "plait", help="prefix of every StatsD metric"),
    Setting("statsd_interval", float, 10.0, help="seconds between StatsD flushes"),
    Setting("buckets", list[float], list(DEFAULT_BUCKETS), help="histogram buckets, seconds"),
    requires=_wanted,
    check=_check,
    observe_when=lambda status: status.configured or _metrics is not None,
    help="Prometheus /metrics, Pushgateway and StatsD",
)


# --- the hooks ---------------------------------------------------------------------------------


@hookimpl
def plait_register_settings() -> Settings:
    return SETTINGS


@hookimpl
def plait_flow_state_changed(flow: Any, old_state: Any, new_state: Any, context: Any) -> None:
    """Start the plugin on the first flow run; at the end of each run, count it and flush."""
    if not _decided:
        _start_from_config()
    metrics = _metrics
    if metrics is None:
        return
    metrics.flow_state_changed(flow.name, old_state, new_state)
    if not new_state._running and (old_state._running or new_state._finished):
        runtime = _runtime
        if runtime is not None:
            runtime.flow_run_ended(flow.name)


@hookimpl
def plait_task_state_changed(task: Any, old_state: Any, new_state: Any, context: Any) -> None:
    """Count one task state change (in memory only: this is every task's hot path)."""
    metrics = _metrics
    if metrics is not None:
        metrics.task_state_changed(context.get("flow_name", ""), task, old_state, new_state)


def _start_from_config() -> None:
    global _decided
    with _lock:
        if _decided:  # another thread's flow run got here first
            return
        try:
            _start_locked(None)
        except (PlaitError, OSError) as exc:
            # Said once per process, and the plugin stays off: flows run as if it were not installed.
            logger.error("plait-metrics: %s. The plugin is off in this process until this is fixed", exc)
            _decided = True


def _config_section() -> dict[str, Any]:
    from plait.config import get_config

    return dict(get_config().plugin_section("metrics"))


def _flush_at_exit() -> None:
    # A short-lived process may end before the next timed StatsD flush. The /metrics server
    # needs nothing: its thread is a daemon.
    runtime = _runtime
    if runtime is not None and runtime.statsd is not None:
        runtime.statsd.flush()


atexit.register(_flush_at_exit)
