"""Serving the app with uvicorn: one process, or several worker processes (``--workers N``).

One process (the default, and the only choice on SQLite, which takes one writer at a time)
serves the app ``plait server start`` built. With ``workers > 1`` (PostgreSQL), uvicorn's
supervisor starts that many worker processes on one socket; each builds its own engine, data
layer and app from the settings the parent passes in ``PLAIT_SERVER_WORKER_SETTINGS`` (JSON),
and the scheduler and watchdogs run once, in the parent. Several processes share PostgreSQL
the way several servers do: compare-and-set versions, row locks, UNIQUE constraints.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.supervisors import Multiprocess

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from plait_server.data.store import Store
    from plait_server.services import Services
    from plait_server.settings import ServerSettings

__all__ = ["SETTINGS_VARIABLE", "PlaitServer", "create_worker_app", "serve_workers"]

#: The environment variable that hands a worker its settings (JSON of ``ServerSettings``).
SETTINGS_VARIABLE = "PLAIT_SERVER_WORKER_SETTINGS"


class PlaitServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: Any) -> None:
        # Open live pages hold streaming responses: end them now, so that stopping the server
        # does not wait out the graceful-shutdown timeout for them.
        ui = getattr(getattr(self.config.app, "state", None), "ui", None)
        if ui is not None:
            ui.stop()
        super().handle_exit(sig, frame)


def serve_workers(store: Store, settings: ServerSettings, services: Services | None, options: dict[str, Any]) -> None:
    """``settings.workers`` worker processes on one socket until a signal stops them."""
    os.environ[SETTINGS_VARIABLE] = json.dumps(asdict(settings))
    config = uvicorn.Config(f"{__name__}:create_worker_app", factory=True, workers=settings.workers, **options)
    socket = config.bind_socket()
    if services is not None:
        services.start()
    try:
        Multiprocess(config, sockets=[socket]).run()
    except KeyboardInterrupt:
        pass
    finally:
        if services is not None:
            services.stop()
        store.dispose()


def create_worker_app() -> Starlette:
    """A worker's app (uvicorn calls it in each worker process): its own engine and data layer."""
    import logging
    import signal

    from plait_server.api.app import create_app
    from plait_server.data.store import Store
    from plait_server.db.engine import make_engine
    from plait_server.settings import ServerSettings

    settings = ServerSettings(**json.loads(os.environ[SETTINGS_VARIABLE]))
    logging.getLogger("plait_server").setLevel(settings.log_level.upper())
    store = Store(make_engine(settings.database))
    store.policy = settings.run_policy()
    app = create_app(store, settings, services=None)
    # What PlaitServer.handle_exit does in one process: uvicorn makes a worker's server itself,
    # and has installed its signal handlers by now (this runs in its main thread): wrap them.
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if callable(previous):
            signal.signal(sig, _ending_live_pages(app.state.ui, previous))
    return app


def _ending_live_pages(ui: Any, previous: Any) -> Any:
    def handle(sig: int, frame: Any) -> None:
        ui.stop()
        previous(sig, frame)

    return handle
