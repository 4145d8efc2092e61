"""The GraphQL API (strawberry on Starlette): one module per type family, a thin layer over
``plait_server.data``. ``schema.py`` assembles the schema; ``app.py`` serves it."""
