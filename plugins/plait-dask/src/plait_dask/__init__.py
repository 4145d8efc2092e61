"""Plait on Dask: the ``dask`` executor.

```python
from plait_dask import DaskExecutor

flow.run(executor=DaskExecutor())                           # a temporary LocalCluster
flow.run(executor=DaskExecutor("tcp://scheduler:8786"))     # an existing cluster
flow.run(executor="dask")                                   # by name, through the plugin
```

Importing this package does not import Dask: ``distributed`` is imported when an executor
starts, so discovering the plugin costs nothing.
"""

import importlib
from typing import Any

# Plait imports plait_dask.plugin (and so this package) in every process where the plugin is
# installed: these names are imported on first use, so merely having it installed costs little.
_LAZY = {
    "DaskExecutor": "plait_dask.executor",
    "DaskExecutorError": "plait_dask.executor",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["DaskExecutor", "DaskExecutorError"]
__version__ = "0.1.0"
