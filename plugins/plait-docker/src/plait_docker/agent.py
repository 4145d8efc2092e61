"""The Docker agent: every flow run of a Plait server in a container of its own.

``plait agent start --type docker --image IMAGE`` polls the server like any agent (the base
class ``plait.agents.Agent`` claims, heartbeats, cancels and reports exits) and starts each
claimed run as ``plait execute flow-run ID`` in a new container:

- **the image** is the flow's own (``Flow(run_config={"docker": {"image": ...}})``, registered
  with the flow), else the agent's (``--image``, ``[plugins.docker.agent] image``). It needs
  Python and Plait (``plait`` on ``PATH``) and whatever the flow imports;
- **the flow's code** reaches the container through its storage: a volume-mounted file (the
  path the flow was registered with must be the same inside: ``--volume /srv/flows:/srv/flows:ro``),
  a module baked into the image (``plait register --storage module:pkg.flows``), or a storage
  kind that fetches it (``s3://`` with plait-s3 in the image);
- **the environment** has the server's URL and the run's run-scoped key (plus ``--env``
  values and the flow's ``env``). The key is never on the command line, in a label or in a
  log; it *is* in the container's configuration, so the engine's users can read it with
  ``docker inspect`` while the run is under way (it can only read and report that run, and
  the server revokes it when the run stops being under way);
- **labels** name the run (``plait.flow-run-id``, ``plait.flow``, ``plait.flow-run``,
  ``plait.flow-version``, ``plait.agent``);
- the container is **removed by the agent** once it has ended and its output has been read to
  the end (not with the engine's auto-remove: Podman deletes an auto-removed container's log
  before a reader has had all of it, so the last lines a run printed were lost). Each label
  ``plait.agent`` names the agent: a container whose run ended while its agent was gone
  (stopped, or killed with ``kill -9``) stays on the engine, exited, until an agent of that
  name starts again: it copies their output to its standard error and removes them first.

The agent learns a container's exit code from a *wait* request registered before the container
starts (the engine answers its headers once the wait is registered, so even a container that
exits at once is seen), reports it like the local agent reports a process's exit code, and
the server settles a run the process did not end (a container killed from outside) as
crashed: rescheduled, or failed after ``max_reschedules``. The container's output goes to the
agent's standard error, as a local agent's subprocess output does: all of it (the stream read
while it runs, then the stored log past what the stream delivered, then the removal).

Stopping the agent (Ctrl-C, SIGTERM) stops the claiming and leaves the containers running, as
the local agent leaves its processes: each run goes on, reports and heartbeats on its own; the
agent first finishes the containers that have just ended (their output read, removed). A
container still running stays on the engine when it ends, until the agent (same name) starts
again. Restarting or upgrading an agent never kills runs; a
cancellation does (``plait flow-run cancel``: the run stops at its next task, or its container
is killed after ``cancel_grace``).
"""

from __future__ import annotations

import logging
import os
import secrets as _random
import sys
import threading
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from plait.agents import Agent, AgentError
from plait_docker.errors import DockerConfigError, DockerEngineError, DockerError

if TYPE_CHECKING:
    import click

    from plait.agents import AgentSettings
    from plait.client import ClaimedRun, Client

__all__ = ["ContainerHandle", "DockerAgent"]

logger = logging.getLogger("plait.agent")

#: Keys of a flow's ``run_config["docker"]`` table.
RUN_CONFIG_KEYS = ("image", "env")
#: Labels on every flow-run container (besides the configured ones).
AGENT_LABEL = "plait.agent"
PULL_POLICIES = ("missing", "always", "never")
_MASK = "********"


class DockerAgent(Agent):
    """Runs each flow run as ``plait execute flow-run ID`` in a new container (see the module docstring).

    Args:
        client: the server's API client (a key with scope ``run``).
        settings: the agent's ``AgentSettings`` (name, labels, max_runs, poll_interval, cancel_grace).
        image: the image of runs whose flow names none (required: here or in the config).
        volumes: ``"HOST:CONTAINER[:ro]"`` mounts of every run's container.
        env: ``"NAME=VALUE"`` (or ``"NAME"``: its value in the agent's environment) for every
            run's container.
        network: the containers' network mode (``host``, ``bridge``, a network's name).
        server_url: the server's URL as the containers reach it (default: the agent's).
        pull: ``missing`` (default), ``always`` or ``never``.
        docker: ``DockerSettings`` (or a dict) over ``[plugins.docker]``: where the engine is.

    Each argument left unset comes from ``[plugins.docker.agent]``.
    """

    type = "docker"

    @classmethod
    def cli_options(cls) -> list[click.Option]:
        import click

        return [
            click.Option(
                ["--image"],
                help="The image of runs whose flow names none (Flow(run_config={'docker': {'image': ...}})); "
                "it needs Python and Plait. Required (or [plugins.docker.agent] image)",
            ),
            click.Option(
                ["--volume", "volumes"],
                multiple=True,
                metavar="HOST:CONTAINER[:ro]",
                help="Mount into every run's container (repeatable), e.g. the folder of file-stored flows, "
                "at the same path",
            ),
            click.Option(
                ["--env", "env"],
                multiple=True,
                metavar="NAME[=VALUE]",
                help="Environment variable of every run's container (repeatable); NAME alone passes the agent's value",
            ),
            click.Option(
                ["--network"], help="The containers' network: host, bridge, a network's name (default: the engine's)"
            ),
            click.Option(["--server-url"], help="The server's URL as the containers reach it (default: the agent's)"),
            click.Option(
                ["--pull"],
                type=click.Choice(PULL_POLICIES),
                help="When to pull a run's image: missing (default), always, never",
            ),
        ]

    def __init__(
        self,
        client: Client,
        settings: AgentSettings | None = None,
        *,
        image: str | None = None,
        volumes: Iterable[str] = (),
        env: Iterable[str] = (),
        network: str | None = None,
        server_url: str | None = None,
        pull: str | None = None,
        docker: Any = None,
        **options: Any,
    ) -> None:
        from plait_docker.settings import agent_settings, as_settings, connection, effective_settings
        from plait_docker.tasks import _check_cpus, _check_image, _check_mem_limit, _check_volumes

        super().__init__(client, settings, **options)
        owner = "Docker agent"
        try:
            conf = agent_settings()
            self.image = _check_image(image or conf.get("image"), owner, required=False)
            self.volumes = _check_volumes(list(volumes) or list(conf.get("volumes") or []), owner) or []
            self.env = _agent_env(list(env) or list(conf.get("env") or []))
            self.network = network or conf.get("network")
            self.server_url = (server_url or conf.get("server_url") or client.url).rstrip("/")
            self.pull = pull or conf.get("pull") or "missing"
            if self.pull not in PULL_POLICIES:
                raise DockerConfigError(f"{owner}: pull must be one of {', '.join(PULL_POLICIES)}, got {self.pull!r}")
            self.mem_limit = _check_mem_limit(conf.get("mem_limit"), owner)
            self.cpus = _check_cpus(conf.get("cpus"), owner)
            self.user = conf.get("user")
            self.labels = dict(conf.get("labels") or {})
            if self.image is None:
                raise DockerConfigError(
                    f"{owner}: no image. Give the image of flow runs whose flow names none: "
                    'plait agent start --type docker --image IMAGE, or [plugins.docker.agent] image = "IMAGE" '
                    "(a flow's Flow(run_config={'docker': {'image': ...}}) wins over it); it needs Python and Plait"
                )
            self.docker_settings = effective_settings(as_settings(docker, owner))
            conn = connection(self.docker_settings)
        except DockerConfigError as exc:
            raise AgentError(str(exc)) from None
        self.api = conn.client.api
        self.where = conn.where
        self._leftovers_done = False
        self._check_engine()

    # -- Agent ---------------------------------------------------------------------------------

    @classmethod
    def check_run_config(cls, table: dict[str, Any]) -> None:
        """A flow's ``run_config["docker"]``: ``image`` (a name) and ``env`` (``{NAME: text}``)."""
        _run_config(table, "run_config['docker']")

    def run(self, max_polls: int | None = None) -> None:
        """``Agent.run``, after removing the containers of this agent's name whose runs ended
        while it was gone; at the end, the containers that have just exited are finished
        (their output read, removed) before it returns."""
        if not self._leftovers_done:
            self._leftovers_done = True
            self.remove_leftovers()
        try:
            super().run(max_polls)
        finally:
            self._finish_exited()

    def remove_leftovers(self) -> list[str]:
        """Copy the output of this agent's ended containers (label ``plait.agent`` = its name:
        runs that ended while it was stopped or killed) to its standard error, and remove them.
        Returns their names. Containers still running are left alone: their runs go on."""
        try:
            rows = [
                row
                for row in self.api.containers(all=True, filters={"label": f"{AGENT_LABEL}={self.name}"})
                if str(row.get("State", "")).lower() in ("exited", "created", "dead", "stopped", "configured")
            ]
        except Exception as exc:
            logger.warning("Agent %r: could not list its leftover containers on %s: %s", self.name, self.where, exc)
            return []
        names = []
        for row in rows:
            name = (row.get("Names") or [row["Id"][:12]])[0].lstrip("/")
            labels = row.get("Labels") or {}
            handle = ContainerHandle(self.api, name, self.where, labels.get("plait.flow-run-id", "?"))
            handle.id = row["Id"]
            logger.info(
                "Agent %r: container %s of flow run %s ended while the agent was away; its output:",
                self.name,
                name,
                handle.flow_run_id,
            )
            handle.collect()
            handle.remove()
            names.append(name)
        if names:
            logger.info("Agent %r: removed %d leftover container(s): %s", self.name, len(names), ", ".join(names))
        return names

    def _finish_exited(self) -> None:
        """On the way out: let the handles whose container has exited read its output and remove it."""
        handles = [s.handle for s in [*self.running.values(), *self._stale] if isinstance(s.handle, ContainerHandle)]
        going = []
        for handle in handles:
            if not handle.exited and handle.running_on_engine():
                going.append(handle)
                continue
            # exited (the engine's answer to the handle's wait may still be on its way, under
            # load): its output is read and it is removed before the agent goes
            if not handle.finished(timeout=60):  # bounded: the engine may be gone
                going.append(handle)
        if going:
            logger.info(
                "Agent %r: %d container(s) still running (%s): they stay on the engine when they end, until "
                "the agent %r starts again (it removes them)",
                self.name,
                len(going),
                ", ".join(h.name for h in going),
                self.name,
            )

    def start_run(self, run: ClaimedRun) -> ContainerHandle:
        """Start ``run``'s container; returns at once (the container is created, pulled if need
        be, and started on a thread of its own, so a slow engine or a big pull never holds up
        the agent's heartbeats and claims)."""
        try:
            spec = self.container_spec(run)
        except AgentError as exc:
            # The flow's settings or the agent's cannot make a container: no attempt would do
            # better, so the run fails now, saying why (instead of being rescheduled).
            self._fail_run(run, str(exc))
            raise
        handle = ContainerHandle(self.api, spec["name"], self.where, run.flow_run.id)
        handle.launch(lambda: self._create(spec)["Id"], on_failure=lambda error: self._not_started(run, error))
        logger.info(
            "Agent %r: starting flow run %s in container %s (image %s)",
            self.name,
            run.flow_run.id,
            spec["name"],
            spec["image"],
        )
        return handle

    # -- the container ---------------------------------------------------------------------------

    def container_spec(self, run: ClaimedRun) -> dict[str, Any]:
        """The ``create_container`` arguments for ``run`` (``AgentError`` when it cannot have one)."""
        flow_name = (run.flow_run.flow_name or "").strip()
        table = dict((run.run_config or {}).get("docker") or {})
        config = _run_config(table, f"flow {flow_name!r}: run_config['docker']")
        image = config.get("image") or self.image  # the agent always has one (checked at its start)
        environment = {**self.env, **config.get("env", {})}
        environment.update(self.environment(run))  # last: the run's own, which nobody overrides
        environment["PLAIT__SERVER__URL"] = self.server_url
        labels = {
            **(self.docker_settings.labels or {}),
            **self.labels,
            AGENT_LABEL: self.name,
            "plait.flow": flow_name,
            "plait.flow-run-id": run.flow_run.id,
            "plait.flow-run": run.flow_run.name,
        }
        if run.flow_version is not None:
            labels["plait.flow-version"] = str(run.flow_version)
        host: dict[str, Any] = {
            # No auto-remove: the handle removes the container once it has read all its output.
            "binds": self.volumes or None,
            "network_mode": self.network,
            "mem_limit": self.mem_limit,
            "nano_cpus": None if self.cpus is None else int(self.cpus * 1e9),
        }
        ulimits = self.docker_settings.ulimits
        if ulimits:
            from docker.types import Ulimit

            from plait_docker.settings import ulimit_specs

            host["ulimits"] = [
                Ulimit(name=u["Name"], soft=u["Soft"], hard=u["Hard"]) for u in ulimit_specs(ulimits, "ulimits")
            ]
        host = {k: v for k, v in host.items() if v is not None}
        return {
            "image": image,
            "command": self.command(run),
            "name": f"plait-flow-run-{run.flow_run.id[:8]}-{_random.token_hex(3)}",
            "environment": environment,
            "labels": labels,
            "user": self.user,
            "host_config": self.api.create_host_config(**host),
            "detach": True,
            "tty": False,
            "stdin_open": False,
        }

    def _not_started(self, run: ClaimedRun, error: BaseException) -> None:
        """The run's container could not be created or started (called from its launch thread).

        An image that is not on the engine while the agent may not pull fails the run now,
        saying why (no attempt would do better); anything else (the engine away, a failed pull)
        is a crash like any other: the exit code 127 is reported and the server reschedules
        the run, or fails it after ``max_reschedules``; the reason is in the run's log.
        """
        message = self._scrub(str(error), run)
        logger.error("Agent %r: could not start flow run %s: %s", self.name, run.flow_run.id, message)
        if isinstance(error, _ImageMissing):
            self._fail_run(run, message)
            return
        self._log_to_run(run, f"The Docker agent {self.name!r} could not start the run's container: {message}")

    def _create(self, spec: dict[str, Any]) -> dict[str, Any]:
        from docker.errors import ImageNotFound

        from plait_docker.tasks import engine_error, pull_image

        owner = f"Docker agent {self.name!r}"
        image = spec["image"]
        if self.pull == "always":
            pull_image(self.api, image, self.docker_settings, self.where, owner)
        try:
            return self.api.create_container(**spec)
        except ImageNotFound:
            if self.pull == "never":
                raise _ImageMissing(
                    f"{owner}: image {image!r} is not on the engine at {self.where} (and the agent's pull policy "
                    "is never): build or pull it there"
                ) from None
        except Exception as exc:
            raise engine_error(owner, f"create a container of {image}", self.where, exc) from None
        pull_image(self.api, image, self.docker_settings, self.where, owner)
        try:
            return self.api.create_container(**spec)
        except Exception as exc:
            raise engine_error(owner, f"create a container of {image}", self.where, exc) from None

    # -- helpers ---------------------------------------------------------------------------------

    def _check_engine(self) -> None:
        """Fail at start when the engine does not answer, or the agent's image is missing for good."""
        from docker.errors import ImageNotFound

        from plait_docker.settings import unreachable_message

        owner = "Docker agent"
        try:
            self.api.ping()
        except Exception as exc:
            raise AgentError(f"{owner}: {unreachable_message(self.where, exc)}") from None
        try:
            self.api.inspect_image(self.image)
        except ImageNotFound:
            if self.pull == "never":
                raise AgentError(
                    f"{owner}: image {self.image!r} is not on the engine at {self.where} and --pull is never; "
                    "build or pull it first"
                ) from None
            logger.info("Agent: image %s is not on the engine yet; the first run pulls it", self.image)
        except Exception as exc:
            raise AgentError(f"{owner}: cannot inspect image {self.image!r} at {self.where}: {exc}") from None

    def _run_client(self, run: ClaimedRun) -> Client:
        from plait.client import Client

        return Client(self.client.url, run.token, retries=1, backoff=0.2, timeout=self.client.timeout)

    def _fail_run(self, run: ClaimedRun, message: str) -> None:
        """End ``run`` Failed with ``message`` (with its run-scoped key), and say so in its log."""
        from plait.client import FlowRunState
        from plait.errors import PlaitError

        message = self._scrub(message, run)
        self._log_to_run(run, message)
        client = self._run_client(run)
        try:
            (outcome,) = client.set_flow_run_states(
                [FlowRunState(run.flow_run.id, run.flow_run.version, {"type": "Failed", "message": message})]
            )
            if not outcome.ok:
                logger.warning("Agent %r: could not fail flow run %s: %s", self.name, run.flow_run.id, outcome.message)
        except PlaitError as exc:
            logger.warning("Agent %r: could not fail flow run %s: %s", self.name, run.flow_run.id, exc)
        finally:
            client.close()

    def _log_to_run(self, run: ClaimedRun, message: str, level: int = logging.ERROR) -> None:
        """One line in the run's log on the server (what the user reads with ``plait flow-run logs``)."""
        from plait.errors import PlaitError

        client = self._run_client(run)
        try:
            client.write_run_logs(
                [{"flow_run_id": run.flow_run.id, "message": message, "level": level, "logger": "plait.agent"}]
            )
        except PlaitError as exc:
            logger.warning("Agent %r: could not write to the log of flow run %s: %s", self.name, run.flow_run.id, exc)
        finally:
            client.close()

    @staticmethod
    def _scrub(text: str, run: ClaimedRun) -> str:
        from plait.secrets import mask

        return mask(text.replace(run.token, _MASK)) if run.token else mask(text)


class _ImageMissing(DockerEngineError):
    """The run's image is not on the engine and the agent may not pull it: the run fails."""


class ContainerHandle:
    """A flow run's container, as the agent watches it: ``poll()`` and ``kill()`` (``RunHandle``).

    ``launch(create)`` creates the container (``create()`` returns its id), registers a wait for
    its exit, starts it and copies its output to ``sink`` (the agent's standard error), all on
    daemon threads; a container that could not be created or started ends with code 127.
    Its exit code is never missed (the wait is registered before the start), nor is its
    output: it is followed while the container runs; once the container has exited, the
    stored log past what the stream delivered is read (Podman ends a followed stream before
    it has sent a container's last lines, and can also keep it open: the stream is cut
    ``stream_grace`` seconds after the exit, ``plait_docker.tasks.follow_until_exit``); then
    the handle removes the container. ``poll()`` gives the exit code once all of that is done.
    The container must not be created with auto-remove (its log would go with it).
    """

    #: Seconds a followed log stream may stay open after the exit before it is cut (what it
    #: did not deliver is read from the stored log: a shorter grace loses nothing).
    stream_grace = 1.0

    def __init__(self, api: Any, name: str, where: str, flow_run_id: str, sink: Any = None) -> None:
        self.api = api
        self.id: str | None = None
        self.name = name
        self.where = where
        self.flow_run_id = flow_run_id
        self.sink = sink if sink is not None else sys.stderr
        self.tail: deque[str] = deque(maxlen=20)
        self._code: int | None = None
        self._exit_code: int | None = None
        self._exited = threading.Event()  # the wait answered (the output may still be being read)
        self._done = threading.Event()  # exited, output read, container removed
        self._lock = threading.Lock()
        self._killed = False
        self._pending = b""

    # -- RunHandle -------------------------------------------------------------------------------

    def poll(self) -> int | None:
        """The exit code once the container has ended, else ``None``. A container killed by a
        signal (exit code 128 + N) gives ``-N``, as a killed process does; ``-1`` when the
        container vanished before its code could be read; 127 when it never started."""
        if not self._done.is_set():
            return None
        code = self._code if self._code is not None else -1
        if code not in (0, 1) and self.tail:
            logger.warning(
                "Container %s of flow run %s ended with code %s; its last lines:\n%s",
                self.name,
                self.flow_run_id,
                code,
                "\n".join(self.tail),
            )
            self.tail.clear()
        if 128 < code <= 128 + 64:
            return -(code - 128)
        return code

    def kill(self) -> None:
        """Kill and remove the container at once (its output is cut short). A container still
        being created is removed as soon as it exists, and never started."""
        from docker.errors import APIError, NotFound

        with self._lock:
            self._killed = True
            container_id = self.id
        if container_id is None:
            return
        try:
            self.api.kill(container_id)
        except NotFound:
            return
        except APIError as exc:
            if exc.status_code != 409:  # 409: not running any more
                logger.warning("Could not kill container %s on %s: %s", self.name, self.where, exc)
        except Exception as exc:
            logger.warning("Could not kill container %s on %s: %s", self.name, self.where, exc)
        self.remove()

    # -- starting ----------------------------------------------------------------------------------

    def launch(self, create: Any, on_failure: Any = None) -> None:
        """Create (``create()`` returns the container's id), watch and start the container on a
        daemon thread; ``on_failure(error)`` is called when that fails (a ``DockerError``)."""
        threading.Thread(
            target=self._launch, args=(create, on_failure), name=f"plait-docker-start-{self.name}", daemon=True
        ).start()

    def _launch(self, create: Any, on_failure: Any) -> None:
        from plait_docker.tasks import engine_error

        try:
            container_id = create()
            with self._lock:
                self.id = container_id
                killed = self._killed
            if killed:  # cancelled (or given to another attempt) while it was being created
                self.remove()
                self._finish(128 + 9)
                return
            self.watch()  # before the start: the engine then reports even an instant exit
            self.api.start(container_id)
        except BaseException as exc:
            if self.id is not None:
                self.remove()
            with self._lock:
                killed = self._killed
            if killed and isinstance(exc, Exception):  # killed between its creation and its start
                self._finish(128 + 9)
                return
            error = exc
            if isinstance(exc, Exception) and not isinstance(exc, DockerError):
                error = engine_error("Docker agent", f"start container {self.name}", self.where, exc)
            if on_failure is not None:
                try:
                    on_failure(error)
                except Exception:  # reporting is best effort; the exit code says it all
                    pass
            self._finish(127)
            if not isinstance(exc, Exception):
                raise
            return
        self.follow()

    def _finish(self, code: int) -> None:
        if not self._done.is_set():
            self._code = code
            self._exited.set()
            self._done.set()

    @property
    def exited(self) -> bool:
        """The container has exited (its output may still be being read before its removal)."""
        return self._exited.is_set()

    def running_on_engine(self) -> bool:
        """Whether the engine says the container is running or about to (created, or no id yet)."""
        from docker.errors import NotFound

        if self.id is None:
            return not self._done.is_set()
        try:
            state = self.api.inspect_container(self.id)["State"]
            return bool(state.get("Running")) or str(state.get("Status", "")).lower() not in (
                "exited",
                "stopped",
                "dead",
            )
        except NotFound:
            return False
        except Exception:  # the engine is away: say it runs (the agent names it as left running)
            return True

    def finished(self, timeout: float | None = None) -> bool:
        """Wait until the handle is done (exited, output read, container removed)."""
        return self._done.wait(timeout)

    # -- watching --------------------------------------------------------------------------------

    def watch(self) -> None:
        """Register the wait for the container's exit (call before starting it)."""
        response = self.api._post(
            self.api._url("/containers/{0}/wait", self.id), params={"condition": "next-exit"}, stream=True, timeout=None
        )
        self.api._raise_for_status(response)
        waiter = threading.Thread(target=self._wait, args=(response,), name=f"plait-docker-wait-{self.name}")
        waiter.daemon = True
        waiter.start()

    def follow(self) -> None:
        """Copy the container's output to ``sink`` as it comes (on a daemon thread)."""
        threading.Thread(target=self._follow, name=f"plait-docker-logs-{self.name}", daemon=True).start()

    def remove(self) -> None:
        from docker.errors import APIError, NotFound

        if self.id is None:
            return
        try:
            self.api.remove_container(self.id, force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409 and "removal" not in str(exc).lower():  # being removed already
                logger.warning("Could not remove container %s on %s: %s", self.name, self.where, exc)
        except Exception as exc:
            logger.warning("Could not remove container %s on %s: %s", self.name, self.where, exc)

    def _wait(self, response: Any) -> None:
        import json

        try:
            answer = json.loads(response.raw.read() or b"{}")
            code = int(answer.get("StatusCode", -1))
        except Exception as exc:  # the engine went away mid-wait: ask it again
            code = self._wait_again(exc)
        finally:
            response.close()
        self._exit_code = code
        self._exited.set()  # the follower reads the rest of the output, removes the container, finishes

    def _wait_again(self, first: BaseException) -> int:
        """The wait broke (the engine restarted?): wait again while the container exists."""
        from docker.errors import NotFound

        for _ in range(3):
            try:
                return int(self.api.wait(self.id, timeout=None).get("StatusCode", -1))
            except NotFound:
                return -1  # removed (from outside, or killed) before it could be asked: its code is gone
            except Exception as exc:
                first = exc
                threading.Event().wait(1.0)
        logger.error(
            "Lost track of container %s of flow run %s on %s: %s", self.name, self.flow_run_id, self.where, first
        )
        return -1

    def _follow(self) -> None:
        """Follow the output while the container runs; once it has exited, read the rest from
        the stored log (``collect``), remove the container, and finish with its exit code."""
        from plait_docker.tasks import ReceivedOutput, follow_until_exit

        received = ReceivedOutput()
        self._pending = b""
        try:
            # Ends once the container has exited, even if the engine keeps the stream open
            # (Podman can): a long-lived agent would otherwise keep one thread per run for ever.
            stream = follow_until_exit(self.api, self.id, self._exited.wait, self.name, grace=self.stream_grace)
            for _stream, data in stream:
                received.add(data)
                self._feed(data)
        except Exception:  # the engine broke the stream (killed, removed, restarted): the stored log has it
            pass
        finally:
            self._exited.wait()  # the waiter always answers (or gives up with -1)
            try:
                self.collect(received)
            finally:
                self.remove()
                self._finish(self._exit_code if self._exit_code is not None else -1)

    def collect(self, received: Any = None) -> None:
        """Write out what the container's stored log has that the followed stream did not
        deliver (``received``, a ``tasks.ReceivedOutput``; none: all of it). Call it once the
        container has exited; the last line is written too, without a newline after it. When
        Podman dropped lines from the stream, a few lines can come twice: none is lost."""
        from plait_docker.tasks import ReceivedOutput, follow_output

        if received is None:
            received = ReceivedOutput()

        def restart() -> None:
            self._pending = b""

        try:
            stored = follow_output(self.api, self.id, follow=False)
            for _stream, data in received.missed(stored, on_restart=restart):
                self._feed(data)
        except Exception as exc:  # gone (killed, removed from outside) or the engine is away
            from docker.errors import NotFound

            if not isinstance(exc, NotFound) and not self._killed:
                logger.warning("Could not read the output of container %s on %s: %s", self.name, self.where, exc)
        pending, self._pending = self._pending, b""
        if pending:
            self._emit(pending)

    def _feed(self, data: bytes) -> None:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._emit(line)

    def _emit(self, raw: bytes) -> None:
        from plait.secrets import mask

        line = mask(raw.decode("utf-8", "replace").rstrip("\r"))
        self.tail.append(line)
        try:
            self.sink.write(line + "\n")
            self.sink.flush()
        except (OSError, ValueError):  # the agent's stderr is closed: keep the tail only
            pass

    def __repr__(self) -> str:
        return f"<ContainerHandle {self.name} (flow run {self.flow_run_id})>"


# --- checks ------------------------------------------------------------------------------------


def _run_config(table: Any, where: str) -> dict[str, Any]:
    """A flow's ``run_config["docker"]`` table, checked: ``{"image": str, "env": {NAME: str}}``."""
    import difflib

    from plait.secrets import is_secret_key
    from plait_docker.tasks import _check_image

    if not isinstance(table, dict):
        raise AgentError(f"{where} must be a table such as {{'image': 'registry.example.com/etl:3'}}, got {table!r}")
    for key in table:
        if key not in RUN_CONFIG_KEYS:
            close = difflib.get_close_matches(str(key), RUN_CONFIG_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AgentError(f"{where} has no setting {key!r}{hint} (its keys: {', '.join(RUN_CONFIG_KEYS)})")
    out: dict[str, Any] = {}
    if table.get("image") is not None:
        try:
            out["image"] = _check_image(table["image"], where, required=True)
        except DockerConfigError as exc:
            raise AgentError(str(exc)) from None
    env = table.get("env")
    if env is not None:
        if not isinstance(env, dict):
            raise AgentError(f"{where}: env must be a table of NAME -> text, got {env!r}")
        out["env"] = {}
        for name, value in env.items():
            _check_env_name(name, where)
            if name.startswith("PLAIT__SERVER__") or name in ("PLAIT_FLOW_RUN_ID", "PLAIT_AGENT_NAME"):
                raise AgentError(f"{where}: env {name} is the agent's to set (the server and the run's key)")
            if is_secret_key(name):
                raise AgentError(
                    f"{where}: env {name} looks like a secret, and a run_config is stored by the server with "
                    f"the flow: give it to the agent instead (plait agent start --type docker --env {name}, its "
                    "value from the agent's environment) or read it in the task with plait.secrets.Secret"
                )
            if not isinstance(value, (str, int, float, bool)):
                raise AgentError(f"{where}: env {name} must be text or a number, got {type(value).__name__}")
            out["env"][name] = str(value)
    return out


def _agent_env(entries: list[str]) -> dict[str, str]:
    """``["NAME=VALUE", "NAME"]`` as a dict; ``NAME`` alone takes its value from this process."""
    from plait.secrets import is_secret_key, register_secret

    out: dict[str, str] = {}
    for entry in entries:
        name, sep, value = str(entry).partition("=")
        _check_env_name(name, "Docker agent --env")
        if not sep:
            if name not in os.environ:
                raise DockerConfigError(
                    f"Docker agent --env {name}: {name} is not set in the agent's environment "
                    f"(give --env {name}=VALUE, or set it)"
                )
            value = os.environ[name]
            if is_secret_key(name) or name.endswith(("_KEY", "_SECRET")):
                register_secret(value)  # credentials passed through: never in the agent's logs
        out[name] = value
    return out


def _check_env_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name or "=" in name or any(c.isspace() for c in name):
        raise AgentError(f"{where}: {name!r} is not an environment variable name")
