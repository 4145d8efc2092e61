"""The hook marker: ``plait.hookimpl`` when the core has the plugin system, else pluggy's own."""

from __future__ import annotations

try:
    from plait import hookimpl
except ImportError:  # a core without the plugin system: the same marker, made here
    import pluggy

    hookimpl = pluggy.HookimplMarker("plait")

__all__ = ["hookimpl"]
