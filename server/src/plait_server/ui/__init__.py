"""The web UI, served by ``plait server start`` at ``/``: see ``app.py`` and docs/ui.md."""

from plait_server.ui.app import WebUI

__all__ = ["WebUI"]
