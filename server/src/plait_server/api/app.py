"""The HTTP application: ``/graphql`` (POST, API key required) and ``/health`` (open).

The GraphQL endpoint is ours rather than strawberry's stock view, so that every response has
the same shape and a stable code:

- the API key is checked before anything else (``401`` and ``UNAUTHENTICATED`` without one);
- the body is read up to ``max_body_bytes`` (``413`` past it), must be JSON with a ``query``
  (``400`` and ``BAD_INPUT`` otherwise);
- the document is parsed and validated with bounded size, depth and aliases, then executed on
  a worker thread (the data layer is synchronous, and the event loop stays free for ``/health``
  and other requests);
- every GraphQL error gets an ``extensions.code``: the data layer's codes (``NOT_FOUND``,
  ``VERSION_CONFLICT``, ``INVALID_TRANSITION``, ``BAD_INPUT``), ``FORBIDDEN`` from the
  permission classes, ``BAD_INPUT`` for documents that do not validate; anything unexpected is
  logged on the server with a reference and answered ``INTERNAL_SERVER_ERROR`` with that
  reference, never with a traceback.
"""

from __future__ import annotations

import json
import logging
import secrets
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson
from graphql import GraphQLError
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from plait_server.api.context import Context
from plait_server.api.schema import Limits, build_schema
from plait_server.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from plait_server.data.store import Store
    from plait_server.services import Services
    from plait_server.settings import ServerSettings

__all__ = ["create_app"]

logger = logging.getLogger("plait_server.api")


class BodyTooLarge(Exception):
    pass


class JSONResponse(Response):
    """A JSON response rendered by orjson (several times faster than ``json`` on big answers)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            # What orjson refuses and json takes: integers beyond 64 bits (a JSON parameter
            # written as a GraphQL literal can be one).
            return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def create_app(store: Store, settings: ServerSettings, services: Services | None = None) -> Starlette:
    """The Starlette app serving ``store`` with ``settings`` (limits, CORS).

    ``services`` (the scheduler and watchdogs) run while the app does: started at start-up,
    stopped at shutdown.
    """
    schema = build_schema(Limits(settings.max_query_depth, settings.max_query_aliases, settings.max_query_tokens))
    max_body = settings.max_body_bytes
    from plait_server import __version__

    def execute(secret: str | None, payload: Any) -> tuple[int, dict[str, Any]]:
        try:
            # The key check and the request's reads and write on one pooled connection.
            with store.request():
                return _execute(secret, payload)
        except (OperationalError, PoolTimeout) as exc:
            return _unavailable(exc)

    def _execute(secret: str | None, payload: Any) -> tuple[int, dict[str, Any]]:
        key = store.keys.authenticate(secret) if secret else None
        if key is None:
            why = "No API key: send Authorization: Bearer <key>" if not secret else "Unknown or revoked API key"
            return 401, _error(why, "UNAUTHENTICATED")
        if not isinstance(payload, dict):
            return 400, _error("The body must be a JSON object with a query (batches are not supported)", "BAD_INPUT")
        query, variables, operation = payload.get("query"), payload.get("variables"), payload.get("operationName")
        if not isinstance(query, str) or not query.strip():
            return 400, _error('The body must have a "query": a GraphQL document', "BAD_INPUT")
        if variables is not None and not isinstance(variables, dict):
            return 400, _error('"variables" must be a JSON object', "BAD_INPUT")
        if operation is not None and not isinstance(operation, str):
            return 400, _error('"operationName" must be a string', "BAD_INPUT")
        context = Context(store, key)
        # A hot document seen before (create_flow_run) skips the generic executor; None: it
        # takes the generic path (api/prepared.py).
        prepared = schema.documents.prepared(query, operation)
        answer = prepared.run(context, variables or {}) if prepared is not None else None
        if answer is not None:
            data, errors = answer["data"], answer.get("errors")
        else:
            result = schema.execute_sync(
                query, variable_values=variables, context_value=context, operation_name=operation
            )
            data, errors = result.data, result.errors
        body: dict[str, Any] = {"data": data}
        if errors:
            for error in errors:
                if isinstance(error.original_error, (OperationalError, PoolTimeout)):
                    # The database does not answer: nothing was written (every write is one
                    # transaction), and the client should try again, not take it for a refusal.
                    return _unavailable(error.original_error)
            body["errors"] = [_format_error(e) for e in errors]
        return 200, body

    async def graphql(request: Request) -> Response:
        if request.method != "POST":
            return JSONResponse(
                _error("Send GraphQL requests with POST and a JSON body", "BAD_INPUT"),
                status_code=405,
                headers={"Allow": "POST"},
            )
        secret = _bearer(request.headers.get("authorization"))
        try:
            raw = await _read_body(request, max_body)
        except BodyTooLarge:
            return JSONResponse(
                _error(f"The request body is larger than the server accepts ({max_body} bytes)", "BAD_INPUT"),
                status_code=413,
            )
        try:
            payload = orjson.loads(raw) if raw else None
        except (orjson.JSONDecodeError, RecursionError):
            return JSONResponse(_error("The request body is not valid JSON", "BAD_INPUT"), status_code=400)
        status, body = await anyio.to_thread.run_sync(partial(execute, secret, payload))
        return JSONResponse(body, status_code=status)

    async def health(request: Request) -> Response:
        try:
            await anyio.to_thread.run_sync(_ping, store)
        except Exception as exc:
            logger.warning("health check: the database does not answer: %s", exc)
            return JSONResponse({"status": "unavailable", "database": "not answering"}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__, "database": store.engine.dialect.name})

    from plait_server.ui import WebUI

    # The web UI at / (its writes execute this schema's mutations with the signed-in key).
    ui = WebUI(store, schema)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ui.start()
        if services is not None:
            services.start()
        try:
            yield
        finally:
            if services is not None:
                await anyio.to_thread.run_sync(services.stop)
            ui.stop()
            store.dispose()

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["POST", "GET"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/health", health, methods=["GET"]),
            *ui.routes(),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.ui = ui
    return app


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    kind, _, value = header.partition(" ")
    return value.strip() or None if kind.lower() == "bearer" else None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _error(message: str, code: str) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}


def _format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    out: dict[str, Any] = {"message": error.message}
    if error.path is not None:
        out["path"] = error.path
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if isinstance(original, ApiError):
        out["message"] = original.message
        out["extensions"] = {**original.extensions, "code": original.code}
    elif isinstance(original, DataError):
        # A value the database cannot hold (PostgreSQL refuses NUL characters in text, say):
        # the request's fault, told without the statement or its parameters.
        reason = str(getattr(original, "orig", None) or "").strip().splitlines()
        out["message"] = "A value in the request cannot be stored" + (f": {reason[0]}" if reason else "")
        out["extensions"] = {"code": "BAD_INPUT"}
    elif original is None or isinstance(original, GraphQLError):
        extensions = dict(error.extensions or {})
        extensions.setdefault("code", "BAD_INPUT")  # the document or its variables did not validate
        out["extensions"] = extensions
    else:
        reference = secrets.token_hex(4)
        logger.error("Unexpected error (reference %s) in %s", reference, error.path, exc_info=original)
        out["message"] = f"Internal server error (reference {reference} in the server's log)"
        out["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "reference": reference}
    return out


def _unavailable(exc: Exception) -> tuple[int, dict[str, Any]]:
    """``503`` for a request the database could not serve (it is restarting, unreachable, or
    busy past the retries): clients wait and try again (``plait.client`` does, and so do
    agents and flow-run processes, whose reports wait meanwhile)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = lines[0] if lines and "://" not in lines[0] else type(exc).__name__  # never a URL's password
    logger.warning("the database did not answer a request (503): %s", reason)
    return 503, _error("The server's database does not answer; try again shortly", "UNAVAILABLE")


def _ping(store: Store) -> None:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
