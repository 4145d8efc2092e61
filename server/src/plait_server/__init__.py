"""plait-server: Plait's orchestration service.

A database of flows, flow and task runs, their states and logs (SQLite by default, PostgreSQL
to scale), behind a GraphQL API secured with API keys. Start it with ``plait server start``;
see docs/server.md. The code is laid out as:

- ``db/``: the SQLAlchemy models, engines and Alembic migrations (``migrations/``);
- ``data/``: the data layer every reader and writer goes through (``Store``), with the state
  transition rules (``data/rules.py``);
- ``api/``: the strawberry GraphQL schema and the Starlette app;
- ``cli.py`` and ``plugin.py``: ``plait server ...``, added through ``plait_register_commands``.
"""

__version__ = "0.1.0"
