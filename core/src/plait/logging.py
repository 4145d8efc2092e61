"""Run-aware logging on top of the standard ``logging`` module.

Every record written through ``plait.context.logger`` or ``plait.get_logger()`` carries
``flow_name``, ``flow_run_id``, ``task_name``, ``task_full_name`` and ``map_index`` as record
attributes, so any handler or formatter can use them::

    logger = plait.get_logger()
    logger.info("loaded %d rows", n)
    # [2026-11-24 10:00:00] INFO numbers | fetch[3] | loaded 12 rows

Plait adds one stream handler to the ``plait`` logger at the first run, only when neither it
nor the root logger has handlers (an application that configures logging keeps control).
The level comes from ``PLAIT__LOGGING__LEVEL`` (default ``INFO``).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from plait import context as _context

__all__ = ["RunContextFilter", "RunLogger", "capture_stdout", "configure_logging", "get_logger", "run_logger"]

DEFAULT_FORMAT = "[%(asctime)s] %(levelname)s - %(flow_name)s | %(task_full_name)s | %(message)s"

_CONTEXT_FIELDS = ("flow_name", "flow_run_id", "task_name", "task_full_name", "map_index")


def _context_fields() -> dict[str, Any]:
    flow = _context._flow_ctx.get()
    info = _context._task_ctx.get()
    return {
        "flow_name": flow.get("flow_name", "-"),
        "flow_run_id": flow.get("flow_run_id"),
        "task_name": info.task.name if info is not None else "-",
        "task_full_name": info.full_name if info is not None else "-",
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
    """Attach Plait's default handler once per process (see the module docstring)."""
    global _configured
    if _configured and not force:
        return
    with _configure_lock:
        if _configured and not force:
            return
        _configured = True
        plait_logger = logging.getLogger("plait")
        level = os.environ.get("PLAIT__LOGGING__LEVEL", "INFO").upper()
        if plait_logger.level == logging.NOTSET:
            plait_logger.setLevel(level)
        if plait_logger.handlers or logging.getLogger().handlers:
            return
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(DEFAULT_FORMAT))
        handler.addFilter(RunContextFilter())
        plait_logger.addHandler(handler)


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
