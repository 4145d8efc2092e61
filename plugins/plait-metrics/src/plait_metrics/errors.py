"""The plugin's own exception class."""

from __future__ import annotations

try:  # the core's class for bad settings, once the plugin system is installed
    from plait.errors import ConfigError as _Base
except ImportError:  # pragma: no cover - older plait without plait.config
    from plait.errors import PlaitError as _Base

__all__ = ["MetricsConfigError"]


class MetricsConfigError(_Base):  # type: ignore[misc, valid-type]
    """``[plugins.metrics]`` has a bad value; the message names the key, the value and the fix."""
