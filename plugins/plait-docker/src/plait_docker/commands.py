"""``plait docker``: check the engine, and find or remove containers a dead run left behind.

```console
$ plait docker check
unix:///run/podman/podman.sock (DOCKER_HOST): OK (Podman Engine 4.3.1, API 1.41)
$ plait docker containers
plait-DockerRun-3-1f0c2a9e  Up 2 hours  flow etl  run 6f1e...  task DockerRun[3]  image app:1
$ plait docker cleanup
Removed 1 container(s): plait-DockerRun-3-1f0c2a9e
```

Every container ``DockerRun`` starts carries the label ``plait.managed=true``. A run removes its
containers itself, even on Ctrl-C; only a run killed outright (``kill -9``, a lost machine)
leaves some, and ``plait docker cleanup`` removes them.
"""

from __future__ import annotations

import click

from plait_docker.errors import DockerError


@click.group(name="docker")
def docker() -> None:
    """Containers (plait-docker): check the engine, list and clean up Plait's containers."""


@docker.command(name="check")
def check_command() -> None:
    """Reach the container engine and show its name and version."""
    from plait_docker.settings import effective_settings, engine_address, get_client

    try:
        settings = effective_settings()
        where = engine_address(settings)
        info = _call(where, lambda: get_client(settings).version())
    except DockerError as exc:
        raise click.ClickException(str(exc)) from None
    components = [c.get("Name", "") for c in info.get("Components", []) if isinstance(c, dict)]
    engine = next((name for name in components if "Engine" in name), "Docker Engine")
    click.echo(f"{where}: OK ({engine} {info.get('Version', '?')}, API {info.get('ApiVersion', '?')})")


@docker.command(name="containers")
@click.option("--flow-run", "flow_run", help="Only the containers of this flow run id.")
def containers_command(flow_run: str | None) -> None:
    """List the containers Plait's tasks started that still exist (label plait.managed)."""
    rows = _managed(flow_run)
    if not rows:
        click.echo("No containers of Plait's tasks.")
        return
    for c in rows:
        labels = c.get("Labels") or {}
        task = labels.get("plait.task", "?")
        if labels.get("plait.map-index"):
            task += f"[{labels['plait.map-index']}]"
        status = c.get("Status") or c.get("State", "?")
        click.echo(
            f"{c['Names'][0].lstrip('/')}  {status}  flow {labels.get('plait.flow', '?')}  "
            f"run {labels.get('plait.flow-run-id', '?')}  task {task}  image {c.get('Image', '?')}"
        )


@docker.command(name="cleanup")
@click.option("--flow-run", "flow_run", help="Only the containers of this flow run id.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def cleanup_command(flow_run: str | None, dry_run: bool) -> None:
    """Kill and remove the containers Plait's tasks left behind (running ones too)."""
    from plait_docker.settings import engine_address, get_client

    rows = _managed(flow_run)
    names = [c["Names"][0].lstrip("/") for c in rows]
    if not rows:
        click.echo("Nothing to remove.")
        return
    if dry_run:
        click.echo(f"Would remove {len(rows)} container(s): {', '.join(names)}")
        return
    api = get_client().api
    for c in rows:
        _call(engine_address(), lambda c=c: api.remove_container(c["Id"], force=True, v=True))
    click.echo(f"Removed {len(rows)} container(s): {', '.join(names)}")


def _managed(flow_run: str | None) -> list[dict]:
    from plait_docker.settings import engine_address, get_client
    from plait_docker.tasks import MANAGED_LABEL

    labels = [MANAGED_LABEL] + ([f"plait.flow-run-id={flow_run}"] if flow_run else [])
    try:
        api = get_client().api
        return _call(engine_address(), lambda: api.containers(all=True, filters={"label": labels}))
    except DockerError as exc:
        raise click.ClickException(str(exc)) from None


def _call(where: str, fn):
    from plait_docker.tasks import engine_error

    try:
        return fn()
    except DockerError:
        raise
    except Exception as exc:
        raise click.ClickException(str(engine_error("plait docker", "talk to the engine", where, exc))) from None
