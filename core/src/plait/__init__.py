"""Plait: workflow orchestration for Python.

```python
from plait import Flow, Parameter, task

@task
def add(x, y):
    return x + y

with Flow("sum") as flow:
    total = add(Parameter("x", default=1), 2)

state = flow.run(parameters={"x": 40})
assert state.result[total].result == 42
```
"""

from __future__ import annotations

from plait import cache_validators, context, control_flow, executors, signals, states, triggers
from plait.control_flow import apply_map, case, ifelse, merge, pause_task, switch
from plait.flow import Edge, Flow
from plait.logging import get_logger
from plait.tasks import Parameter, Task, flatten, tags, task, unmapped

__version__ = "0.1.0"

__all__ = [
    "Edge",
    "Flow",
    "Parameter",
    "Task",
    "__version__",
    "apply_map",
    "cache_validators",
    "case",
    "context",
    "control_flow",
    "executors",
    "flatten",
    "get_logger",
    "hookimpl",
    "hookspec",
    "ifelse",
    "merge",
    "pause_task",
    "signals",
    "states",
    "switch",
    "tags",
    "task",
    "triggers",
    "unmapped",
]


def __getattr__(name: str) -> object:
    # The pluggy markers are imported on first use, so `import plait` does not load pluggy.
    if name in ("hookimpl", "hookspec"):
        from plait.hooks import markers

        return getattr(markers, name)
    raise AttributeError(f"module 'plait' has no attribute {name!r}")
