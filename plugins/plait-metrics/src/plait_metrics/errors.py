"""The plugin's own exception class."""

from __future__ import annotations

from plait.errors import ConfigError

__all__ = ["MetricsConfigError"]


class MetricsConfigError(ConfigError):
    """``[plugins.metrics]`` has a bad value; the message names the key, the value and the fix."""
