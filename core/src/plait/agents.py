"""Agents: processes that take due flow runs from a Plait server and start them where the code is.

An agent only ever calls *out* to the server (it opens no listening socket). Its loop::

    register (by name) -> repeat every poll_interval:
        reap: a run's process that exited is reported (a run it did not end is settled as crashed)
        heartbeat: "I am alive, and so are these runs' processes" -> cancellations, ended runs
        cancel: a run Cancelling for longer than cancel_grace is killed (its whole process group)
        claim: up to max_runs - running due runs with our labels (Scheduled -> Submitted, once each)
        start: each claimed run as ``plait execute flow-run ID``, with the server's URL and the
               run's own run-scoped key in its environment

What "start" means is the agent *kind*'s business: the built-in ``local`` kind
(``LocalAgent``) runs the command as a subprocess in its own process group; a plugin adds
others through the ``plait_register_agents`` hook (a Docker agent runs the same command in a
container). A kind subclasses ``Agent`` and implements ``start_run``::

    class DockerAgent(Agent):
        type = "docker"

        @classmethod
        def cli_options(cls):
            return [click.Option(["--image"], help="The image runs use.")]

        def __init__(self, client, *, image=None, **settings):
            super().__init__(client, **settings)
            self.image = image

        def start_run(self, run):
            container = docker_client.containers.run(
                self.image, self.command(run), environment=self.environment(run), detach=True,
                labels={"plait.flow_run_id": run.flow_run.id},
            )
            return ContainerHandle(container)   # poll() -> exit code or None, kill()

Stopping an agent (Ctrl-C, SIGTERM) stops the claiming; runs already started go on and report
on their own (their processes do not belong to the agent). ``plait agent start`` is the command.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from plait.errors import PlaitError, ServerError, ServerUnavailableError

if TYPE_CHECKING:
    import click

    from plait.client import ClaimedRun, Client

__all__ = [
    "Agent",
    "AgentError",
    "AgentSettings",
    "LocalAgent",
    "ProcessHandle",
    "RunHandle",
    "available_agents",
    "check_run_config",
    "get_agent_class",
]

logger = logging.getLogger("plait.agent")

_ACTIVE = frozenset({"SUBMITTED", "RUNNING", "CANCELLING"})


class AgentError(PlaitError, RuntimeError):
    """An agent cannot start or go on (unknown kind, no server, a bad setting)."""


class RunHandle(Protocol):
    """What an agent kind returns for a run it started: how to watch and stop it."""

    def poll(self) -> int | None:
        """The exit code once the run's process has ended (negative: killed by that signal), else ``None``."""

    def kill(self) -> None:
        """Stop everything the run started, at once (its process group, its container)."""


@dataclass
class AgentSettings:
    """An agent's settings: ``[agent]`` in Plait's config, overridden by ``plait agent start`` options.

    ```toml
    [agent]
    name = "etl-box"          # default: "<type>-agent@<hostname>"
    labels = ["etl", "gpu"]   # it runs flow runs whose labels are all among these
    max_runs = 10             # flow runs at once
    poll_interval = 2.0       # seconds between polls
    cancel_grace = 30.0       # seconds a cancelled run may take to stop before it is killed
    ```
    """

    name: str | None = None
    labels: list[str] = field(default_factory=list)
    max_runs: int = 10
    poll_interval: float = 2.0
    cancel_grace: float = 30.0

    @classmethod
    def load(cls, **overrides: Any) -> AgentSettings:
        """``[agent]`` from the config, then ``overrides`` (``None`` values ignored); checked."""
        from plait.config import get_config

        section = get_config().section("agent")
        values = {
            k: section[k] for k in ("name", "labels", "max_runs", "poll_interval", "cancel_grace") if k in section
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        def bad(key: str, what: str) -> AgentError:
            return AgentError(
                f"Agent setting {key} = {getattr(self, key)!r} is not valid: {what} "
                f"([agent] {key} in the config, PLAIT__AGENT__{key.upper()}, or the command-line option)"
            )

        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 200):
            raise bad("name", "expected a name of 1 to 200 characters")
        if isinstance(self.labels, str):
            self.labels = [x.strip() for x in self.labels.split(",") if x.strip()]
        if not isinstance(self.labels, list) or not all(isinstance(x, str) and x.strip() for x in self.labels):
            raise bad("labels", 'expected a list of labels, e.g. ["etl", "gpu"]')
        if isinstance(self.max_runs, bool) or not isinstance(self.max_runs, int) or not 1 <= self.max_runs <= 10_000:
            raise bad("max_runs", "expected a whole number from 1 to 10000")
        for key in ("poll_interval", "cancel_grace"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= 3600:
                raise bad(key, "expected a number of seconds from 0.01 to 3600")


@dataclass
class _Started:
    run: ClaimedRun
    handle: RunHandle
    started: float
    cancelling_since: float | None = None
    killed: bool = False


class Agent:
    """Base class of agent kinds; see the module docstring.

    Args:
        client: the server's API client (a key with scope ``run``).
        settings: ``AgentSettings`` (name, labels, max_runs, poll_interval, cancel_grace).
        clock: ``time.monotonic``-like clock (tests inject one).
    """

    #: The kind's name: ``plait agent start --type <type>``.
    type: ClassVar[str] = ""

    def __init__(
        self,
        client: Client,
        settings: AgentSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        if options:
            raise AgentError(f"Agent kind {self.type!r} takes no option {', '.join(sorted(options))}")
        self.client = client
        self.settings = settings or AgentSettings()
        self.settings.check()
        self.name = self.settings.name or f"{self.type}-agent@{socket.gethostname()}"
        self.clock = clock
        self.id: str | None = None
        self.running: dict[str, _Started] = {}
        self._stale: list[_Started] = []  # killed processes of attempts the server gave up on
        #: Runs started since the agent started (for logs and tests).
        self.started_count = 0
        self._stop = threading.Event()
        self._unreachable_since: float | None = None
        self._failing: str | None = None  # the server's last failure of a poll, until one succeeds

    # -- what a kind implements ----------------------------------------------------------------

    @classmethod
    def cli_options(cls) -> list[click.Option]:
        """Extra ``plait agent start`` options of this kind (their values reach ``__init__``)."""
        return []

    def start_run(self, run: ClaimedRun) -> RunHandle:
        """Start ``plait execute flow-run ID`` for ``run`` (see ``command`` and ``environment``)."""
        raise NotImplementedError

    @classmethod
    def check_run_config(cls, table: dict[str, Any]) -> None:
        """Check this kind's table of a flow's ``run_config`` (``Flow(run_config={type: table})``).

        ``plait register`` calls it for every installed kind the flow's ``run_config`` names, so a
        typo fails at registration, not when a run starts. Raise ``AgentError`` naming the bad
        key and the fix; the default accepts anything.
        """

    # -- what a kind uses -----------------------------------------------------------------------

    def command(self, run: ClaimedRun) -> list[str]:
        """The command that executes the run: ``plait execute flow-run <id>``."""
        return ["plait", "execute", "flow-run", run.flow_run.id]

    def environment(self, run: ClaimedRun) -> dict[str, str]:
        """What the run's process needs to reach the server: its URL and the run-scoped key."""
        return {
            "PLAIT__SERVER__URL": self.client.url,
            "PLAIT__SERVER__API_KEY": run.token,
            "PLAIT_FLOW_RUN_ID": run.flow_run.id,
            "PLAIT_AGENT_NAME": self.name,
        }

    # -- the loop -------------------------------------------------------------------------------

    def run(self, max_polls: int | None = None) -> None:
        """Register, then poll until ``stop()`` (or ``max_polls`` polls, for tests)."""
        self.register()
        polls = 0
        while not self._stop.is_set():
            started = self.clock()
            claimed = self.poll_once()
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            if claimed and len(self.running) < self.settings.max_runs:
                continue  # more may be due: ask again at once
            self._stop.wait(max(0.0, started + self.settings.poll_interval - self.clock()))
        logger.info(
            "Agent %r stopped; %d run(s) still going on their own", self.name, sum(1 for s in self.running.values())
        )

    def stop(self) -> None:
        """Stop after the current poll (safe from another thread or a signal handler)."""
        self._stop.set()

    def register(self) -> str:
        """Register with the server (retrying while it cannot be reached)."""
        while True:
            try:
                info = self.client.register_agent(self.name, self.type, self.settings.labels, self.settings.max_runs)
            except ServerUnavailableError as exc:
                if self._stop.is_set():
                    raise
                logger.warning("Agent %r: %s; trying again in %gs", self.name, exc, self.settings.poll_interval)
                self._stop.wait(self.settings.poll_interval)
                continue
            self.id = info.id
            logger.info(
                "Agent %r (%s) registered: labels %s, up to %d run(s) at once, polling every %gs",
                self.name,
                self.type,
                ", ".join(self.settings.labels) or "(none)",
                self.settings.max_runs,
                self.settings.poll_interval,
            )
            return info.id

    def poll_once(self) -> int:
        """One round: reap, heartbeat, enforce cancellations, claim and start. Returns how many started."""
        assert self.id is not None, "register() first"
        self.reap()
        try:
            self.heartbeat()
            free = self.settings.max_runs - len(self.running)
            claimed = self.client.claim_flow_runs(self.id, min(free, 100)) if free > 0 else []
        except ServerUnavailableError as exc:
            self._unreachable(exc)
            return 0
        except ServerError as exc:
            if exc.code == "NOT_FOUND":  # the server lost us (a new database): register again
                logger.warning("Agent %r: the server does not know this agent any more; registering again", self.name)
                self.register()
                return 0
            if exc.code in ("UNAUTHENTICATED", "FORBIDDEN"):
                raise  # our key is refused: nothing this agent does can succeed
            # A failure of the server's (an internal error, a refusal we cannot act on): one
            # bad answer must not stop the agent; it says so and tries again at the next poll.
            if self._failing != str(exc):
                self._failing = str(exc)
                logger.error("Agent %r: the server failed a poll (%s: %s); trying again", self.name, exc.code, exc)
            return 0
        if self._unreachable_since is not None:
            logger.warning("Agent %r: the server answers again", self.name)
            self._unreachable_since = None
        if self._failing is not None:
            logger.warning("Agent %r: the server answers polls again", self.name)
            self._failing = None
        for run in claimed:
            self._start(run)
        return len(claimed)

    def reap(self) -> None:
        """Report the runs whose processes ended."""
        for run_id, started in list(self.running.items()):
            try:
                code = started.handle.poll()
            except Exception as exc:
                logger.error("Agent %r: cannot watch flow run %s: %s", self.name, run_id, exc)
                code = -1
            if code is None:
                continue
            del self.running[run_id]
            # 0: the run succeeded, 1: it failed or was cancelled (both reported by the process)
            log = logger.info if code in (0, 1) and not started.killed else logger.warning
            log("Agent %r: the process of flow run %s exited with code %s", self.name, run_id, code)
            self._report_exit(started.run, code)
        for started in list(self._stale):
            if started.handle.poll() is not None:
                self._stale.remove(started)

    def heartbeat(self) -> None:
        """Tell the server we and our runs' processes are alive; act on the answer."""
        assert self.id is not None
        _, statuses = self.client.agent_heartbeat(self.id, sorted(self.running))
        now = self.clock()
        for status in statuses:
            started = self.running.get(status.id)
            if started is None:
                continue
            if status.state_type == "CANCELLING":
                if started.cancelling_since is None:
                    started.cancelling_since = now
                    logger.info(
                        "Agent %r: flow run %s is being cancelled; it has %gs to stop",
                        self.name,
                        status.id,
                        self.settings.cancel_grace,
                    )
                elif not started.killed and now - started.cancelling_since >= self.settings.cancel_grace:
                    self._kill(started, f"it did not stop within {self.settings.cancel_grace:g}s of its cancellation")
            elif status.state_type not in _ACTIVE and not started.killed:
                # The server ended or rescheduled the run while its process still runs (it was
                # taken for dead, or a user forced it): the process must not go on working.
                grace = self.settings.cancel_grace
                if started.cancelling_since is None:
                    started.cancelling_since = now
                elif now - started.cancelling_since >= grace:
                    self._kill(started, f"the server moved the run to {status.state} and it did not stop")

    # -- helpers ------------------------------------------------------------------------------------

    def _start(self, run: ClaimedRun) -> None:
        old = self.running.pop(run.flow_run.id, None)
        if old is not None:
            # The server gave us this run again (its earlier attempt was taken for dead): that
            # attempt's process must not go on working next to the new one.
            self._kill(old, "the server gave its run to a new attempt")
            self._stale.append(old)
        try:
            handle = self.start_run(run)
        except Exception as exc:
            logger.error("Agent %r: could not start flow run %s: %s", self.name, run.flow_run.id, exc)
            self._report_exit(run, 127)
            return
        self.running[run.flow_run.id] = _Started(run, handle, self.clock())
        self.started_count += 1
        logger.info("Agent %r: started flow run %s (%s)", self.name, run.flow_run.id, run.flow_run.name)

    def _kill(self, started: _Started, why: str) -> None:
        logger.warning("Agent %r: killing flow run %s: %s", self.name, started.run.flow_run.id, why)
        started.killed = True
        try:
            started.handle.kill()
        except Exception as exc:
            logger.error("Agent %r: killing flow run %s failed: %s", self.name, started.run.flow_run.id, exc)

    def _report_exit(self, run: ClaimedRun, code: int) -> None:
        """Tell the server the run's process ended, with the run's own key: it names the attempt,
        so the exit of an attempt the server already gave up on changes nothing."""
        from plait.client import Client

        run_id = run.flow_run.id
        client = Client(self.client.url, run.token, retries=1, backoff=0.2, timeout=self.client.timeout)
        for attempt in range(3):
            try:
                client.report_flow_run_exit(run_id, code, self.id)
                return
            except ServerUnavailableError as exc:
                if attempt == 2:
                    logger.warning(
                        "Agent %r: could not report that flow run %s ended (%s); the server's watchdog will "
                        "notice the missing heartbeats",
                        self.name,
                        run_id,
                        exc,
                    )
            except ServerError as exc:
                if exc.code != "UNAUTHENTICATED":  # revoked: that attempt was over already
                    logger.warning("Agent %r: reporting the end of flow run %s: %s", self.name, run_id, exc)
                return
            finally:
                client.close()

    def _unreachable(self, exc: Exception) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = self.clock()
            logger.warning("Agent %r: %s; runs already started go on, new ones wait", self.name, exc)


class ProcessHandle:
    """A run started as a local process in its own process group (session)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        """SIGKILL the whole process group: the run's process and anything it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class LocalAgent(Agent):
    """Runs each flow run as a local subprocess, ``plait execute flow-run ID``, in its own
    process group, so that killing it (a cancellation past its grace) kills what it started."""

    type = "local"

    def command(self, run: ClaimedRun) -> list[str]:
        # The interpreter the agent runs on, so the run sees the same installed packages.
        return [sys.executable, "-m", "plait", "execute", "flow-run", run.flow_run.id]

    def start_run(self, run: ClaimedRun) -> ProcessHandle:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT__SERVER__")}
        env.update(self.environment(run))
        process = subprocess.Popen(self.command(run), env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        return ProcessHandle(process)


def available_agents() -> dict[str, type[Agent]]:
    """``{type: AgentClass}``: the core's ``local`` and every plugin's (``plait_register_agents``)."""
    from plait.hooks.manager import get_hooks

    return get_hooks().register_agents()


def check_run_config(run_config: dict[str, Any] | None) -> None:
    """Check each table of a flow's ``run_config`` with its agent kind's ``check_run_config``.

    Kinds that are not installed here are not checked (they may be where the agents run).

    Raises:
        AgentError: a table its kind refuses; the message names the kind.
    """
    if not run_config:
        return
    kinds = available_agents()
    for kind, table in run_config.items():
        cls = kinds.get(kind)
        if cls is not None:
            cls.check_run_config(dict(table))


def get_agent_class(kind: str) -> type[Agent]:
    kinds = available_agents()
    cls = kinds.get(kind)
    if cls is None:
        raise AgentError(
            f"No agent kind {kind!r}; installed kinds: {', '.join(sorted(kinds))} "
            "(a plugin adds more through plait_register_agents, e.g. plait-docker for docker)"
        )
    return cls
