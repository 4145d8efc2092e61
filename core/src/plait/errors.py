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
        super().__init__(f"Cycle found in flow {flow_name!r}: {' -> '.join(cycle)}")


class ParameterError(PlaitError, ValueError):
    """A parameter is unknown, missing or duplicated."""


class TaskBindError(PlaitError, TypeError):
    """A task was called with arguments its ``run()`` does not take, or outside a flow."""


class DuplicateInputError(TaskBindError, ValueError):
    """A task input is given twice (a ``ValueError`` too, as in Prefect 1)."""


class NoActiveFlowError(TaskBindError, ValueError):
    """A task was called or linked outside ``with Flow(...)`` without ``flow=``.

    A ``ValueError`` too, as in Prefect 1.
    """


class TaskOptionError(TaskBindError, AttributeError):
    """``task_args`` names an option a task does not have (an ``AttributeError`` too, as in Prefect 1)."""


class TaskDefinitionError(TaskBindError, ValueError):
    """A task's ``run()`` cannot be a task's: ``*args``, or a parameter name Plait reserves (a ``ValueError`` too)."""


class FlowRunError(PlaitError, RuntimeError):
    """A flow cannot be run the way it was asked to (e.g. ``flow.run()`` inside ``with Flow``)."""


class StateHandlerError(PlaitError, TypeError):
    """A state handler returned something other than a State or ``None`` (raised under ``raise_on_exception``)."""


class ExecutorError(PlaitError, ValueError):
    """An executor name or option is not known."""


class WorkerLostError(ExecutorError):
    """The process running a task run died (``kill -9``, the out-of-memory killer, a crash)."""


class RemoteError(PlaitError):
    """An exception raised in another process that could not be sent back as itself.

    Its class cannot be rebuilt in the driver (an ``__init__`` that takes other arguments than it
    passes to ``Exception``, an attribute that does not pickle): this stands in for it, with its
    type's name in ``type_name`` and its text in ``text``.
    """

    def __init__(self, type_name: str, text: str) -> None:
        super().__init__(f"{type_name}: {text}" if text else type_name)
        self.type_name = type_name
        self.text = text

    def __reduce__(self) -> tuple[object, ...]:
        return RemoteError, (self.type_name, self.text)


def portable_exception(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling and unpickling, else a ``RemoteError`` with its type and text."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
        return exc
    except Exception:
        cls = type(exc)
        module = getattr(cls, "__module__", "")
        name = cls.__qualname__ if module in ("builtins", "__main__", None) else f"{module}.{cls.__qualname__}"
        try:
            text = str(exc)
        except Exception:
            text = "(its text could not be read)"
        return RemoteError(name, text)


class TaskTimeoutError(PlaitError, TimeoutError):
    """A task run took longer than its ``timeout``: the result of its ``TimedOut`` state.

    Its text says whether the run was stopped (its process killed) or only observed.
    Prefect 1 calls it ``TaskTimeoutSignal``.
    """


class ConfigError(PlaitError, ValueError):
    """The configuration file or a ``PLAIT__*`` environment variable is not valid."""


class SecretNotFoundError(PlaitError, KeyError):
    """A secret is set neither in the environment nor in the config's ``[secrets]`` table."""

    def __str__(self) -> str:  # KeyError would quote the message
        from plait.secrets import mask

        return mask(str(self.args[0])) if self.args else ""


class PluginError(PlaitError, RuntimeError):
    """A plugin cannot be loaded or used (a bad entry point, hookimpls that do not match)."""


class ResultError(PlaitError, RuntimeError):
    """A result could not be located, written or read (checkpoints, targets, caches)."""


class ResultLocationError(ResultError, KeyError):
    """A result location template names a key the run context does not have."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class UnknownResultTypeError(PlaitError, ValueError):
    """A result URL has a scheme no installed plugin provides."""


class GraphvizNotFoundError(PlaitError, RuntimeError):
    """``flow.visualize()`` needs Graphviz's ``dot`` program and it is not installed."""


class ShellTaskError(PlaitError, ValueError):
    """A ``ShellTask`` was set up wrongly (no command, unknown shell, ...)."""


class ScheduleError(PlaitError, ValueError):
    """A schedule, clock, filter or adjustment was given a bad value (an end before a start, ...)."""


class ScheduleTypeError(ScheduleError, TypeError):
    """A schedule or clock was given a value of the wrong type (a ``TypeError`` too, as in Prefect 1)."""


class NoMoreScheduledRunsError(FlowRunError, ScheduleError):
    """``flow.run()`` on a schedule that has no time left to run at (a ``ValueError`` too, as in Prefect 1)."""


class CronExpressionError(ScheduleError):
    """A cron expression is not valid; ``expression`` holds it."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        super().__init__(
            f"Invalid cron expression {expression!r}: {reason}. "
            "Use five fields 'minute hour day-of-month month day-of-week', e.g. '0 9 * * mon-fri'"
        )


class NaiveDatetimeError(ScheduleError):
    """A datetime without a time zone was given where Plait needs to know the zone."""


class ServerError(PlaitError, RuntimeError):
    """A Plait server refused a request; ``code`` says why (stable, for code to branch on).

    Codes: ``NOT_FOUND``, ``VERSION_CONFLICT``, ``INVALID_TRANSITION``, ``UNAUTHENTICATED``,
    ``FORBIDDEN``, ``BAD_INPUT``, ``INTERNAL_SERVER_ERROR``; ``details`` has the rest of the
    error's extensions (``rule`` for a refused transition, the current ``state`` and ``version``).
    """

    def __init__(self, message: str, code: str = "BAD_INPUT", details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details or {}


class ServerUnavailableError(PlaitError, ConnectionError):
    """The Plait server could not be reached (after retries), or is not configured."""


class StorageError(PlaitError, ValueError):
    """A flow's storage reference cannot be made or used (unknown kind, missing file...)."""
