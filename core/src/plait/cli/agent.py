"""``plait agent start|list``: run an agent that starts due flow runs of a Plait server."""

from __future__ import annotations

from typing import Any

import click

from plait.cli.register import ServerCommandError

__all__ = ["agent"]

_BASE_OPTIONS = {"label", "max_runs", "name", "type", "poll_interval", "cancel_grace"}


class _AgentGroup(click.Group):
    """Builds ``start`` when it is needed, with the options of every installed agent kind."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "start"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "start":
            return _start_command()
        return super().get_command(ctx, name)


@click.group(cls=_AgentGroup)
def agent() -> None:
    """Agents: processes that start due flow runs of the Plait server where your code lives."""


@agent.command("list")
def list_agents() -> None:
    """List the agents the server knows, most recently seen first."""
    from rich.table import Table

    from plait.cli.flow_run import _client, _when
    from plait.cli.output import stdout_console

    with _client() as client:
        agents = client.agents()
    table = Table(
        "id", "name", "type", "labels", "max runs", "running", "host", "last seen", title=f"{len(agents)} agents"
    )
    for a in agents:
        table.add_row(
            a.id,
            a.name,
            a.type,
            ", ".join(a.labels),
            "" if a.max_runs is None else str(a.max_runs),
            str(a.running),
            a.hostname or "",
            _when(a.last_seen),
        )
    stdout_console().print(table)


def _start_command() -> click.Command:
    from plait.agents import available_agents

    kinds = available_agents()
    extra: dict[str, click.Option] = {}
    owners: dict[str, list[str]] = {}
    for kind, cls in sorted(kinds.items()):
        for option in cls.cli_options():
            if option.name in _BASE_OPTIONS:
                continue
            extra.setdefault(option.name, option)
            owners.setdefault(option.name, []).append(kind)
    params: list[click.Parameter] = [
        click.Option(
            ["--type", "type_"],
            default="local",
            show_default=True,
            type=click.Choice(sorted(kinds)),
            help="The agent kind: how each run is started (local: a subprocess; plugins add more).",
        ),
        click.Option(
            ["--name"], default=None, help="The agent's name (default: [agent] name, else <type>-agent@<host>)."
        ),
        click.Option(
            ["--label", "-l", "labels"],
            multiple=True,
            help="A label (repeatable): the agent runs flow runs whose labels are all among its labels.",
        ),
        click.Option(["--max-runs"], type=int, default=None, help="Flow runs at once (default 10)."),
        click.Option(["--poll-interval"], type=float, default=None, help="Seconds between polls (default 2)."),
        click.Option(
            ["--cancel-grace"],
            type=float,
            default=None,
            help="Seconds a cancelled run may take to stop before its process group is killed (default 30).",
        ),
    ]
    for name, option in extra.items():
        option.help = f"{option.help or ''} (agent kind: {', '.join(owners[name])})".strip()
        params.append(option)

    def callback(
        type_: str,
        name: str | None,
        labels: tuple[str, ...],
        max_runs: int | None,
        poll_interval: float | None,
        cancel_grace: float | None,
        **options: Any,
    ) -> None:
        given = {k: v for k, v in options.items() if v not in (None, (), False)}
        foreign = sorted(k for k in given if type_ not in owners.get(k, []))
        if foreign:
            raise ServerCommandError(
                f"--{foreign[0].replace('_', '-')} is an option of agent kind(s) "
                f"{', '.join(owners[foreign[0]])}, not of {type_!r}"
            )
        _start(kinds[type_], name, list(labels) or None, max_runs, poll_interval, cancel_grace, given)

    return click.Command(
        "start",
        params=params,
        callback=callback,
        help=(
            "Start an agent: it polls the server (outbound HTTP only) for due flow runs whose labels it has, claims "
            "each (Scheduled -> Submitted, once), and starts it as `plait execute flow-run ID` in its own process "
            "group. Stop it with Ctrl-C: runs already started go on and report on their own."
        ),
    )


def _start(
    cls: type,
    name: str | None,
    labels: list[str] | None,
    max_runs: int | None,
    poll_interval: float | None,
    cancel_grace: float | None,
    options: dict[str, Any],
) -> None:
    import signal

    from plait.agents import AgentSettings
    from plait.client import Client
    from plait.errors import PlaitError
    from plait.logging import configure_logging

    try:
        settings = AgentSettings.load(
            name=name, labels=labels, max_runs=max_runs, poll_interval=poll_interval, cancel_grace=cancel_grace
        )
        client = Client(retries=2, backoff=0.5)
        agent = cls(client, settings, **options)
    except (PlaitError, TypeError) as exc:
        raise ServerCommandError(str(exc)) from None
    configure_logging()

    def stop(signum: int, frame: Any) -> None:
        agent.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    click.echo(f"Agent {agent.name!r} ({cls.type}) polling {client.url}; Ctrl-C to stop", err=True)
    try:
        agent.run()
    except PlaitError as exc:
        raise ServerCommandError(str(exc)) from None
