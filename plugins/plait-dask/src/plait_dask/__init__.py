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

from plait_dask.executor import DaskExecutor, DaskExecutorError

__all__ = ["DaskExecutor", "DaskExecutorError"]
__version__ = "0.1.0"
