"""Executors, as ``plait.executors``: ``LocalExecutor``, ``ThreadExecutor``, ``ProcessExecutor``.

They live in ``plait.engine.executors``; this module is the public name::

    from plait.executors import ThreadExecutor

    flow.run(executor=ThreadExecutor(max_workers=8))
"""

from plait.engine.executors import (
    Executor,
    LocalExecutor,
    ProcessExecutor,
    ThreadExecutor,
    available_executors,
    get_executor,
)

__all__ = [
    "Executor",
    "LocalExecutor",
    "ProcessExecutor",
    "ThreadExecutor",
    "available_executors",
    "get_executor",
]
