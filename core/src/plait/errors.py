"""Plait's own exceptions.

Every error a user can cause has its own class, and every message names the object,
the bad value and the fix.
"""

from __future__ import annotations


class PlaitError(Exception):
    """Base class of every error Plait raises on purpose.

    Its text never shows a secret value read through ``plait.secrets`` (they are masked).
    """

    def __str__(self) -> str:
        text = super().__str__()
        from plait.secrets import mask

        return mask(text)


class FlowValidationError(PlaitError, ValueError):
    """The flow's graph is not runnable (a cycle, a task outside the flow, ...)."""


class CycleError(FlowValidationError):
    """The flow's graph has a cycle; ``cycle`` lists the task names on it, first repeated last."""

    def __init__(self, flow_name: str, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(f"Flow {flow_name!r} has a cycle: {' -> '.join(cycle)}")


class ParameterError(PlaitError, ValueError):
    """A parameter is unknown, missing or duplicated."""


class TaskBindError(PlaitError, TypeError):
    """A task was called with arguments its ``run()`` does not take, or outside a flow."""


class FlowRunError(PlaitError, RuntimeError):
    """A flow cannot be run the way it was asked to (e.g. ``flow.run()`` inside ``with Flow``)."""


class ExecutorError(PlaitError, ValueError):
    """An executor name or option is not known."""


class ConfigError(PlaitError, ValueError):
    """The configuration file or a ``PLAIT__*`` environment variable is not valid."""


class SecretNotFoundError(PlaitError, KeyError):
    """A secret is set neither in the environment nor in the config's ``[secrets]`` table."""

    def __str__(self) -> str:  # KeyError would quote the message
        return PlaitError.__str__(self)


class PluginError(PlaitError, RuntimeError):
    """A plugin cannot be loaded or used (a bad entry point, hookimpls that do not match)."""
