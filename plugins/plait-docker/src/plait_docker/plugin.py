"""plait-docker's hook implementations, found through the ``plait`` entry point ``docker``.

- ``plait_register_tasks``: ``DockerRun``, ``DockerBuild``, ``DockerPull``, ``DockerPush``,
  ``DockerRemove`` (``plait tasks`` lists them).
- ``plait_register_commands``: ``plait docker check``, ``plait docker containers`` and
  ``plait docker cleanup`` (containers a killed run left behind).
- ``plait_register_agents``: the ``docker`` agent kind (``plait agent start --type docker``:
  each flow run in a container of its own; ``plait_docker.agent.DockerAgent``).
- ``plait_register_settings``: ``[plugins.docker]`` (``plait_docker.settings.SETTINGS``), so
  ``plait config`` and ``plait plugins`` show it and unknown keys get a did-you-mean.
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl
from plait.settings import Settings


@hookimpl
def plait_register_tasks() -> list[Any]:
    """The container tasks, for ``plait tasks`` and lookups by name."""
    from plait_docker.tasks import DockerBuild, DockerPull, DockerPush, DockerRemove, DockerRun

    return [DockerRun, DockerBuild, DockerPull, DockerPush, DockerRemove]


@hookimpl
def plait_register_commands(cli: Any) -> None:
    """Add ``plait docker`` (``check``, ``containers``, ``cleanup``)."""
    from plait_docker.commands import docker

    cli.add_command(docker)


@hookimpl
def plait_register_settings() -> Settings:
    """``[plugins.docker]``, declared (see ``plait.settings``)."""
    from plait_docker.settings import SETTINGS

    return SETTINGS


@hookimpl
def plait_register_agents() -> dict[str, Any]:
    """The ``docker`` agent kind: each flow run in a container of its own."""
    from plait_docker.agent import DockerAgent

    return {DockerAgent.type: DockerAgent}
