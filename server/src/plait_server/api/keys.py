"""API keys and the server's self-description (who am I, which rules apply)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from plait_server.api.context import needs
from plait_server.data.records import ApiKeyRecord
from plait_server.data.rules import policy_table


@strawberry.type(description="An API key; its secret is shown only when it is created.")
class ApiKey:
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="The key's first characters, to tell keys apart.")
    scope: str = strawberry.field(description="read, run or admin.")
    created: datetime
    revoked: datetime | None
    last_used: datetime | None
    flow_run_id: strawberry.ID | None = strawberry.field(
        description="Set for a run-scoped key (an agent gave it to one flow run's process): its flow run."
    )

    @classmethod
    def of(cls, r: ApiKeyRecord) -> ApiKey:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__})


@strawberry.type
class CreatedApiKey:
    api_key: ApiKey
    key: str = strawberry.field(description="The secret: store it now, it cannot be shown again.")


@strawberry.type(description="A state-transition rule of the server's policy.")
class TransitionRule:
    rule: str
    runs: str
    from_types: str
    to_types: str
    why: str


@strawberry.type
class KeyQueries:
    @strawberry.field(extensions=needs("read", run_key=True), description="The API key making this request.")
    def me(self, info: Info) -> ApiKey:
        return ApiKey.of(info.context.key)

    @strawberry.field(extensions=needs("admin"))
    def api_keys(self, info: Info, include_revoked: bool = True) -> list[ApiKey]:
        return [ApiKey.of(k) for k in info.context.store.keys.list(include_revoked)]

    @strawberry.field(extensions=needs("read"), description="The rules every state write is checked against.")
    def transition_rules(self) -> list[TransitionRule]:
        return [
            TransitionRule(rule=r["rule"], runs=r["runs"], from_types=r["from"], to_types=r["to"], why=r["why"])
            for r in policy_table()
        ]


@strawberry.type
class KeyMutations:
    @strawberry.mutation(extensions=needs("admin"), description="Create a key (scope read, run or admin).")
    def create_api_key(self, info: Info, name: str, scope: str) -> CreatedApiKey:
        record, secret = info.context.store.keys.create(name, scope)
        return CreatedApiKey(api_key=ApiKey.of(record), key=secret)

    @strawberry.mutation(extensions=needs("admin"), description="Revoke a key: refused from the next request on.")
    def revoke_api_key(self, info: Info, id: strawberry.ID) -> ApiKey:
        return ApiKey.of(info.context.store.keys.revoke(id))
