"""Container tasks: run a container, build, pull, push and remove images.

```py
from plait import Flow
from plait_docker import DockerBuild, DockerRun

build = DockerBuild(dockerfile="FROM python:3.12-slim\\nCOPY job.py /job.py\\n", path="jobs/", tag="jobs:1")
job = DockerRun(command=["python", "/job.py"], network_mode="none", mem_limit="256m")

with Flow("containers") as flow:
    image = build()
    outputs = job.map(image=unmapped(image), env=[{"PART": "1"}, {"PART": "2"}])
```

Every task takes its engine settings from ``[plugins.docker]`` (or ``DOCKER_HOST``), overridable
per task with ``docker=DockerSettings(...)`` or a dict. The Docker SDK is imported when a task
first runs, not when this module is imported.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import socket
import struct
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plait import signals
from plait.secrets import Secret, mask
from plait.states import Cancelled, TimedOut
from plait.tasks import Task
from plait_docker.errors import DockerConfigError, DockerContainerError, DockerEngineError
from plait_docker.settings import (
    DockerSettings,
    as_settings,
    check_labels,
    connection,
    effective_settings,
    registry_auth,
    ulimit_specs,
    unreachable_message,
)

__all__ = [
    "ContainerResult",
    "DockerBuild",
    "DockerPull",
    "DockerPush",
    "DockerRemove",
    "DockerRun",
    "DockerTask",
]

#: Lines of output quoted in the message of a container that failed.
OUTPUT_TAIL = 20
RETURNS = ("output", "lines", "exit_code", "result")
PULL_POLICIES = ("missing", "always", "never")

#: Labels every container started by DockerRun carries (find them with
#: ``docker ps -a --filter label=plait.managed``).
MANAGED_LABEL = "plait.managed"


#: Seconds a followed log stream may stay open after its container exited before it is cut.
_STREAM_GRACE = 5.0


@dataclass(frozen=True)
class ContainerResult:
    """What ``DockerRun(returns="result")`` returns: the exit code and both outputs."""

    exit_code: int
    stdout: str
    stderr: str
    container: str
    image: str


class DockerTask(Task):
    """Base class of the Docker tasks: the engine settings, and engine errors made readable.

    Args:
        docker: ``DockerSettings`` (or a dict of its fields) over ``[plugins.docker]`` for this task.
        **kwargs: the usual ``Task`` options (``name``, ``max_retries``, ``timeout``, ...).
    """

    def __init__(self, *, docker: DockerSettings | dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.docker_settings = as_settings(docker, self._owner())

    def _connection(self) -> tuple[Any, str, DockerSettings]:
        settings = effective_settings(self.docker_settings)
        conn = connection(settings)
        return conn.client.api, conn.where, settings

    def _owner(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    def _engine_error(self, action: str, where: str, exc: BaseException) -> DockerEngineError:
        return engine_error(self._owner(), action, where, exc)

    def options(self) -> dict[str, Any]:
        out = super().options()
        settings = self.docker_settings
        out["docker"] = {"base_url": settings.base_url} if settings is not None and settings.base_url else {}
        return out


class DockerRun(DockerTask):
    """Runs a container: creates it, starts it, streams its output into the run's log as it
    comes, waits for it, returns its output (or exit code), and removes it.

    The container is removed in every case (its success, its failure, the task's timeout, an
    interrupted flow run), so none is left behind. A non-zero exit code fails the task with
    the last lines of the container's output in the message (``DockerContainerError``, with
    ``exit_code`` and ``output``).

    Args:
        image: the image (``"alpine:3.20"``, an id from ``DockerBuild``); ``run(image=...)``
            overrides it.
        command: the command, a list (``["python", "job.py"]``) or a string split into words
            as a shell would (``"python job.py"``) but not run by one: for pipes and
            redirections use ``["sh", "-c", "..."]``. Default: the image's own.
        env: environment variables. A value may be a ``plait.secrets.Secret``: it is read when the
            container starts and masked in every log line and error, like every secret.
        volumes: ``{"/host/path": "/container/path"}``, ``{"/host": {"bind": "/data", "mode": "ro"}}``
            or ``["/host:/data:ro"]``; relative host paths are from the current directory; a
            name without ``/`` is a named volume.
        working_dir: the working directory inside the container.
        user: the user (``"1000"``, ``"1000:1000"``, ``"nobody"``).
        mem_limit: a memory limit: bytes, or ``"512m"``, ``"2g"``.
        cpus: CPUs the container may use (``0.5``, ``2``).
        network_mode: ``"none"``, ``"bridge"``, ``"host"``, a network's name (default
            ``[plugins.docker] network_mode``, else the engine's).
        labels: labels on the container, added to ``[plugins.docker] labels`` and to Plait's own
            (``plait.flow``, ``plait.flow-run-id``, ``plait.task``, ``plait.map-index``).
        ulimits: ``{"nofile": 1024, "nproc": [4096, 8192]}`` (default ``[plugins.docker] ulimits``).
        entrypoint: replaces the image's entrypoint.
        returns: ``"output"`` (standard output as text, trailing newlines removed; the default),
            ``"lines"`` (a list of its lines), ``"exit_code"``, or ``"result"`` (a
            ``ContainerResult`` with both outputs and the exit code).
        ok_exit_codes: exit codes that do not fail the task (default ``(0,)``).
        pull: ``"missing"`` (pull the image when the engine lacks it; default), ``"always"``, ``"never"``.
        stream_output: log each line as it comes (standard output at INFO, standard error at
            ``stderr_level``).
        stderr_level: the log level of standard error lines (default ``"WARNING"``).
        kill_grace: seconds between ``SIGTERM`` and ``SIGKILL`` when the task times out.
        remove: remove the container at the end (default ``True``; ``False`` keeps it for
            inspection, except after an interrupt).
        host_config: more options for the engine's ``HostConfig`` (the Docker SDK's
            ``create_host_config`` arguments: ``shm_size``, ``devices``, ``cap_drop``...).
        container_options: more options for the container (``create_container`` arguments:
            ``hostname``, ``stop_signal``, ``healthcheck``...).
        docker, **kwargs: as for ``DockerTask`` (``timeout=`` bounds the container's run).

    Example::

        count = DockerRun(image="busybox", command=["sh", "-c", "wc -l < /data/rows.csv"], volumes={"data": "/data"})
        count.run()   # '1200'
    """

    #: the runner leaves the timeout to the task: it stops and removes the container itself
    enforces_own_timeout = True

    def __init__(
        self,
        image: str | None = None,
        command: str | list[str] | None = None,
        *,
        env: Mapping[str, Any] | None = None,
        volumes: Mapping[str, Any] | list[str] | None = None,
        working_dir: str | None = None,
        user: str | int | None = None,
        mem_limit: str | int | None = None,
        cpus: float | None = None,
        network_mode: str | None = None,
        labels: Mapping[str, str] | None = None,
        ulimits: Mapping[str, Any] | None = None,
        entrypoint: str | list[str] | None = None,
        returns: str = "output",
        ok_exit_codes: tuple[int, ...] | list[int] = (0,),
        pull: str = "missing",
        stream_output: bool = True,
        stderr_level: str | int = "WARNING",
        kill_grace: float = 5.0,
        remove: bool = True,
        host_config: Mapping[str, Any] | None = None,
        container_options: Mapping[str, Any] | None = None,
        docker: DockerSettings | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(docker=docker, **kwargs)
        owner = self._owner()
        self.image = _check_image(image, owner, required=False)
        self.command = _check_command(command, owner)
        self.env = _check_env(env, owner)
        self.volumes = _check_volumes(volumes, owner)
        self.working_dir = working_dir
        self.user = None if user is None else str(user)
        self.mem_limit = _check_mem_limit(mem_limit, owner)
        self.cpus = _check_cpus(cpus, owner)
        self.network_mode = network_mode
        self.labels = check_labels(dict(labels), owner) if labels is not None else {}
        self.ulimits = dict(ulimits) if ulimits is not None else None
        if self.ulimits is not None:
            ulimit_specs(self.ulimits, owner)
        self.entrypoint = entrypoint
        if returns not in RETURNS:
            raise DockerConfigError(f"{owner}: returns must be one of {', '.join(RETURNS)}, got {returns!r}")
        self.returns = returns
        if not all(isinstance(c, int) for c in ok_exit_codes):
            raise DockerConfigError(f"{owner}: ok_exit_codes must be integers, got {ok_exit_codes!r}")
        self.ok_exit_codes = tuple(ok_exit_codes)
        if pull not in PULL_POLICIES:
            raise DockerConfigError(f"{owner}: pull must be one of {', '.join(PULL_POLICIES)}, got {pull!r}")
        self.pull = pull
        self.stream_output = stream_output
        self.stderr_level = _check_level(stderr_level, owner)
        self.kill_grace = float(kill_grace)
        self.remove = remove
        self.host_config = dict(host_config or {})
        self.container_options = dict(container_options or {})

    def run(  # type: ignore[override]
        self,
        image: str | None = None,
        command: str | list[str] | None = None,
        env: Mapping[str, Any] | None = None,
        volumes: Mapping[str, Any] | list[str] | None = None,
        working_dir: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Any:
        """Run the container (arguments given here override the task's own; ``env`` and
        ``labels`` are added to them) and return what ``returns`` asks for."""
        owner = self._owner()
        image = _check_image(image if image is not None else self.image, owner, required=True)
        command = _check_command(command, owner) if command is not None else self.command
        environment = {**self.env, **_check_env(env, owner)}
        binds = _check_volumes(volumes, owner) if volumes is not None else self.volumes
        api, where, settings = self._connection()
        name = _container_name(self.name)
        spec = self._container_spec(api, image, command, environment, binds, working_dir, labels, settings, name)
        run = _ContainerRun(self, api, where, settings, image, name)
        return run.execute(spec)

    # -- building the request ------------------------------------------------------------------

    def _container_spec(
        self,
        api: Any,
        image: str,
        command: Any,
        environment: dict[str, Any],
        binds: list[str] | None,
        working_dir: str | None,
        labels: Mapping[str, str] | None,
        settings: DockerSettings,
        name: str,
    ) -> dict[str, Any]:
        from docker.types import Ulimit

        owner = self._owner()
        ulimits = self.ulimits if self.ulimits is not None else settings.ulimits
        host: dict[str, Any] = {
            "binds": binds,
            "mem_limit": self.mem_limit,
            "nano_cpus": None if self.cpus is None else int(self.cpus * 1e9),
            "network_mode": self.network_mode or settings.network_mode,
            "ulimits": [Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"]) for u in ulimit_specs(ulimits, owner)]
            if ulimits
            else None,
        }
        host = {k: v for k, v in host.items() if v is not None}
        host.update(self.host_config)
        try:
            host_config = api.create_host_config(**host)
        except Exception as exc:  # docker.errors.InvalidArgument, TypeError on an unknown option
            raise DockerConfigError(f"{owner}: bad container settings: {exc}") from None
        return {
            "image": image,
            "command": command,
            "name": name,
            "environment": _resolve_env(environment),
            "working_dir": working_dir or self.working_dir,
            "user": self.user,
            "entrypoint": self.entrypoint,
            "labels": {
                **(settings.labels or {}),
                **self.labels,
                **(check_labels(dict(labels), owner) if labels else {}),
                **_run_labels(),
            },
            "host_config": host_config,
            "detach": True,
            "tty": False,
            "stdin_open": False,
            **self.container_options,
        }

    def options(self) -> dict[str, Any]:
        out = super().options()
        out["container"] = {
            "image": self.image,
            "command": mask(str(self.command)) if self.command is not None else None,
            "env": sorted(self.env),  # names only: values can be secrets
            "network_mode": self.network_mode,
            "returns": self.returns,
        }
        return out

    def __repr__(self) -> str:
        return f"<DockerRun: {self.name} (image={self.image!r})>"


class _ContainerRun:
    """One run of a ``DockerRun``: the container's life from create to remove."""

    def __init__(self, task: DockerRun, api: Any, where: str, settings: DockerSettings, image: str, name: str) -> None:
        self.task = task
        self.api = api
        self.where = where
        self.settings = settings
        self.image = image
        self.name = name
        self.container_id: str | None = None
        self.cancelled = False
        self.timed_out = False
        self.lock = threading.Lock()

    def execute(self, spec: dict[str, Any]) -> Any:
        from plait.cancellation import on_cancel
        from plait.logging import run_logger

        task = self.task
        timeout = task.timeout.total_seconds() if task.timeout is not None else None
        timer: threading.Timer | None = None
        output = _Output(task, keep=task.returns in ("output", "lines", "result"))
        # Registered before the container exists: a canceller that runs first removes it by name.
        with on_cancel(self.cancel, name=f"container {self.name}"):
            try:
                self.container_id = self._create(spec)
                if self.cancelled:
                    raise signals.ENDRUN(self._cancelled_state())
                run_logger.info(
                    "Starting container %s (image %s%s)",
                    self.name,
                    self.image,
                    f", command {mask(_show_command(spec['command']))}" if spec["command"] is not None else "",
                )
                self._call("start the container", self.api.start, self.container_id)
                if timeout is not None:
                    timer = threading.Timer(timeout, self.time_out)
                    timer.daemon = True
                    timer.start()
                received = self._stream(output)
                exit_code = self._wait()
                if not (self.cancelled or self.timed_out):
                    self._catch_up(output, received)
            except BaseException:
                # KeyboardInterrupt on the local executor, or a failed request: never leave it behind.
                self._remove(force=True)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
        output.close()
        if self.cancelled:
            self._remove(force=True)
            raise signals.ENDRUN(self._cancelled_state())
        if self.timed_out:
            self._remove(force=True)
            raise signals.ENDRUN(
                TimedOut(
                    f"Task {task.name!r} timed out after {timeout:g}s; its container {self.name} was stopped "
                    "and removed." + output.tail_text()
                )
            )
        if task.remove:
            self._remove(force=True)
        if exit_code not in task.ok_exit_codes:
            message = mask(
                f"Container {self.name} (image {self.image}) exited with code {exit_code}{_exit_reason(exit_code)}."
                + (output.tail_text() or "\n(no output)")
            )
            raise DockerContainerError(message, exit_code, mask(output.tail_lines()), self.name, self.image)
        if task.returns == "exit_code":
            return exit_code
        if task.returns == "lines":
            return output.stdout_lines()
        if task.returns == "result":
            return ContainerResult(exit_code, output.stdout_text(), output.stderr_text(), self.name, self.image)
        return output.stdout_text().rstrip("\n")

    # -- steps ---------------------------------------------------------------------------------

    def _create(self, spec: dict[str, Any]) -> str:
        from docker.errors import ImageNotFound

        task = self.task
        if task.pull == "always":
            pull_image(self.api, self.image, self.settings, self.where, task._owner())
        try:
            created = self.api.create_container(**spec)
        except ImageNotFound:
            if task.pull == "never":
                raise DockerEngineError(
                    f"{task._owner()}: image {self.image!r} is not on the engine at {self.where}; build it "
                    "(DockerBuild) or pull it (DockerPull) first, or let the task pull it (pull='missing')"
                ) from None
            pull_image(self.api, self.image, self.settings, self.where, task._owner())
            created = self._call("create the container", self.api.create_container, **spec)
        except Exception as exc:
            raise self._error("create the container", exc) from None
        return created["Id"]

    def _stream(self, output: _Output) -> ReceivedOutput:
        """Feed the container's output to ``output`` as it comes; return what was received.

        The stream ends when the container exits, even when the engine keeps it open
        (``follow_until_exit``); ``_catch_up`` then reads what it had not delivered from the
        stored log.
        """
        received = ReceivedOutput()
        try:
            stream = follow_until_exit(self.api, self.container_id, lambda: self.api.wait(self.container_id), self.name)
            for kind, data in stream:
                received.add(data)
                output.feed(kind, data)
        except Exception as exc:
            if self.cancelled or self.timed_out:
                return received  # the stream ends with the killed container, possibly abruptly
            raise self._error("read the container's output", exc) from None
        return received

    def _catch_up(self, output: _Output, received: ReceivedOutput) -> None:
        """Once the container has exited, log what the followed stream missed
        (``ReceivedOutput.missed``), and take the output the task returns from the stored log,
        which has all of it, once each, in order."""
        try:
            stored: Iterable[tuple[int, bytes]] = follow_output(self.api, self.container_id, follow=False)
            if output.keep:
                stored = list(stored)
                output.keep_stored(stored)
            for stream, data in received.missed(stored, on_restart=output.drop_partial):
                output.feed(stream, data)
        except Exception as exc:
            raise self._error("read the container's output", exc) from None

    def _wait(self) -> int:
        from docker.errors import NotFound

        try:
            answer = self.api.wait(self.container_id)
        except NotFound:
            if self.cancelled:
                return -1
            raise DockerEngineError(
                f"{self.task._owner()}: container {self.name} disappeared before it finished (removed from "
                f"outside?) on {self.where}"
            ) from None
        except Exception as exc:
            if self.cancelled or self.timed_out:
                return -1
            raise self._error("wait for the container", exc) from None
        return int(answer.get("StatusCode", -1))

    def _remove(self, force: bool) -> None:
        from docker.errors import APIError, NotFound

        target = self.container_id or self.name
        try:
            self.api.remove_container(target, force=force, v=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code == 409 or "removal" in str(exc).lower():  # being removed already
                return
            _log().error("Could not remove container %s on %s: %s", self.name, self.where, exc)
        except Exception as exc:  # the engine went away: say so, the run's outcome stands
            _log().error("Could not remove container %s on %s: %s", self.name, self.where, exc)

    # -- from other threads --------------------------------------------------------------------

    def cancel(self) -> None:
        """The flow run was interrupted (called from the main thread): kill and remove now."""
        self.cancelled = True
        self._remove(force=True)

    def time_out(self) -> None:
        """The task's timeout passed (called from a timer thread): stop the container."""
        self.timed_out = True
        try:
            self.api.stop(self.container_id, timeout=max(0, int(self.task.kill_grace)))
        except Exception:  # already gone: the wait reports what happened
            self._remove(force=True)

    # -- helpers -------------------------------------------------------------------------------

    def _cancelled_state(self) -> Cancelled:
        return Cancelled(f"Task {self.task.name!r} was cancelled; its container {self.name} was removed.")

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self._error(action, exc) from None

    def _error(self, action: str, exc: BaseException) -> DockerEngineError:
        return engine_error(self.task._owner(), f"{action} {self.name}", self.where, exc)


class _Output:
    """A container's output, line by line: logged as it comes, with a bounded tail kept for
    error messages and, when the task returns it, the whole standard output (and error)."""

    def __init__(self, task: DockerRun, keep: bool) -> None:
        from plait.logging import run_logger

        self.logger = run_logger
        self.stream_output = task.stream_output
        self.stderr_level = task.stderr_level
        self.keep = keep
        self.tail: deque[str] = deque(maxlen=OUTPUT_TAIL)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.partial = {1: "", 2: ""}
        self.decoders = {
            1: codecs.getincrementaldecoder("utf-8")("replace"),
            2: codecs.getincrementaldecoder("utf-8")("replace"),
        }

    def feed(self, stream: int, data: bytes) -> None:
        stream = 2 if stream == 2 else 1
        text = self.partial[stream] + self.decoders[stream].decode(data)
        *lines, self.partial[stream] = text.split("\n")
        for line in lines:
            self._line(stream, line)

    def close(self) -> None:
        for stream in (1, 2):
            rest = self.partial[stream] + self.decoders[stream].decode(b"", final=True)
            self.partial[stream] = ""
            if rest:
                self._line(stream, rest, newline=False)

    def drop_partial(self) -> None:
        """Forget the unfinished lines held from the stream (their bytes are fed again)."""
        for stream in (1, 2):
            self.partial[stream] = ""
            self.decoders[stream].reset()

    def keep_stored(self, frames: list[tuple[int, bytes]]) -> None:
        """The output the task returns, from the stored log (``frames``, all of it) instead of
        the followed stream (which can miss lines): later lines are logged, not kept again."""
        stdout: list[str] = []
        stderr: list[str] = []
        for stream, kept in ((1, stdout), (2, stderr)):
            data = b"".join(d for s, d in frames if (2 if s == 2 else 1) == stream)
            text = data.decode("utf-8", "replace")
            kept.extend(line.rstrip("\r") + "\n" for line in text.split("\n")[:-1])
            last = text.rsplit("\n", 1)[-1].rstrip("\r")
            if last:
                kept.append(last)
        self.stdout, self.stderr = stdout, stderr
        self.keep = False

    def _line(self, stream: int, line: str, newline: bool = True) -> None:
        line = line.rstrip("\r")
        self.tail.append(line)
        if self.keep:
            (self.stdout if stream == 1 else self.stderr).append(line + ("\n" if newline else ""))
        if self.stream_output:
            # Masked here, not only by Plait's handlers: any handler an application adds sees
            # the line without the secrets the container was given.
            self.logger.log(logging.INFO if stream == 1 else self.stderr_level, mask(line))

    def stdout_text(self) -> str:
        return "".join(self.stdout)

    def stderr_text(self) -> str:
        return "".join(self.stderr)

    def stdout_lines(self) -> list[str]:
        return [line.rstrip("\n") for line in self.stdout]

    def tail_lines(self) -> str:
        return "\n".join(self.tail)

    def tail_text(self) -> str:
        if not self.tail:
            return ""
        return f"\nLast {len(self.tail)} line(s) of output:\n" + mask(self.tail_lines())


def follow_output(
    api: Any, container_id: str, follow: bool = True, on_socket: Callable[[Any], None] | None = None
) -> Iterator[tuple[int, bytes]]:
    """The container's output as ``(stream, bytes)`` frames (1: stdout, 2: stderr), from its
    start until it exits (or, with ``follow=False``, what it has printed so far), in the order
    the engine recorded them.

    The Docker SDK's own ``logs(stream=True)`` drops which stream a frame came from (and its
    ``attach`` mis-reads Podman's frames), so this reads the multiplexed stream itself.
    """
    url = api._url("/containers/{0}/logs", container_id)
    params = {"follow": 1 if follow else 0, "stdout": 1, "stderr": 1, "timestamps": 0, "tail": "all"}
    response = api._get(url, params=params, stream=True)
    try:
        api._raise_for_status(response)
        # A quiet container may print nothing for longer than the client's timeout.
        sock = api._get_raw_response_socket(response)
        api._disable_socket_timeout(sock)
        if on_socket is not None:
            on_socket(sock)  # to end a stream that outlives its container (see follow_until_exit)
        raw = response.raw
        while True:
            header = raw.read(8)
            if len(header) < 8:
                return
            stream, length = struct.unpack(">BxxxL", header)
            if not length:
                continue
            data = raw.read(length)
            if not data:
                return
            yield stream, data
    finally:
        response.close()


def follow_until_exit(
    api: Any, container_id: str, exited: Callable[[], object], name: str, grace: float | None = None
) -> Iterator[tuple[int, bytes]]:
    """``follow_output(api, container_id)`` that ends once the container has exited, even when
    the engine keeps the stream open.

    Podman (4.3) can keep a followed log stream open after the container exited, sending
    nothing more, so whoever reads it would wait for ever (``DockerRun``'s task run, the Docker
    agent's follower thread). A thread calls ``exited()``, which returns once the container
    has exited (and raises when it cannot tell: then the stream is left alone); if the stream
    is still open ``grace`` seconds later (default ``_STREAM_GRACE``), it shuts the stream's
    socket and the stream ends here, without an error.

    The stream is not always the whole output: Podman (4.3) can end a followed stream (or stop
    feeding it) before it has sent the last lines a container wrote just before it exited,
    and a removed container's log goes with it. Remember what the stream delivered in a
    ``ReceivedOutput`` and, after the exit and before removing the container, read the rest
    from the stored log: ``received.missed(follow_output(api, container_id, follow=False))``.
    """
    cut = _StreamCut(exited, name, _STREAM_GRACE if grace is None else grace)
    try:
        yield from follow_output(api, container_id, on_socket=cut.add)
    except Exception:
        if not cut.done:
            raise
    finally:
        cut.stream_ended()


class _StreamCut:
    """Shuts the sockets of a followed log stream ``grace`` seconds after ``exited()``
    returned, unless ``stream_ended()`` was called by then (see ``follow_until_exit``)."""

    def __init__(self, exited: Callable[[], object], name: str, grace: float) -> None:
        self.done = False
        self._name = name
        self._grace = grace
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, args=(exited,), name=f"plait-docker-exit-{name}", daemon=True
        )
        self._watcher.start()

    def add(self, sock: Any) -> None:
        """The stream's socket (the SDK's ``SocketIO`` over it, or the socket itself)."""
        with self._lock:
            self._sockets.append(sock)
            done = self.done
        if done:  # the container exited long ago: the stream would start and never end
            _shut(sock)

    def stream_ended(self) -> None:
        self._ended.set()

    def _watch(self, exited: Callable[[], object]) -> None:
        try:
            exited()
        except Exception:
            return  # removed, cancelled or the engine went away: the stream ends (or fails) by itself
        if self._ended.wait(self._grace):
            return
        with self._lock:
            self.done = True
            sockets = list(self._sockets)
        _log().debug(
            "The log stream of container %s was still open %gs after it exited; cutting it", self._name, self._grace
        )
        for sock in sockets:
            _shut(sock)


class ReceivedOutput:
    """What a followed log stream delivered, remembered as blocks (a length and a digest,
    each ending at a line's end; the last one in full) so that ``missed`` can tell, from the
    stored log read after the exit, what the stream did not deliver.

    Podman (4.3) does not deliver a followed log whole: it ends the stream ~0.25 s after the
    container died, often before it has read the last lines the container wrote, and while a
    container is exiting it can drop lines from the middle of the stream (seen: ``9450`` then
    ``18292``); an auto-removed container's stored log goes with it (Podman issue #2692). The
    stored log, read once the container has exited and before it is removed, has everything.
    """

    BLOCK = 4096

    def __init__(self) -> None:
        self.bytes = 0
        self._blocks: list[tuple[int, bytes]] = []
        self._open = bytearray()

    def add(self, data: bytes) -> None:
        """``data`` was delivered (and written out) from the followed stream."""
        self.bytes += len(data)
        self._open += data
        if len(self._open) >= self.BLOCK:
            end = self._open.rfind(b"\n") + 1
            if end:
                self._blocks.append((end, _digest(self._open[:end])))
                del self._open[:end]

    def missed(
        self, stored: Iterable[tuple[int, bytes]], on_restart: Callable[[], None] | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """The frames of ``stored`` (the whole stored log, ``follow_output(..., follow=False)``)
        the stream did not deliver: what follows the delivered bytes when they are the stored
        log's beginning (the usual case); else everything from the start of the first block
        that differs, after ``on_restart()`` (drop a partial line held from the stream: its
        bytes come again). Nothing is lost; lines of that block already written out come
        twice."""
        frames = iter(stored)
        held: list[tuple[int, bytes]] = []  # stored frames not yet matched nor yielded
        held_bytes = 0
        blocks: list[tuple[int, bytes | None]] = [*self._blocks, (len(self._open), None)]
        for length, digest in blocks:
            while held_bytes < length:
                frame = next(frames, None)
                if frame is None:
                    break
                held.append(frame)
                held_bytes += len(frame[1])
            head = b"".join(data for _, data in held)[:length]
            same = len(head) == length and (head == bytes(self._open) if digest is None else _digest(head) == digest)
            if not same:
                if on_restart is not None:
                    on_restart()
                yield from held
                yield from frames
                return
            held, held_bytes = _drop(held, length), held_bytes - length
        yield from held
        yield from frames


def _digest(data: bytes | bytearray) -> bytes:
    import hashlib

    return hashlib.blake2b(data, digest_size=16).digest()


def _drop(frames: list[tuple[int, bytes]], count: int) -> list[tuple[int, bytes]]:
    """``frames`` without their first ``count`` bytes (a frame cut in two keeps its stream)."""
    out = []
    for stream, data in frames:
        if count >= len(data):
            count -= len(data)
            continue
        out.append((stream, data[count:]))
        count = 0
    return out


def _shut(sock: Any) -> None:
    try:  # the SDK hands a SocketIO over the socket, which has no shutdown: shut the socket under it
        getattr(sock, "_sock", sock).shutdown(socket.SHUT_RDWR)
    except Exception:
        pass  # closed already: the stream has ended


class DockerBuild(DockerTask):
    """Builds an image, from a folder or from a Dockerfile given as text; the build's output
    goes into the run's log. Returns the image's id (``sha256:...``).

    Args:
        path: the build context, a folder (its ``.dockerignore`` applies).
        dockerfile: the Dockerfile's *text*, e.g. ``"FROM alpine\\nRUN apk add curl\\n"``. With
            ``path``, the folder is the context; without, the context is empty.
        dockerfile_path: a Dockerfile inside ``path`` other than ``Dockerfile``.
        tag: a name for the image (``"app:1.2"``), or a list of names.
        buildargs: ``ARG`` values (``{"VERSION": "1.2"}``).
        labels: labels on the image.
        target: the stage of a multi-stage build to stop at.
        network_mode: the network of ``RUN`` steps (``"none"``, ``"host"``...).
        nocache: build every step again; ``pull``: pull a newer base image first.
        platform: e.g. ``"linux/amd64"``.
        stream_output: log each line of the build's output.
        docker, **kwargs: as for ``DockerTask``.

    Example::

        build = DockerBuild(dockerfile="FROM busybox\\nRUN echo hello > /hello\\n", tag="hello:1")
        image_id = build.run()
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        dockerfile: str | None = None,
        *,
        dockerfile_path: str | None = None,
        tag: str | list[str] | None = None,
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        target: str | None = None,
        network_mode: str | None = None,
        nocache: bool = False,
        pull: bool = False,
        platform: str | None = None,
        stream_output: bool = True,
        docker: DockerSettings | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(docker=docker, **kwargs)
        owner = self._owner()
        self.path = None if path is None else str(path)
        self.dockerfile = _check_dockerfile(dockerfile, owner)
        if dockerfile_path is not None and dockerfile is not None:
            raise DockerConfigError(
                f"{owner}: give dockerfile (its text) or dockerfile_path (a file in path), not both"
            )
        self.dockerfile_path = dockerfile_path
        self.tags = _check_tags(tag, owner)
        self.buildargs = {str(k): str(v) for k, v in (buildargs or {}).items()}
        self.labels = check_labels(dict(labels), owner) if labels is not None else None
        self.target = target
        self.network_mode = network_mode
        self.nocache = nocache
        self.pull_base = pull
        self.platform = platform
        self.stream_output = stream_output

    def run(  # type: ignore[override]
        self,
        path: str | os.PathLike[str] | None = None,
        dockerfile: str | None = None,
        tag: str | list[str] | None = None,
        buildargs: Mapping[str, str] | None = None,
    ) -> str:
        """Build the image (arguments given here override the task's own) and return its id."""
        from plait.logging import run_logger

        owner = self._owner()
        path = str(path) if path is not None else self.path
        text = _check_dockerfile(dockerfile, owner) if dockerfile is not None else self.dockerfile
        tags = _check_tags(tag, owner) if tag is not None else self.tags
        args = {**self.buildargs, **{str(k): str(v) for k, v in (buildargs or {}).items()}}
        context = _build_context(path, text, self.dockerfile_path, owner)
        api, where, _settings = self._connection()
        options: dict[str, Any] = {
            "tag": tags[0] if tags else None,
            "buildargs": args or None,
            "labels": self.labels,
            "target": self.target,
            "network_mode": self.network_mode,
            "nocache": self.nocache,
            "pull": self.pull_base,
            "platform": self.platform,
            "rm": True,
            "forcerm": True,
            "decode": True,
            **context,
        }
        run_logger.info("Building image %s on %s", tags[0] if tags else "(untagged)", where)
        lines: deque[str] = deque(maxlen=OUTPUT_TAIL)
        image_id = None
        last_stream = None
        try:
            for chunk in api.build(**{k: v for k, v in options.items() if v is not None}):
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    tail = "\n".join(lines)
                    raise DockerEngineError(
                        mask(
                            f"{owner}: the build failed: {detail.strip()}"
                            + (f"\nLast {len(lines)} line(s) of the build:\n{tail}" if lines else "")
                        )
                    )
                if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                text_out = chunk.get("stream") or chunk.get("status")
                if text_out:
                    for line in text_out.splitlines():
                        if not line.strip():
                            continue
                        lines.append(line)
                        last_stream = line
                        if self.stream_output:
                            run_logger.info(mask(line))
        except DockerEngineError:
            raise
        except Exception as exc:
            raise self._engine_error("build the image", where, exc) from None
        finally:
            fileobj = context.get("fileobj")
            if fileobj is not None:
                fileobj.close()
        if image_id is None:
            image_id = _image_id_from_output(last_stream)
        if image_id is None and tags:
            image_id = _inspect_image_id(api, tags[0])
        if image_id is None:
            raise DockerEngineError(f"{owner}: the engine at {where} did not say which image it built")
        for extra in tags[1:]:
            repository, _, version = _split_tag(extra)
            try:
                api.tag(image_id, repository, version)
            except Exception as exc:
                raise self._engine_error(f"tag the image as {extra}", where, exc) from None
        run_logger.info("Built image %s%s", image_id, f" ({', '.join(tags)})" if tags else "")
        return image_id

    def options(self) -> dict[str, Any]:
        out = super().options()
        out["build"] = {"path": self.path, "tags": self.tags, "dockerfile": self.dockerfile is not None}
        return out


class DockerPull(DockerTask):
    """Pulls an image; returns its id. Credentials come from ``[plugins.docker.registries]``.

    Args:
        repository: ``"alpine"``, ``"registry.example.com/team/app"``; may end in ``:tag``.
        tag: the tag (default the one in ``repository``, else ``latest``).
        platform: e.g. ``"linux/arm64"``.
        docker, **kwargs: as for ``DockerTask``.
    """

    def __init__(
        self,
        repository: str | None = None,
        tag: str | None = None,
        *,
        platform: str | None = None,
        docker: DockerSettings | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(docker=docker, **kwargs)
        self.repository = repository
        self.tag = tag
        self.platform = platform

    def run(self, repository: str | None = None, tag: str | None = None) -> str:  # type: ignore[override]
        """Pull the image and return its id."""
        owner = self._owner()
        name = _image_ref(repository or self.repository, tag or self.tag, owner)
        api, where, settings = self._connection()
        return pull_image(api, name, settings, where, owner, platform=self.platform)


class DockerPush(DockerTask):
    """Pushes an image to its registry; returns the pushed digest (``sha256:...``) when the
    registry reports one, else the image name. Credentials come from
    ``[plugins.docker.registries]``; the push's progress goes into the run's log.

    Args:
        repository: ``"registry.example.com/team/app"``; may end in ``:tag``.
        tag: the tag (default the one in ``repository``, else ``latest``).
        docker, **kwargs: as for ``DockerTask``.
    """

    def __init__(
        self,
        repository: str | None = None,
        tag: str | None = None,
        *,
        docker: DockerSettings | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(docker=docker, **kwargs)
        self.repository = repository
        self.tag = tag

    def run(self, repository: str | None = None, tag: str | None = None) -> str:  # type: ignore[override]
        """Push the image and return its digest."""
        from plait.logging import run_logger

        owner = self._owner()
        name = _image_ref(repository or self.repository, tag or self.tag, owner)
        repo, _, version = _split_tag(name)
        api, where, settings = self._connection()
        auth = registry_auth(repo, settings)
        run_logger.info("Pushing %s from %s", name, where)
        digest = None
        progress = _Progress()
        try:
            for chunk in api.push(repo, tag=version, stream=True, decode=True, auth_config=auth):
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise DockerEngineError(mask(f"{owner}: pushing {name} failed: {str(detail).strip()}"))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
                progress.show(chunk)
                found = re.search(r"digest: (sha256:[0-9a-f]{64})", str(chunk.get("status", "")))
                if found:
                    digest = found.group(1)
        except DockerEngineError:
            raise
        except Exception as exc:
            raise self._engine_error(f"push {name}", where, exc) from None
        run_logger.info("Pushed %s%s", name, f" ({digest})" if digest else "")
        return digest or name


class DockerRemove(DockerTask):
    """Removes an image (``image=``) or a container (``container=``). Returns ``True`` when it
    removed something, ``False`` when there was nothing to remove (with ``missing_ok``).

    Args:
        image: an image name or id.
        container: a container name or id (a running one only with ``force``).
        force: remove an image used by containers, or a running container.
        missing_ok: nothing to remove is not an error (default ``True``).
        docker, **kwargs: as for ``DockerTask``.
    """

    def __init__(
        self,
        image: str | None = None,
        *,
        container: str | None = None,
        force: bool = False,
        missing_ok: bool = True,
        docker: DockerSettings | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(docker=docker, **kwargs)
        self.image = image
        self.container = container
        self.force = force
        self.missing_ok = missing_ok

    def run(self, image: str | None = None, container: str | None = None) -> bool:  # type: ignore[override]
        """Remove the image or container; ``False`` if it did not exist."""
        from docker.errors import NotFound

        from plait.logging import run_logger

        owner = self._owner()
        image = image if image is not None else (None if container is not None else self.image)
        container = container if container is not None else (None if image is not None else self.container)
        if (image is None) == (container is None):
            raise DockerConfigError(f"{owner}: give image= or container= (one of them) to remove")
        api, where, _settings = self._connection()
        what = f"image {image}" if image is not None else f"container {container}"
        try:
            if image is not None:
                api.remove_image(image, force=self.force)
            else:
                api.remove_container(container, force=self.force, v=True)
        except NotFound:
            if not self.missing_ok:
                raise DockerEngineError(f"{owner}: {what} does not exist on {where}") from None
            run_logger.info("%s is not on %s: nothing to remove", what.capitalize(), where)
            return False
        except Exception as exc:
            raise self._engine_error(f"remove {what}", where, exc) from None
        run_logger.info("Removed %s", what)
        return True


# --- shared by the tasks -------------------------------------------------------------------------


def pull_image(
    api: Any, name: str, settings: DockerSettings, where: str, owner: str, platform: str | None = None
) -> str:
    """Pull ``name`` (``repo[:tag]``), logging its progress; return the image's id."""
    from plait.logging import run_logger

    repo, _, version = _split_tag(name)
    auth = registry_auth(repo, settings)
    run_logger.info("Pulling %s on %s", name, where)
    progress = _Progress()
    try:
        for chunk in api.pull(repo, tag=version, stream=True, decode=True, auth_config=auth, platform=platform):
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise DockerEngineError(mask(f"{owner}: pulling {name} failed: {str(detail).strip()}"))
            progress.show(chunk)
        image = api.inspect_image(name)
    except DockerEngineError:
        raise
    except Exception as exc:
        raise engine_error(owner, f"pull {name}", where, exc) from None
    run_logger.info("Pulled %s (%s)", name, image["Id"])
    return image["Id"]


def engine_error(owner: str, action: str, where: str, exc: BaseException) -> DockerEngineError:
    """A readable ``DockerEngineError`` for a failed request (``exc`` is not attached: its text
    can hold request details)."""
    from docker.errors import APIError

    if isinstance(exc, APIError):
        detail = exc.explanation or str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return DockerEngineError(
            mask(f"{owner}: could not {action}: the engine at {where} answered {exc.status_code}: {detail}")
        )
    if _is_connection_error(exc):
        return DockerEngineError(f"{owner}: {unreachable_message(where, exc)}")
    return DockerEngineError(mask(f"{owner}: could not {action} on {where}: {type(exc).__name__}: {exc}"))


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)):
        return True
    from docker.errors import DockerException

    return isinstance(exc, DockerException) and "connection" in str(exc).lower()


class _Progress:
    """Logs the status lines of a pull or push once per layer and status, not every tick."""

    def __init__(self) -> None:
        from plait.logging import run_logger

        self.logger = run_logger
        self.seen: set[tuple[str, str]] = set()

    def show(self, chunk: dict[str, Any]) -> None:
        status = chunk.get("status") or chunk.get("stream")
        if not status:
            return
        key = (str(chunk.get("id", "")), str(status))
        if key in self.seen:
            return
        self.seen.add(key)
        text = f"{chunk['id']}: {status}" if chunk.get("id") else str(status)
        for line in text.strip().splitlines():
            if line.strip():
                self.logger.info(line)


def _run_labels() -> dict[str, str]:
    from plait import context as plait_context

    flow = plait_context._flow_ctx.get()
    info = plait_context._task_ctx.get()
    labels = {MANAGED_LABEL: "true"}
    if flow:
        labels["plait.flow"] = str(flow.get("flow_name", ""))
        if flow.get("flow_run_id"):
            labels["plait.flow-run-id"] = str(flow["flow_run_id"])
    if info is not None:
        labels["plait.task"] = info.task.name
        if info.map_index is not None:
            labels["plait.map-index"] = str(info.map_index)
    return labels


def _container_name(task_name: str) -> str:
    from plait import context as plait_context

    info = plait_context._task_ctx.get()
    base = re.sub(r"[^a-zA-Z0-9_.-]+", "-", task_name).strip("-.") or "task"
    index = f"-{info.map_index}" if info is not None and info.map_index is not None else ""
    return f"plait-{base[:40]}{index}-{uuid.uuid4().hex[:8]}"


def _resolve_env(environment: dict[str, Any]) -> dict[str, str]:
    resolved = {}
    for key, value in environment.items():
        if isinstance(value, Secret):
            value = value.get()  # registered for masking
        elif value is None:
            value = ""
        resolved[key] = str(value)
    return resolved


def _show_command(command: Any) -> str:
    if isinstance(command, str):
        return command
    import shlex

    return " ".join(shlex.quote(str(part)) for part in command)


def _exit_reason(code: int) -> str:
    if code == 137:
        return " (killed: SIGKILL, often out of memory)"
    if code == 143:
        return " (terminated: SIGTERM)"
    if code in (126, 127):
        return " (the command could not be run or was not found in the image)"
    return ""


def _log():
    from plait import get_logger

    return get_logger("docker")


# --- checks ------------------------------------------------------------------------------------


def _check_image(image: Any, owner: str, required: bool) -> str | None:
    if image is None:
        if required:
            raise DockerConfigError(f"{owner} has no image: pass image= when creating the task or when calling it")
        return None
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        raise DockerConfigError(f"{owner}: image must be an image name or id such as 'alpine:3.20', got {image!r}")
    return image


def _check_command(command: Any, owner: str) -> Any:
    if command is None or isinstance(command, str):
        return command
    if isinstance(command, (list, tuple)) and all(isinstance(part, (str, int, float)) for part in command):
        return [str(part) for part in command]
    raise DockerConfigError(f"{owner}: command must be a string or a list of strings, got {command!r}")


def _check_env(env: Any, owner: str) -> dict[str, Any]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise DockerConfigError(f"{owner}: env must be a dict of NAME -> value, got {type(env).__name__}")
    out = {}
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise DockerConfigError(f"{owner}: environment variable name {key!r} is not valid")
        if isinstance(value, str):
            pass
        elif not isinstance(value, (Secret, int, float, bool, type(None))):
            raise DockerConfigError(
                f"{owner}: environment variable {key} must be text, a number or a plait Secret, "
                f"got {type(value).__name__}"
            )
        out[key] = value
    return out


def _check_volumes(volumes: Any, owner: str) -> list[str] | None:
    if volumes is None:
        return None
    binds: list[str] = []
    if isinstance(volumes, Mapping):
        for source, target in volumes.items():
            if isinstance(target, str):
                bind, mode = target, "rw"
            elif isinstance(target, Mapping) and isinstance(target.get("bind"), str):
                bind, mode = target["bind"], str(target.get("mode", "rw"))
            else:
                raise DockerConfigError(
                    f"{owner}: volume {source!r} must map to a container path or {{'bind': path, 'mode': 'ro'}}, "
                    f"got {target!r}"
                )
            binds.append(f"{_host_path(str(source))}:{bind}:{mode}")
    elif isinstance(volumes, (list, tuple)):
        for entry in volumes:
            parts = str(entry).split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise DockerConfigError(f"{owner}: volume {entry!r} must be 'host:container' or 'host:container:mode'")
            parts[0] = _host_path(parts[0])
            binds.append(":".join(parts))
    else:
        raise DockerConfigError(
            f"{owner}: volumes must be a dict or a list of 'host:container[:mode]', got {volumes!r}"
        )
    for bind in binds:
        if not bind.split(":")[1].startswith("/"):
            raise DockerConfigError(f"{owner}: the container path of volume {bind!r} must be absolute")
    return binds


def _host_path(source: str) -> str:
    # A bare name is a named volume; anything that looks like a path is made absolute.
    if "/" in source or source.startswith("."):
        return str(Path(source).expanduser().resolve())
    return source


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*$", re.I)


def _check_mem_limit(value: Any, owner: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise DockerConfigError(f"{owner}: mem_limit must be bytes or a size like '512m' or '2g', got {value!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit])


def _check_cpus(value: Any, owner: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise DockerConfigError(f"{owner}: cpus must be a positive number (0.5, 2), got {value!r}")
    return float(value)


def _check_level(level: Any, owner: str) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and isinstance(logging.getLevelName(level.upper()), int):
        return logging.getLevelName(level.upper())
    raise DockerConfigError(f"{owner}: stderr_level must be a logging level such as 'INFO', got {level!r}")


def _check_dockerfile(text: Any, owner: str) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise DockerConfigError(f"{owner}: dockerfile must be the Dockerfile's text, got {text!r}")
    if not any(c.isspace() for c in text.strip()):
        raise DockerConfigError(
            f"{owner}: dockerfile= is the Dockerfile's text (e.g. 'FROM alpine\\nRUN ...'), not a file name; "
            f"to build with the file {text!r} in the build folder, pass path=... and dockerfile_path={text!r}"
        )
    return text


def _check_tags(tag: Any, owner: str) -> list[str]:
    if tag is None:
        return []
    tags = [tag] if isinstance(tag, str) else list(tag) if isinstance(tag, (list, tuple)) else None
    if tags is None or not all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in tags):
        raise DockerConfigError(f"{owner}: tag must be an image name like 'app:1.2' or a list of them, got {tag!r}")
    return tags


def _image_ref(repository: Any, tag: str | None, owner: str) -> str:
    if not isinstance(repository, str) or not repository:
        raise DockerConfigError(f"{owner} has no repository: pass repository= ('alpine', 'registry:5000/team/app')")
    repo, has_tag, version = _split_tag(repository)
    if tag:
        return f"{repo}:{tag}"
    return f"{repo}:{version}" if has_tag else f"{repo}:latest"


def _split_tag(name: str) -> tuple[str, bool, str]:
    """``registry:5000/app:1.2`` -> (``registry:5000/app``, True, ``1.2``); digests stay whole."""
    if "@" in name:
        return name, False, ""
    repo, sep, version = name.rpartition(":")
    if sep and "/" not in version:
        return repo, True, version
    return name, False, "latest"


def _build_context(path: str | None, text: str | None, dockerfile_path: str | None, owner: str) -> dict[str, Any]:
    if path is None and text is None:
        raise DockerConfigError(
            f"{owner}: nothing to build: pass path= (a folder) and/or dockerfile= (the Dockerfile's text)"
        )
    if path is not None and not Path(path).is_dir():
        raise DockerConfigError(f"{owner}: the build folder {path!r} does not exist or is not a folder")
    if text is None:
        assert path is not None
        if dockerfile_path is None and not (Path(path) / "Dockerfile").is_file():
            raise DockerConfigError(
                f"{owner}: {path!r} has no Dockerfile; add one, name another with dockerfile_path=, "
                "or pass its text as dockerfile="
            )
        return {"path": path, "dockerfile": dockerfile_path}
    if path is None:
        return {"fileobj": io.BytesIO(text.encode("utf-8"))}
    from docker.utils.build import tar

    name = ".plait.Dockerfile"
    ignore = Path(path) / ".dockerignore"
    exclude = (
        [p for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")] if ignore.is_file() else []
    )
    archive = tar(path, exclude=exclude, dockerfile=(name, text))
    return {"fileobj": archive, "custom_context": True, "dockerfile": name}


def _image_id_from_output(line: str | None) -> str | None:
    if line is None:
        return None
    found = re.search(r"Successfully built ([0-9a-f]{12,64})", line)
    return found.group(1) if found else None


def _inspect_image_id(api: Any, name: str) -> str | None:
    try:
        return api.inspect_image(name)["Id"]
    except Exception:
        return None
