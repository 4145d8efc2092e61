"""The two pluggy markers of the project ``plait``.

Plugins import them as ``plait.hookimpl`` (and ``plait.hookspec`` for the rare plugin that
adds hooks of its own)::

    import plait

    @plait.hookimpl
    def plait_task_state_changed(task, old_state, new_state, context):
        ...
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec"]

#: The pluggy project name, also the entry-point group plugins are found in.
PROJECT = "plait"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
