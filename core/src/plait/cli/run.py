"""``plait run FILE.py[:FLOW]``: run a flow with a live view of its task states.

The command is a thin shell around two reusable pieces, so other commands (a backfill, a
scheduled loop) can run flows the same way:

- ``parse_parameters(["n=5", "name=x"])`` turns ``--param`` values into a dict;
- ``run_with_view(flow, parameters, executor, context)`` runs the flow once through
  ``FlowRunner`` with a ``RunView`` observing every task state change, prints the summary
  table and returns the flow-run state.

On a terminal the view is a ``rich`` live table that updates as task states change (mapped
tasks show how many children finished); when stdout is not a terminal (a pipe, a CI log) it
prints one line per finished task instead, then the same summary table.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from plait.cli.loading import load_flow

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from plait.engine.executors import Executor
    from plait.flow import Flow
    from plait.states import State
    from plait.tasks import Task

__all__ = ["RunView", "check_cli_parameters", "executor_with_options", "parse_parameters", "run", "run_with_view"]

#: Exit code when the flow ran and did not succeed (the code for bad input is click's 2).
EXIT_FLOW_FAILED = 1
#: Exit code when the flow run paused (a task waits for ``--resume``): neither done nor failed.
EXIT_PAUSED = 3

#: Above this many tasks the tables show the busiest/failed tasks and a count of the rest.
MAX_ROWS = 40

_STATE_STYLES = {
    "Success": "green",
    "Mapped": "green",
    "Cached": "green",
    "Skipped": "cyan",
    "Running": "yellow",
    "Retrying": "magenta",
    "Pending": "dim",
    "Scheduled": "dim",
    "Paused": "blue",
    "Failed": "bold red",
    "TriggerFailed": "red",
    "TimedOut": "bold red",
    "Cancelled": "red",
}
_MAPPED_INTO = re.compile(r"Mapped into (\d+) runs")


class PlaitUsageError(click.ClickException):
    """A Plait error caused by the command line's input (bad parameter, unknown executor...)."""

    exit_code = 2


@click.command()
@click.argument("flow_spec", metavar="FILE.py[:FLOW]")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a flow parameter (repeatable). VALUE is parsed as JSON when it is valid JSON "
    '(5 -> int, true -> bool, \'["a","b"]\' -> list), else kept as a string.',
)
@click.option(
    "--executor",
    "-e",
    default=None,
    metavar="NAME",
    help="Executor: local (default), threads, processes, or one a plugin adds.",
)
@click.option(
    "--executor-option",
    "-E",
    "executor_options",
    multiple=True,
    metavar="NAME=VALUE",
    help="An option of the executor, passed to its constructor (repeatable): -E max_workers=4. "
    "VALUE is parsed as JSON when it is valid JSON.",
)
@click.option(
    "--address",
    default=None,
    metavar="URL",
    help="The scheduler of the cluster to run on, for executors that connect to one "
    "(--executor dask --address tcp://10.0.0.5:8786); the same as -E address=URL.",
)
@click.option(
    "--allow-nan",
    is_flag=True,
    help="Read NaN, Infinity and -Infinity in --param values as floats (they are strings otherwise).",
)
@click.option(
    "--resume",
    "resume",
    multiple=True,
    metavar="TASK",
    help="Resume the paused run of this flow saved by the last plait run, letting TASK through "
    "(repeatable); tasks that succeeded keep their results.",
)
@click.option(
    "--schedule",
    "on_schedule",
    is_flag=True,
    help="Run on the flow's schedule: show the next runs, then run at each time until Ctrl-C.",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=None,
    help="With --schedule: stop after this many runs.",
)
def run(
    flow_spec: str,
    params: tuple[str, ...],
    executor: str | None,
    executor_options: tuple[str, ...],
    address: str | None,
    allow_nan: bool,
    resume: tuple[str, ...],
    on_schedule: bool,
    max_runs: int | None,
) -> None:
    """Run the flow in FILE.py and show its task states as they change.

    FILE.py must define one Flow at module level; pick one of several with FILE.py:FLOW
    (the module attribute or the flow's name). Without --schedule the flow runs once now, even
    if it has a schedule. Exit code: 0 when the (last) run succeeds, 1 when it fails, 2 for bad
    input (missing file or flow, bad parameter, unknown executor), 3 when it paused: its state
    is saved, and plait run FILE --resume TASK continues it.

    \b
    Examples:
      plait run examples/numbers.py --param n=5
      plait run etl.py:nightly -p day=2026-01-31 --executor threads
      plait run etl.py:nightly --schedule
      plait run etl.py --executor dask --address tcp://10.0.0.5:8786
    """
    from plait.cli.config import stop_on_config_errors

    parameters = parse_parameters(params, allow_nan=allow_nan)
    options = parse_parameters(executor_options, option="--executor-option")
    stop_on_config_errors()
    if address is not None:
        if "address" in options:
            raise click.UsageError("give the address once: --address or --executor-option address=..., not both")
        options["address"] = address
    flow = load_flow(flow_spec)
    saved = None
    if resume and not on_schedule:
        from plait.cli.paused import check_withheld, load_paused

        # the paused run's parameters, under --param; its secret ones were not saved: asked again
        saved = load_paused(flow_spec, flow)
        check_withheld(saved, flow_spec, flow, parameters)
        parameters = {**saved.parameters, **parameters}
    check_cli_parameters(flow, parameters)
    run_executor: Executor | str | None = executor
    if options:
        run_executor = executor_with_options(executor if executor is not None else flow.executor, options)
    if max_runs is not None and not on_schedule:
        raise click.UsageError("--max-runs applies only with --schedule")
    if resume and on_schedule:
        raise click.UsageError("--resume continues one paused run; it does not go with --schedule")
    if on_schedule:
        from plait.cli.schedule_view import run_on_schedule

        state = run_on_schedule(flow, parameters=parameters, executor=run_executor, max_runs=max_runs)
    elif saved is not None:
        state = run_with_view(
            flow, parameters=parameters, executor=run_executor, resume=list(resume), resume_from=saved.states
        )
    else:
        state = run_with_view(flow, parameters=parameters, executor=run_executor)
    from plait.states import Cancelled, Paused

    if isinstance(state, Cancelled):
        exit_interrupted()

    if isinstance(state, Paused):
        from plait.cli.paused import report_paused

        report_paused(flow_spec, flow, state, parameters)
        sys.exit(EXIT_PAUSED)
    if resume:
        from plait.cli.paused import forget_paused

        forget_paused(flow_spec, flow)
    sys.exit(0 if state.is_successful() else EXIT_FLOW_FAILED)


def executor_with_options(name: Executor | str | None, options: dict[str, Any]) -> Executor:
    """The executor named ``name`` built with ``options`` (``--executor-option``, ``--address``).

    Raises a usage error (exit code 2) when there is no executor name to build, or the
    executor does not take those options.
    """
    from plait.engine.executors import get_executor
    from plait.errors import PlaitError

    given = ", ".join(sorted(options))
    if name is None:
        raise PlaitUsageError(f"executor options ({given}) need an executor: add --executor NAME (e.g. dask)")
    if not isinstance(name, str):
        raise PlaitUsageError(
            f"the flow's executor is the object {name!r}, which takes no options here ({given}); "
            "name one with --executor NAME"
        )
    try:
        return get_executor(name, **options)
    except PlaitError as exc:
        raise PlaitUsageError(str(exc)) from None


def parse_parameters(params: Iterable[str], option: str = "--param", allow_nan: bool = False) -> dict[str, Any]:
    """``["n=5", "names=[\\"a\\"]", "day=2026-01-31"]`` -> ``{"n": 5, "names": ["a"], "day": "2026-01-31"}``.

    Each value is parsed as JSON when it is valid JSON, otherwise kept as the string given
    (so ``n=5`` is the int 5, ``flag=true`` the bool True, ``name=bob`` the string "bob";
    quote to force a string: ``n='"5"'``). A value that looks like JSON (it starts with ``[``,
    ``{`` or ``"``) but is not valid JSON is an error, not silently a string. ``NaN``,
    ``Infinity`` and numbers too large for a float stay strings / are refused unless
    ``allow_nan`` (``--allow-nan``). Raises ``click.BadParameter`` for an item without ``=``
    or with an empty name, a name given twice, or such a value.
    """
    out: dict[str, Any] = {}
    hint = f"'{option}'"
    for item in params:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE; write e.g. {option} n=5", param_hint=hint)
        if name in out:
            raise click.BadParameter(f"{name!r} is given twice", param_hint=hint)
        out[name] = _parse_value(name, text, option, allow_nan)
    return out


_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _parse_value(name: str, text: str, option: str, allow_nan: bool) -> Any:
    def constant(word: str) -> Any:
        if allow_nan:
            return _NON_FINITE[word]
        raise _NotANumber(word)

    try:
        value = json.loads(text, parse_constant=constant)
    except _NotANumber:
        if text.strip() in _NON_FINITE:
            return text  # "NaN" alone: a string, unless --allow-nan
        raise click.BadParameter(
            f"{name}={text} holds NaN or Infinity, which are not numbers here; add --allow-nan to read them as "
            f"floats, or quote the value to pass a string: {option} '{name}=\"{text}\"'",
            param_hint=f"'{option}'",
        ) from None
    except ValueError as exc:
        stripped = text.lstrip()
        if stripped[:1] in ("[", "{", '"'):
            raise click.BadParameter(
                f"{name}={text} looks like JSON but is not valid JSON ({exc.msg} at column {exc.colno}); fix it, "
                f"or quote the whole value to pass it as a string: {option} '{name}=\"...\"'",
                param_hint=f"'{option}'",
            ) from None
        return text
    if not allow_nan and _has_non_finite(value):
        raise click.BadParameter(
            f"{name}={text} is not a finite number; add --allow-nan to accept inf and NaN",
            param_hint=f"'{option}'",
        )
    return value


class _NotANumber(Exception):
    pass


def _has_non_finite(value: Any) -> bool:
    import math

    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def check_cli_parameters(flow: Flow, parameters: dict[str, Any], option: str = "--param") -> None:
    """Check ``--param`` values against the flow's parameters, in the command line's words.

    A missing required parameter says which ``--param NAME=...`` to add; an unknown one
    offers the closest name. Raises ``PlaitUsageError`` (exit code 2) before anything runs.
    """
    import difflib

    declared = {p.name: p for p in flow.parameters()}
    for name in parameters:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
            known = ", ".join(sorted(declared)) or "none"
            hint = f"; did you mean {close[0]!r} ({option} {close[0]}=...)?" if close else ""
            raise PlaitUsageError(f"flow {flow.name!r} has no parameter {name!r}{hint} Its parameters: {known}.")
    missing = [name for name, p in sorted(declared.items()) if p.required and name not in parameters]
    if missing:
        adds = " ".join(f"{option} {m}=..." for m in missing)
        which = "parameter" if len(missing) == 1 else "parameters"
        raise PlaitUsageError(
            f"flow {flow.name!r} needs a value for the required {which} {', '.join(map(repr, missing))}: add {adds}"
        )


def run_with_view(
    flow: Flow,
    parameters: dict[str, Any] | None = None,
    executor: Executor | str | None = None,
    context: dict[str, Any] | None = None,
    console: Console | None = None,
    title: str | None = None,
    resume: list[str] | None = None,
    resume_from: Any = None,
) -> State:
    """Run ``flow`` once with the live view and print its summary; return the flow-run state.

    Plait errors raised before anything runs (unknown or missing parameter, unknown
    executor, invalid graph) become a ``click`` error with exit code 2 and no traceback.
    """
    from plait.engine.executors import get_executor
    from plait.engine.runner import FlowRunner
    from plait.errors import PlaitError
    from plait.logging import configure_logging

    console = console or _stdout_console()
    try:
        flow.validate()
        executor_obj = get_executor(executor if executor is not None else flow.executor)
    except PlaitError as exc:
        raise PlaitUsageError(str(exc)) from None
    view = RunView(flow, console=console, title=title)
    runner = FlowRunner(flow, task_observers=[view.task_changed], flow_observers=[view.flow_changed])
    # Attach the log handler now, while sys.stderr is the real one (rich swaps it during Live).
    configure_logging()
    try:
        with view.showing(), _sigterm_interrupts():
            extra: dict[str, Any] = {}
            if resume:
                extra = {"resume": resume, "resume_from": resume_from}
            state = runner.run(
                parameters=parameters, executor=executor_obj, context=context, wait_for_retries=True, **extra
            )
    except PlaitError as exc:
        raise PlaitUsageError(str(exc)) from None
    view.print_summary(state)
    return state


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM cancels the run like Ctrl-C (its processes killed, the summary printed) instead of
    killing ``plait run`` on the spot and leaving its workers and commands behind."""
    import signal

    from plait import interrupts

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not (
        signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, interrupts.raise_interrupt)
    try:
        yield
    except KeyboardInterrupt:  # a third signal cut the cleanup short: exit all the same
        exit_interrupted()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_interrupted() -> None:
    """Exit after an interrupted run: ``128 + the signal`` (130 for Ctrl-C, 143 for SIGTERM), now.

    A Python task that was running on a thread cannot be stopped; Python would wait for it at
    exit, and it would go on with its side effects. The process exits without waiting: such a
    task ends where it is, with the process. Exit handlers (log flushing, plugins' last alerts)
    still run.
    """
    import atexit
    import os
    import signal

    from plait import interrupts

    signum = interrupts.last_signal() or signal.SIGINT
    code = 128 + int(signum)
    running = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not running:
        sys.exit(code)
    try:
        atexit._run_exitfuncs()  # what sys.exit would run, without waiting for the abandoned threads
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


# --- the view ---------------------------------------------------------------------------------


class _Row:
    __slots__ = ("children", "finished_at", "first_running", "run_name", "state", "total")

    def __init__(self) -> None:
        self.state: State | None = None
        self.first_running: float | None = None
        self.finished_at: float | None = None
        self.children: Counter[str] | None = None  # finished children by state name
        self.total: int | None = None  # children expected, once known
        self.run_name: str | None = None  # the task run's task_run_name, if it has one


class RunView:
    """Watches one flow run's state changes and renders them.

    ``task_changed`` and ``flow_changed`` are ``FlowRunner`` observers; they may be called from
    worker threads, so they only update counters under a lock and never print on a terminal
    (rich's ``Live`` refreshes the table on its own thread).
    """

    def __init__(self, flow: Flow, console: Console, title: str | None = None) -> None:
        self.flow = flow
        self.console = console
        self.title = title or f"Flow run {flow.name!r}"
        self.live_mode = console.is_terminal
        self.tasks: list[Task] = flow.sorted_tasks()
        self.rows: dict[Task, _Row] = {t: _Row() for t in self.tasks}
        names = Counter(t.name for t in self.tasks)
        # Tasks that share a name (a task called twice) are told apart by their slug.
        self.labels = {t: t.name if names[t.name] == 1 or not t.slug else t.slug for t in self.tasks}
        self.flow_state: State | None = None
        self.started = time.time()
        self._lock = threading.Lock()

    # -- observers -----------------------------------------------------------------------------

    def task_changed(self, task: Task, old: State, new: State) -> None:
        from plait.context import _flow_ctx, _task_ctx

        info = _task_ctx.get()
        run_name = _flow_ctx.get().get("task_run_name") if getattr(task, "task_run_name", None) else None
        child = info is not None and info.task is task and info.map_index is not None
        line = None
        with self._lock:
            row = self.rows.get(task)
            if row is None:  # a task added after the view was built; show it too
                row = self.rows[task] = _Row()
                self.tasks.append(task)
                self.labels[task] = task.name
            if run_name is not None:
                row.run_name = run_name  # a mapped task shows its latest child's name
            if child:
                if new._finished:
                    if row.children is None:
                        row.children = Counter()
                    row.children[new.name] += 1
                return
            if new._running and row.first_running is None:
                row.first_running = new.timestamp
                match = _MAPPED_INTO.match(new.message or "")
                if match:
                    row.total = int(match.group(1))
                    row.children = row.children or Counter()
            row.state = new
            if new._finished:
                row.finished_at = new.timestamp
                if not self.live_mode:
                    line = self._line(task, row)
        if line is not None:
            self.console.print(line, highlight=False)

    def flow_changed(self, flow: Flow, old: State, new: State) -> None:
        self.flow_state = new

    # -- rendering -------------------------------------------------------------------------------

    @contextmanager
    def showing(self) -> Iterator[None]:
        """Show the live table for the duration of the block (on a terminal only)."""
        if not self.live_mode:
            self.console.print(f"[bold]{self.title}[/bold]: running {len(self.tasks)} tasks")
            yield
            return
        from rich.live import Live

        # Each frame reads every row under the lock: redraw less often for big flows.
        rate = 8 if len(self.tasks) <= 1_000 else 2
        live = Live(console=self.console, get_renderable=self._live_table, refresh_per_second=rate, transient=True)
        with live:  # noqa: SIM117 - sys.stderr must be read after Live swapped it for its proxy
            with _logs_through(sys.stderr):
                yield

    def _live_table(self) -> RenderableType:
        with self._lock:
            rows = [(t, self._snapshot(r)) for t, r in self.rows.items()]
        elapsed = time.time() - self.started
        return self._table(f"{self.title} - running ({elapsed:.1f}s)", rows, live=True)

    def print_summary(self, state: State) -> None:
        """Print the final table (task, state, result, duration, message) and the flow's outcome."""
        from rich.markup import escape

        final = state.result if isinstance(state.result, dict) else {}
        rows = []
        with self._lock:
            for task in self.tasks:
                snap = self._snapshot(self.rows[task])
                task_state = final.get(task) or snap[0]
                if task_state is not None:
                    snap = (task_state, *snap[1:])
                rows.append((task, snap))
        self.console.print(self._table(self.title, rows, live=False))
        from plait.states import Paused

        style = "bold green" if state.is_successful() else "bold blue" if isinstance(state, Paused) else "bold red"
        elapsed = time.time() - self.started
        self.console.print(
            f"[{style}]{state.name}[/{style}]: {escape(_shown(state.message))} ({elapsed:.2f}s)",
            highlight=False,
        )

    @staticmethod
    def _snapshot(row: _Row) -> tuple[State | None, float | None, Counter[str] | None, int | None, str | None]:
        duration = None
        if row.first_running is not None:
            duration = (row.finished_at or time.time()) - row.first_running
        children = Counter(row.children) if row.children is not None else None
        return row.state, duration, children, row.total, row.run_name

    def _table(self, title: str, rows: list[tuple[Task, tuple[Any, ...]]], live: bool) -> RenderableType:
        from rich.table import Table

        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("task", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("result" if not live else "progress", overflow="ellipsis", max_width=40)
        table.add_column("duration", justify="right", no_wrap=True)
        table.add_column("message", overflow="fold", max_width=60)
        shown, hidden = _pick_rows(rows, MAX_ROWS)
        for task, (state, duration, children, total, run_name) in shown:
            name = state.name if state is not None else "Pending"
            style = _style(state)
            third = _progress(children, total, state) if live else _result_text(state, children)
            label = self.labels.get(task, task.name)
            table.add_row(
                label if run_name is None else f"{label} ({run_name})",
                f"[{style}]{name}[/{style}]" if style else name,
                third,
                f"{duration:.2f}s" if duration is not None else "",
                _message(state, children),
            )
        if hidden:
            counts = Counter((s.name if s is not None else "Pending") for _t, (s, *_r) in hidden)
            table.add_row(f"... {len(hidden)} more", ", ".join(f"{n} {k}" for k, n in counts.most_common()), "", "", "")
        return table

    def _line(self, task: Task, row: _Row) -> str:
        from rich.markup import escape

        state = row.state
        assert state is not None
        duration = "" if row.first_running is None else f" in {row.finished_at - row.first_running:.2f}s"  # type: ignore[operator]
        kids = f" ({_counts_text(row.children)})" if row.children else ""
        style = _style(state)
        name = f"[{style}]{state.name}[/{style}]" if style else state.name
        message = f": {escape(_shown(state.message))}" if state.message and not state.is_successful() else ""
        label = self.labels.get(task, task.name)
        if row.run_name is not None:
            label = f"{label} ({row.run_name})"
        return f"  {label} -> {name}{kids}{duration}{message}"


def _style(state: State | None) -> str:
    if state is None:
        return _STATE_STYLES["Pending"]
    if state._finished and state.is_failed():  # a Mapped state with a failed child too
        return _STATE_STYLES["Failed"]
    return _STATE_STYLES.get(state.name, "")


def _pick_rows(rows: list[Any], limit: int) -> tuple[list[Any], list[Any]]:
    """All rows when they fit; else failed and running first, then in flow order."""
    if len(rows) <= limit:
        return rows, []

    def rank(item: Any) -> int:
        state = item[1][0]
        if state is None:
            return 3
        if state.is_failed():
            return 0
        if state._running or state.is_retrying():
            return 1
        return 2

    order = sorted(range(len(rows)), key=lambda i: (rank(rows[i]), i))
    keep = set(order[: limit - 1])
    return [r for i, r in enumerate(rows) if i in keep], [r for i, r in enumerate(rows) if i not in keep]


def _progress(children: Counter[str] | None, total: int | None, state: State | None) -> str:
    if children is None:
        return ""
    done = sum(children.values())
    text = f"{done}/{total}" if total is not None else f"{done} done"
    failed = sum(n for name, n in children.items() if name in ("Failed", "TriggerFailed", "TimedOut", "Cancelled"))
    return text + (f" [red]({failed} failed)[/red]" if failed else "")


def _result_text(state: State | None, children: Counter[str] | None) -> str:
    from rich.markup import escape

    if state is None or not state.is_successful() or state.is_skipped() or state.result is None:
        return ""
    text = _masked(repr(state.result))  # before cutting: a cut secret no longer matches
    return escape(text if len(text) <= 40 else text[:37] + "...")


def _masked(text: str) -> str:
    """``text`` without secrets (registered values and URL passwords, see ``plait.secrets.mask``)."""
    from plait.secrets import mask

    return mask(text)


def _message(state: State | None, children: Counter[str] | None) -> str:
    from rich.markup import escape

    if state is None:
        return ""
    if state.is_mapped():
        counts = Counter(s.name for s in state.map_states)  # type: ignore[attr-defined]
        return escape(f"{len(state.map_states)} runs: {_counts_text(counts)}")  # type: ignore[attr-defined]
    if children is not None and not state._finished:
        return escape(_shown(_counts_text(children) or state.message))
    return escape(_shown(state.message))


#: The longest message a table cell or a progress line shows (the state keeps the full text).
MESSAGE_LIMIT = 500


def _shown(message: str | None) -> str:
    """A state message as the view shows it: secrets masked, then cut to an excerpt."""
    from plait.logging import excerpt

    return excerpt(_masked(message or ""), MESSAGE_LIMIT)


def _counts_text(counts: Counter[str] | None) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.most_common()) if counts else ""


def _stdout_console() -> Console:
    from plait.cli.output import stdout_console

    return stdout_console()


@contextmanager
def _logs_through(stream: Any) -> Iterator[None]:
    """Point Plait's own stderr log handler at ``stream`` (rich's proxy) for the block.

    Inside ``Live``, ``sys.stderr`` is a proxy that prints above the live table; a handler
    created earlier still holds the real stderr and would tear the table.
    """
    handlers = [
        h
        for h in logging.getLogger("plait").handlers
        if type(h) is logging.StreamHandler and h.stream in (sys.__stderr__, getattr(stream, "rich_proxied_file", None))
    ]
    previous = [h.stream for h in handlers]
    for h in handlers:
        h.setStream(stream)
    try:
        yield
    finally:
        for h, old in zip(handlers, previous, strict=True):
            h.setStream(old)
