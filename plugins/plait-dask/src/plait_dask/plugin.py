"""The entry point of the ``plait-dask`` plugin: registers the ``dask`` executor.

Loaded whenever Plait discovers plugins, so it imports nothing heavy: the executor module
imports ``distributed`` only when an executor starts.
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl


@hookimpl
def plait_register_executors() -> dict[str, Any]:
    """``{"dask": DaskExecutor}``: ``flow.run(executor="dask")`` and ``plait run --executor dask``."""
    from plait_dask.executor import DaskExecutor

    return {"dask": DaskExecutor}
