"""docs/server/schema.graphql is the schema the server serves (regenerate: plait server schema > ...)."""

from pathlib import Path

from plait_server.api.schema import schema_sdl

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "server" / "schema.graphql"


def test_the_checked_in_schema_matches_the_code():
    assert CHECKED_IN.read_text() == schema_sdl(), (
        "The GraphQL schema changed: run `plait server schema > docs/server/schema.graphql` and review the diff"
    )


def test_every_mutation_the_clients_use_is_in_the_schema():
    sdl = schema_sdl()
    for name in (
        "register_flow",
        "archive_flow",
        "set_schedule_active",
        "create_flow_run",
        "set_flow_run_states",
        "set_task_run_states",
        "write_run_logs",
        "cancel_flow_run",
        "create_api_key",
        "revoke_api_key",
    ):
        assert f"  {name}(" in sdl, name
