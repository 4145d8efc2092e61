"""The GraphQL schema: the type families' queries and mutations merged, with limits on documents.

``build_schema()`` is what the server serves; ``schema_sdl()`` is its text, checked into
``docs/server/schema.graphql`` (a test fails when they drift apart; ``plait server schema``
prints it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document
from strawberry.tools import merge_types

from plait_server.api.execution import executor_class
from plait_server.api.flows import FlowMutations, FlowQueries
from plait_server.api.keys import KeyMutations, KeyQueries
from plait_server.api.logs import LogMutations, LogQueries
from plait_server.api.orchestration import OrchestrationMutations, OrchestrationQueries
from plait_server.api.prepared import Prepared
from plait_server.api.runs import RunMutations, RunQueries

__all__ = ["Limits", "build_schema", "schema_sdl"]

Query = merge_types("Query", (FlowQueries, RunQueries, LogQueries, KeyQueries, OrchestrationQueries))
Mutation = merge_types("Mutation", (FlowMutations, RunMutations, LogMutations, KeyMutations, OrchestrationMutations))


class Limits:
    """Bounds on one GraphQL document, so one request cannot exhaust the server."""

    def __init__(self, max_depth: int = 10, max_aliases: int = 30, max_tokens: int = 5000) -> None:
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.max_tokens = max_tokens


class Documents:
    """Parsed and validated documents by their text: clients send the same few documents again
    and again, so each is parsed, bounded (tokens, depth, aliases) and validated once.

    A least-recently-used cache of ``size`` entries, shared by the requests' threads. Its key
    is the text itself (a string hashes once); strawberry's own ``ValidationCache`` keys on the
    parsed document, whose hash walks the whole tree on every request.
    """

    def __init__(self, limits: Limits, size: int = 256) -> None:
        self.max_tokens = limits.max_tokens
        # Built once, so every document is judged by the same rule classes.
        self.rules = (
            *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
        )
        self.size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.schema: strawberry.Schema | None = None  # set by build_schema

    def get(self, query: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(query)
            if entry is not None:
                self._entries.move_to_end(query)
            return entry

    def put(self, query: str, document: Any, errors: list[GraphQLError]) -> None:
        with self._lock:
            self._entries[query] = _Entry(document, errors)
            self._entries.move_to_end(query)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def prepared(self, query: str, operation_name: str | None) -> Prepared | None:
        """The prepared form of a document seen (and found valid) before, when it has one
        (``api/prepared.py``); ``None`` otherwise: the request takes the generic path."""
        entry = self.get(query)
        if entry is None or entry.errors:
            return None
        prepared = entry.prepared
        if prepared is _UNSET:
            prepared = entry.prepared = Prepared.of(self.schema, entry.document) if self.schema else None
        if prepared is None or (operation_name is not None and operation_name != prepared.operation_name):
            return None
        return prepared

    def extension(self) -> SchemaExtension:
        return _DocumentCache(self)


_UNSET: Any = object()


class _Entry:
    """A known document: parsed, its validation errors, and its prepared form (made on first use)."""

    __slots__ = ("document", "errors", "prepared")

    def __init__(self, document: Any, errors: list[GraphQLError]) -> None:
        self.document = document
        self.errors = errors
        self.prepared: Prepared | None = _UNSET


class _DocumentCache(SchemaExtension):
    """A request's use of ``Documents``: the parse and validation steps skipped for a known
    text; for a new one, the parse bounded by ``max_tokens`` (strawberry's own parse, with its
    errors) and the validation with the standard rules and our limits, both then remembered."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents
        self.entry: _Entry | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        self.entry = self.documents.get(query) if query else None
        if self.entry is not None:
            context.graphql_document = self.entry.document
        else:
            context.parse_options["max_tokens"] = self.documents.max_tokens
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.entry is not None:
            context.pre_execution_errors = self.entry.errors
        else:
            document = context.graphql_document
            # strawberry's validation (graphql-core's rules and its own), with our limits.
            errors = validate_document(
                context.schema._schema, document, (*context.validation_rules, *self.documents.rules)
            )
            context.pre_execution_errors = errors
            if context.query:
                self.documents.put(context.query, document, errors)
        yield


class PlaitSchema(strawberry.Schema):
    #: The documents this schema has parsed and validated, and their prepared forms.
    documents: Documents

    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        # The HTTP endpoint classifies and logs errors (expected ones are not worth a traceback).
        return None


def build_schema(limits: Limits | None = None) -> PlaitSchema:
    limits = limits or Limits()
    documents = Documents(limits)
    schema = PlaitSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(auto_camel_case=False),
        # Plain scalar fields completed without graphql-core's per-field machinery (same answers).
        execution_context_class=executor_class(),
        # A factory: each request gets its own extension object (requests run on many threads);
        # the documents they parse and validate are shared.
        extensions=[documents.extension],
    )
    schema.documents = documents
    documents.schema = schema
    return schema


def schema_sdl() -> str:
    """The schema in GraphQL's schema language, as checked into docs/server/schema.graphql."""
    return build_schema().as_str().rstrip() + "\n"
