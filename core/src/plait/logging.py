"""Run-aware logging on top of the standard ``logging`` module.

Every record written through ``plait.context.logger`` or ``plait.get_logger()`` carries
``flow_name``, ``flow_run_id``, ``task_name``, ``task_full_name`` and ``map_index`` as record
attributes, so any handler or formatter can use them::

    logger = plait.get_logger()
    logger.info("loaded %d rows", n)
    # [2026-11-24 10:00:00] INFO numbers | fetch[3] | loaded 12 rows

Plait adds one stream handler to the ``plait`` logger at the first run, only when neither it
nor the root logger has handlers (an application that configures logging keeps control).
The level comes from ``[logging] level`` or ``PLAIT__LOGGING__LEVEL`` (default ``INFO``); with
``[logging] format = "json"`` or ``PLAIT__LOGGING__FORMAT=json`` every line is one JSON object
(``JSONFormatter``: ``time``, ``level``, ``logger``, ``message``, the run context fields, and
``exception`` with the traceback of a failure).
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from plait import context as _context

__all__ = [
    "JSONFormatter",  # noqa: F822 - made on first use, see __getattr__
    "RunContextFilter",
    "RunLogger",
    "capture_stdout",
    "configure_logging",
    "excerpt",
    "get_logger",
    "run_logger",
]

DEFAULT_FORMAT = "[%(asctime)s] %(levelname)s - %(flow_name)s | %(task_full_name)s | %(message)s"

_CONTEXT_FIELDS = ("flow_name", "flow_run_id", "task_name", "task_full_name", "map_index")


def _context_fields() -> dict[str, Any]:
    flow = _context._flow_ctx.get()
    info = _context._task_ctx.get()
    return {
        "flow_name": flow.get("flow_name", "-"),
        "flow_run_id": flow.get("flow_run_id"),
        "task_name": info.task.name if info is not None else "-",
        # a run named with task_run_name shows that name (Prefect 1's task run names)
        "task_full_name": (flow.get("task_run_name") or info.full_name) if info is not None else "-",
        "map_index": info.map_index if info is not None else None,
    }


class RunLogger(logging.LoggerAdapter):
    """A logger adapter that stamps each record with the current run's context."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = _context_fields()
        given = kwargs.get("extra")
        if given:
            extra.update(given)
        kwargs["extra"] = extra
        return msg, kwargs


class RunContextFilter(logging.Filter):
    """A handler filter that adds the run context to records that lack it.

    Attach it to your own handlers to get ``flow_name`` etc. on records from any logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "flow_name"):
            for key, value in _context_fields().items():
                setattr(record, key, value)
        return True


def get_logger(name: str | None = None) -> RunLogger:
    """A run-aware logger named ``plait`` or ``plait.<name>``."""
    return RunLogger(logging.getLogger("plait" if not name else f"plait.{name}"), {})


#: The logger behind ``plait.context.logger``.
run_logger = get_logger("task")

_configured = False
_configure_lock = threading.Lock()


def configure_logging(force: bool = False) -> None:
    """Set up Plait's logging once per process (see the module docstring).

    Attaches the default handler (when neither ``plait`` nor the root logger has one), then
    the handlers plugins offer through ``plait_register_log_handlers(config)``, each behind a
    guard that reports a failing handler once with its plugin's name and never lets it
    raise into a run. Every handler Plait attaches carries ``RunContextFilter`` and
    ``plait.secrets.SecretsFilter``.
    """
    global _configured
    if _configured and not force:
        return
    with _configure_lock:
        if _configured and not force:
            return
        _configured = True
        from plait.secrets import SecretsFilter

        plait_logger = logging.getLogger("plait")
        for old in [h for h in plait_logger.handlers if isinstance(h, PluginHandler)]:
            plait_logger.removeHandler(old)
        level, fmt = _logging_settings()
        if plait_logger.level == logging.NOTSET:
            plait_logger.setLevel(level)
        if not (plait_logger.handlers or logging.getLogger().handlers):
            handler = logging.StreamHandler()
            formatter: logging.Formatter = (
                _json_formatter_class()() if fmt == "json" else logging.Formatter(DEFAULT_FORMAT)
            )
            handler.setFormatter(formatter)
            handler.addFilter(RunContextFilter())
            handler.addFilter(SecretsFilter())
            plait_logger.addHandler(handler)
        _attach_plugin_handlers(plait_logger)


def _logging_settings() -> tuple[str, str]:
    """``(level, format)`` from ``[logging]`` / ``PLAIT__LOGGING__*``, checked (a bad value raises
    ``ConfigError`` naming the key and where it came from)."""
    from plait.config import get_config

    values = get_config().values("logging")
    return values["level"], values["format"]


def _attach_plugin_handlers(plait_logger: logging.Logger) -> None:
    from plait.config import get_config
    from plait.hooks.manager import get_hooks

    hooks = get_hooks()
    try:
        config = get_config()
    except Exception as exc:
        plait_logger.warning("Plugin log handlers not attached: the configuration cannot be read: %s", exc)
        return
    for plugin_name, handler in hooks.register_log_handlers(config):
        plait_logger.addHandler(PluginHandler(plugin_name, handler, strict=hooks.strict))


class PluginHandler(logging.Handler):
    """Wraps a plugin's log handler: adds the run context, masks secrets, isolates failures.

    A wrapped handler that raises is reported once (a warning naming the plugin, written to
    ``sys.stderr`` so it cannot loop back into the failing handler) and its records are then
    dropped; the run is never affected. With ``strict`` the error re-raises.
    """

    def __init__(self, plugin_name: str, handler: logging.Handler, strict: bool = False) -> None:
        super().__init__(handler.level)
        from plait.secrets import SecretsFilter

        self.plugin_name = plugin_name
        self.handler = handler
        self.strict = strict
        self.failures = 0
        self.addFilter(RunContextFilter())
        self.addFilter(SecretsFilter())

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        # Without taking this wrapper's lock: the plugin's handler takes its own. logging.shutdown
        # holds the wrapper's lock while it closes the plugin's handler, and a plugin handler that
        # waits for its sender thread on close (SlackLogHandler) must not find that thread stuck
        # on the same lock, logging its own error.
        rv = self.filter(record)
        if rv:
            self.emit(rv if isinstance(rv, logging.LogRecord) else record)
        return rv

    def flush(self) -> None:
        self.handler.flush()

    def emit(self, record: logging.LogRecord) -> None:
        if self.failures and not self.strict:
            self.failures += 1
            return
        try:
            self.handler.handle(record)
        except BaseException as exc:  # SystemExit too: a plugin's handler never stops a run
            if self.strict or isinstance(exc, KeyboardInterrupt):
                raise
            self.failures += 1
            sys.stderr.write(
                f"WARNING: log handler {self.handler!r} of Plait plugin {self.plugin_name!r} raised "
                f"{type(exc).__name__}: {exc}; its records are dropped from now on\n"
            )

    def close(self) -> None:
        self.handler.close()
        super().close()

    def __repr__(self) -> str:
        return f"<PluginHandler {self.plugin_name!r}: {self.handler!r}>"


def __getattr__(name: str) -> Any:
    # JSONFormatter subclasses python-json-logger's formatter, imported only when it is used,
    # so `import plait` stays light.
    if name == "JSONFormatter":
        cls = _json_formatter_class()
        globals()["JSONFormatter"] = cls
        return cls
    raise AttributeError(f"module 'plait.logging' has no attribute {name!r}")


def _json_formatter_class() -> type[logging.Formatter]:
    from datetime import UTC, datetime

    from pythonjsonlogger.json import JsonFormatter

    class JSONFormatter(JsonFormatter):
        """Formats each record as one JSON object per line, for machines (python-json-logger).

        Keys: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``flow_name``,
        ``flow_run_id``, ``task_name``, ``task_full_name``, ``map_index``, ``exception`` (the
        formatted traceback, when the record has one), ``stack`` (with ``stack_info``), and any
        ``extra`` fields::

            handler = logging.StreamHandler()
            handler.setFormatter(plait.logging.JSONFormatter())
            handler.addFilter(plait.logging.RunContextFilter())

        ``PLAIT__LOGGING__FORMAT=json`` (or ``[logging] format = "json"``) makes Plait's default
        handler use it. Keyword arguments go to ``pythonjsonlogger.json.JsonFormatter``
        (``static_fields``, ``rename_fields``, ``json_indent``...).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if not args and "fmt" not in kwargs:
                args = (["levelname", "name", "message", *_CONTEXT_FIELDS],)
            kwargs.setdefault(
                "rename_fields",
                {"levelname": "level", "name": "logger", "exc_info": "exception", "stack_info": "stack"},
            )
            kwargs.setdefault("json_ensure_ascii", False)
            super().__init__(*args, **kwargs)

        def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
            log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            super().add_fields(log_data, record, message_dict)
            if not hasattr(record, "flow_name"):  # a record from outside Plait's run loggers
                log_data.update(_context_fields())

    JSONFormatter.__module__ = __name__
    return JSONFormatter


# --- log_stdout: route a task's prints to its logger ---------------------------------------

_capture: ContextVar[_LineLogger | None] = ContextVar("plait_capture_stdout", default=None)
_router_lock = threading.Lock()


class _LineLogger:
    def __init__(self) -> None:
        self.partial = ""

    def write(self, text: str) -> None:
        text = self.partial + text
        *lines, self.partial = text.split("\n")
        for line in lines:
            run_logger.info(line)

    def flush(self) -> None:
        if self.partial:
            run_logger.info(self.partial)
            self.partial = ""


class _StdoutRouter(io.TextIOBase):
    """Replaces ``sys.stdout`` once; writes from a capturing task go to its logger."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def write(self, text: str) -> int:
        target = _capture.get()
        if target is None:
            return self.original.write(text)
        target.write(text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


@contextmanager
def capture_stdout() -> Iterator[None]:
    """Within the block, ``print`` output of this thread/context becomes log lines."""
    with _router_lock:
        if not isinstance(sys.stdout, _StdoutRouter):
            sys.stdout = _StdoutRouter(sys.stdout)
    line_logger = _LineLogger()
    token = _capture.set(line_logger)
    try:
        yield
    finally:
        _capture.reset(token)
        line_logger.flush()


#: The longest message text Plait's log lines and ``plait run``'s tables show; states keep all of it.
LOG_TEXT_LIMIT = 4000


def excerpt(text: str, limit: int = LOG_TEXT_LIMIT) -> str:
    """``text``, or its beginning and end with a note of what was left out when it is longer than ``limit``.

    Logs and tables show excerpts of long texts (an exception message of megabytes would
    take minutes to print and drown everything else); the state keeps the full text.

    ```python
    excerpt("x" * 10_000, 100)  # 'xxx...xxx\n[... 9,9xx characters left out ...]\nxxx...'
    ```
    """
    if not isinstance(text, str) or len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut:,} characters left out; the state has the full text ...]\n{text[-tail:]}"
