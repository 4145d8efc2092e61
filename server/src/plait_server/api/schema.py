"""The GraphQL schema: the type families' queries and mutations merged, with limits on documents.

``build_schema()`` is what the server serves; ``schema_sdl()`` is its text, checked into
``docs/server/schema.graphql`` (a test fails when they drift apart; ``plait server schema``
prints it).
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from plait_server.api.execution import executor_class
from plait_server.api.flows import FlowMutations, FlowQueries
from plait_server.api.keys import KeyMutations, KeyQueries
from plait_server.api.logs import LogMutations, LogQueries
from plait_server.api.orchestration import OrchestrationMutations, OrchestrationQueries
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


class PlaitSchema(strawberry.Schema):
    def process_errors(self, errors: list[Any], execution_context: Any = None) -> None:
        # The HTTP endpoint classifies and logs errors (expected ones are not worth a traceback).
        return None


def build_schema(limits: Limits | None = None) -> strawberry.Schema:
    limits = limits or Limits()
    # The depth and alias rules are built once, so a document's validation (rules included)
    # is cached like its parse: clients send the same few documents again and again.
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    return PlaitSchema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(auto_camel_case=False),
        # Plain scalar fields completed without graphql-core's per-field machinery (same answers).
        execution_context_class=executor_class(),
        # Factories: each request gets its own extension objects (requests run on many threads).
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )


def schema_sdl() -> str:
    """The schema in GraphQL's schema language, as checked into docs/server/schema.graphql."""
    return build_schema().as_str().rstrip() + "\n"
