"""The entry point of the ``plait-dask`` plugin: registers the ``dask`` executor.

Loaded whenever Plait discovers plugins, so it imports nothing heavy: the executor module
imports ``distributed`` only when an executor starts.
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl
from plait.settings import Setting, Settings

#: ``[plugins.dask]``: the cluster ``--executor dask`` connects to by default.
SETTINGS = Settings(
    "plugins.dask",
    Setting("address", str, help="scheduler address, e.g. tcp://10.0.0.5:8786 (default: a temporary local cluster)"),
    help="the dask executor",
)


@hookimpl
def plait_register_settings() -> Settings:
    """``[plugins.dask]``, declared (see ``plait.settings``)."""
    return SETTINGS


@hookimpl
def plait_register_executors() -> dict[str, Any]:
    """``{"dask": DaskExecutor}``: ``flow.run(executor="dask")`` and ``plait run --executor dask``."""
    from plait_dask.executor import DaskExecutor

    return {"dask": DaskExecutor}
