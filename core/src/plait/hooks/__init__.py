"""Plait's plugin system: hook specifications, the plugin manager and the built-in plugin.

- ``plait.hooks.specs``: every hook a plugin can implement, with its reference docstring;
- ``plait.hooks.manager``: discovery of installed plugins (entry-point group ``plait``),
  allow/deny lists, tracing, isolation of broken plugins, and ``PlaitHooks``, the typed facade
  the rest of Plait calls (``get_hooks().task_state_changed(...)``);
- ``plait.hooks.builtin``: the core's own executors and result types, registered through the
  same hooks as any plugin's.

Nothing here is imported by ``import plait``; pluggy is loaded at the first flow run or
plugin command.
"""
