"""plait-docker: containers as Plait tasks, through the Docker SDK for Python.

```py
from plait import Flow, unmapped
from plait_docker import DockerBuild, DockerRun

build = DockerBuild(dockerfile="FROM busybox\\nCMD [\\"echo\\", \\"hello\\"]\\n", tag="hello:1")
greet = DockerRun(network_mode="none")

with Flow("containers") as flow:
    image = build()
    greetings = greet.map(image=unmapped(image), command=[["echo", "a"], ["echo", "b"]])
```

Tasks: ``DockerRun`` (a container from start to removal, its output streamed into the run's
log), ``DockerBuild``, ``DockerPull``, ``DockerPush``, ``DockerRemove``. They work with Docker
and with Podman's Docker-compatible service. Settings: ``[plugins.docker]`` (see
``plait_docker.settings``) or ``DOCKER_HOST``. Importing this package does not import the
Docker SDK; the first task run does.
"""

from __future__ import annotations

from plait_docker.errors import DockerConfigError, DockerContainerError, DockerEngineError, DockerError
from plait_docker.settings import DockerSettings, clear_clients, get_client
from plait_docker.tasks import (
    ContainerResult,
    DockerBuild,
    DockerPull,
    DockerPush,
    DockerRemove,
    DockerRun,
    DockerTask,
)

__version__ = "0.1.0"

__all__ = [
    "ContainerResult",
    "DockerBuild",
    "DockerConfigError",
    "DockerContainerError",
    "DockerEngineError",
    "DockerError",
    "DockerPull",
    "DockerPush",
    "DockerRemove",
    "DockerRun",
    "DockerSettings",
    "DockerTask",
    "__version__",
    "clear_clients",
    "get_client",
]
