"""The data layer: everything the API and the web UI read and write goes through ``Store``.

See ``store.py`` for transactions, ``rules.py`` for the state-transition policy, and one module
per area (``flows``, ``runs``, ``logs``, ``keys``). Resolvers stay thin over these.
"""

from plait_server.data.flows import FlowFilter
from plait_server.data.logs import LogInput
from plait_server.data.records import StateWrite
from plait_server.data.runs import FlowRunFilter, TaskRunFilter, TaskRunStateItem
from plait_server.data.store import Store

__all__ = ["FlowFilter", "FlowRunFilter", "LogInput", "StateWrite", "Store", "TaskRunFilter", "TaskRunStateItem"]
