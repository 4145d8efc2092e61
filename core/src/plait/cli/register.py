"""``plait register FILE.py[:FLOW]``: send a flow's metadata and storage reference to a Plait server."""

from __future__ import annotations

import click

from plait.cli.loading import load_flow

__all__ = ["register"]


class ServerCommandError(click.ClickException):
    """A bad input or a refusal from the server: a clear message and exit code 2."""

    exit_code = 2


@click.command()
@click.argument("flow_spec", metavar="FILE.py[:FLOW]")
@click.option("--project", default="default", show_default=True, help="The project the flow belongs to.")
@click.option(
    "--labels", default="", metavar="A,B", help="Labels, comma-separated (agents run flows whose labels they have)."
)
@click.option(
    "--storage",
    "location",
    default=None,
    metavar="LOCATION",
    help="Where agents find the code: the file itself (default), module:pkg.flows (imported here too, as agents "
    "will), or a URL a plugin handles (s3://...).",
)
def register(flow_spec: str, project: str, labels: str, location: str | None) -> None:
    """Register a flow with the Plait server: its metadata, never its code or constant values.

    Prints the flow's id and version, and whether it changed (registering an unchanged flow
    changes nothing).
    """
    from plait.errors import PlaitError

    flow = load_flow(flow_spec)
    path = flow_spec.partition(":")[0] if ":" in flow_spec and not flow_spec.endswith(".py") else flow_spec
    try:
        from plait.agents import check_run_config
        from plait.client import Client
        from plait.registration import flow_metadata
        from plait.storage import storage_for

        check_run_config(getattr(flow, "run_config", None))  # a typo fails here, not when a run starts
        storage = storage_for(path, flow.name, location)
        if storage.type == "module":
            # Agents import the module: describe the flow as they will see it (its tasks'
            # functions are named after the module), so it matches the registered version.
            flow = storage.load_flow()
        metadata = flow_metadata(flow)
        client = Client()
        registered = client.register_flow(
            metadata=metadata,
            storage=storage.reference(),
            project=project,
            labels=[x.strip() for x in labels.split(",") if x.strip()],
        )
    except PlaitError as exc:
        raise ServerCommandError(str(exc)) from None
    what = "registered" if registered.changed else "unchanged"
    click.echo(
        f"Flow {registered.name!r} ({registered.project}): version {registered.version}, {what}. id {registered.id}"
    )
