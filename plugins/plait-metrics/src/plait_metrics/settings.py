"""The ``[plugins.metrics]`` settings, checked once when the plugin starts.

```toml
[plugins.metrics]
port = 9464                              # serve /metrics (long-running processes)
addr = "127.0.0.1"                       # the default; "0.0.0.0" to let other hosts scrape
pushgateway = "http://pushgateway:9091"  # push at the end of every flow run (short-lived ones)
push_timeout = 2.0                       # seconds; a slow or dead gateway never holds a run longer
push_username = "ci"                     # HTTP basic auth, if the gateway asks for it...
push_password_secret = "PUSHGATEWAY_PASSWORD"  # ...with the password in this Plait secret
job = "plait"                            # the Pushgateway's job label
grouping_key = { instance = "batch-1" }  # more grouping labels (the flow's name is always one)
statsd = "127.0.0.1:8125"                # StatsD over UDP
statsd_prefix = "plait"
statsd_interval = 10.0                   # seconds between StatsD flushes (and at every run's end)
buckets = [0.01, 0.1, 1, 10, 60, 600]    # histogram buckets, seconds
```

Any of ``port``, ``pushgateway`` or ``statsd`` turns the plugin on; ``enabled = true`` turns
it on with none of them (the metrics are then only in ``plait_metrics.get_metrics().registry``,
for an application that serves them itself), ``enabled = false`` turns it off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plait.secrets import setting_repr
from plait_metrics.errors import MetricsConfigError

__all__ = ["DEFAULT_BUCKETS", "MetricsSettings"]

#: Histogram buckets in seconds: task runs last from microseconds to hours.
DEFAULT_BUCKETS: tuple[float, ...] = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

_KNOWN = {
    "enabled",
    "port",
    "addr",
    "pushgateway",
    "push_timeout",
    "push_username",
    "push_password_secret",
    "job",
    "grouping_key",
    "statsd",
    "statsd_prefix",
    "statsd_interval",
    "buckets",
}


@dataclass(frozen=True)
class MetricsSettings:
    """What the plugin does; ``MetricsSettings.from_mapping(section)`` checks a config section.

    Example::

        settings = MetricsSettings.from_mapping({"statsd": "127.0.0.1:8125"})
        settings.statsd_address   # ('127.0.0.1', 8125)
    """

    enabled: bool = False
    port: int | None = None
    addr: str = "127.0.0.1"
    pushgateway: str | None = None
    push_timeout: float = 2.0
    push_username: str | None = None
    push_password_secret: str | None = None
    job: str = "plait"
    grouping_key: dict[str, str] = field(default_factory=dict)
    statsd_address: tuple[str, int] | None = None
    statsd_prefix: str = "plait"
    statsd_interval: float = 10.0
    buckets: tuple[float, ...] = DEFAULT_BUCKETS

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any] | None) -> MetricsSettings:
        """Check ``[plugins.metrics]`` (a dict) and return the settings.

        Raises:
            MetricsConfigError: an unknown key or a bad value; the message names the key, the
                value and the fix.
        """
        section = dict(section or {})
        unknown = sorted(set(section) - _KNOWN)
        if unknown:
            raise MetricsConfigError(
                f"[plugins.metrics] has no setting {', '.join(repr(k) for k in unknown)}; "
                f"the settings are: {', '.join(sorted(_KNOWN))}"
            )
        port = section.get("port")
        if port is not None and (not _is_int(port) or not 0 <= port <= 65535):
            raise MetricsConfigError(
                f"[plugins.metrics] port = {port!r} is not a TCP port: use a number from 1 to 65535 (e.g. 9464)"
            )
        addr = section.get("addr", "127.0.0.1")
        if not isinstance(addr, str) or not addr:
            raise MetricsConfigError(
                f'[plugins.metrics] addr = {addr!r} is not an address to listen on: use e.g. "127.0.0.1" or "0.0.0.0"'
            )
        gateway = section.get("pushgateway")
        if gateway is not None:
            gateway = _check_url(gateway)
        timeout = _positive(section, "push_timeout", 2.0)
        username = section.get("push_username")
        secret = section.get("push_password_secret")
        for key, value in (("push_username", username), ("push_password_secret", secret)):
            if value is not None and (not isinstance(value, str) or not value):
                # never the value of a *_secret key: it may be the password, pasted by mistake
                raise MetricsConfigError(
                    f"[plugins.metrics] {key} = {setting_repr(key, value)} must be a non-empty string"
                )
        if (username is None) != (secret is None):
            raise MetricsConfigError(
                "[plugins.metrics] push_username and push_password_secret go together: set both "
                '(e.g. push_username = "ci", push_password_secret = "PUSHGATEWAY_PASSWORD") or neither'
            )
        job = section.get("job", "plait")
        if not isinstance(job, str) or not job:
            raise MetricsConfigError(f'[plugins.metrics] job = {job!r} must be a non-empty string, e.g. "plait"')
        grouping = section.get("grouping_key", {})
        if not isinstance(grouping, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str | int) for k, v in grouping.items()
        ):
            raise MetricsConfigError(
                f"[plugins.metrics] grouping_key = {grouping!r} must be a table of label = value, "
                'e.g. grouping_key = { instance = "batch-1" }'
            )
        if "flow" in grouping or "job" in grouping:
            raise MetricsConfigError(
                f"[plugins.metrics] grouping_key = {dict(grouping)!r} sets 'flow' or 'job', which the plugin "
                "sets itself (the flow's name, and the job setting): remove it"
            )
        statsd = section.get("statsd")
        statsd_address = _check_statsd(statsd) if statsd is not None else None
        prefix = section.get("statsd_prefix", "plait")
        if not isinstance(prefix, str):
            raise MetricsConfigError(f'[plugins.metrics] statsd_prefix = {prefix!r} must be a string, e.g. "plait"')
        interval = _positive(section, "statsd_interval", 10.0)
        buckets = section.get("buckets", DEFAULT_BUCKETS)
        if (
            not isinstance(buckets, list | tuple)
            or not buckets
            or not all(_is_number(b) for b in buckets)
            or list(buckets) != sorted(buckets)
        ):
            raise MetricsConfigError(
                f"[plugins.metrics] buckets = {buckets!r} must be an increasing list of seconds, e.g. [0.1, 1, 10, 60]"
            )
        wants = port is not None or gateway is not None or statsd_address is not None
        enabled = section.get("enabled", wants)
        if not isinstance(enabled, bool):
            raise MetricsConfigError(f"[plugins.metrics] enabled = {enabled!r} must be true or false")
        return cls(
            enabled=enabled,
            port=port,
            addr=addr,
            pushgateway=gateway,
            push_timeout=timeout,
            push_username=username,
            push_password_secret=secret,
            job=job,
            grouping_key={k: str(v) for k, v in grouping.items()},
            statsd_address=statsd_address,
            statsd_prefix=prefix.strip("."),
            statsd_interval=interval,
            buckets=tuple(float(b) for b in buckets),
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(section: Mapping[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if not _is_number(value) or value <= 0:
        raise MetricsConfigError(
            f"[plugins.metrics] {key} = {value!r} must be a positive number of seconds, e.g. {default}"
        )
    return float(value)


def _check_url(value: Any) -> str:
    if not isinstance(value, str):
        raise MetricsConfigError(
            f'[plugins.metrics] pushgateway = {value!r} must be a URL, e.g. "http://127.0.0.1:9091"'
        )
    url = value if "://" in value else f"http://{value}"
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.username is not None or parsed.password is not None:
        # never echo the URL: it holds a password
        raise MetricsConfigError(
            "[plugins.metrics] pushgateway has a user or password in its URL: remove it, and set "
            'push_username = "..." and push_password_secret = "NAME_OF_A_PLAIT_SECRET" instead'
        )
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise MetricsConfigError(
            f'[plugins.metrics] pushgateway = {value!r} is not an http(s) URL: use e.g. "http://127.0.0.1:9091"'
        )
    return url.rstrip("/")


def _check_statsd(value: Any) -> tuple[str, int]:
    host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise MetricsConfigError(
            f'[plugins.metrics] statsd = {value!r} is not a host:port address: use e.g. "127.0.0.1:8125"'
        )
    return host.strip("[]"), int(port)
