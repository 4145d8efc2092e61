"""A paused flow run from the command line: its state is saved, ``plait run FILE --resume TASK`` continues it.

``plait run`` keeps the state of a run that paused (every task's state, the results of those
that succeeded, the parameters) in ``$XDG_CACHE_HOME/plait/paused/`` (``~/.cache/plait/...``),
one file per flow file and flow, and says how to resume. ``--resume`` reads it back and runs
the flow with ``resume_from`` and ``resume``; a resumed run that does not pause again removes it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from plait.flow import Flow
    from plait.states import State

__all__ = ["SavedRun", "forget_paused", "load_paused", "paused_file", "report_paused"]


@dataclass
class SavedRun:
    """What a paused run left: ``{task slug: State}`` and the run's parameters."""

    states: dict[str, Any]
    parameters: dict[str, Any]
    paused: list[str]


def paused_file(flow_spec: str, flow: Flow) -> Path:
    """Where the paused run of ``flow`` from the file in ``flow_spec`` is kept."""
    path = Path(flow_spec.partition(":")[0] if not Path(flow_spec).exists() else flow_spec).resolve()
    key = hashlib.sha1(f"{path}:{flow.name}".encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plait" / "paused" / f"{_safe(flow.name)}-{key}.pickle"


def report_paused(flow_spec: str, flow: Flow, state: State, parameters: dict[str, Any]) -> None:
    """Save the paused run and print which tasks wait and the command that resumes it."""
    from plait.states import Paused

    tasks = state.result if isinstance(state.result, dict) else {}
    paused = sorted({t.name for t, s in tasks.items() if _is_paused(s, Paused)})
    states = {(t.slug or t.name): s for t, s in tasks.items()}
    target = paused_file(flow_spec, flow)
    spec = flow_spec if " " not in flow_spec else f"'{flow_spec}'"
    resume = " ".join(f"--resume {name}" for name in paused) or "--resume TASK"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps(SavedRun(states, parameters, paused))
        target.write_bytes(data)
    except Exception as exc:
        click.echo(
            f"Flow run {flow.name!r} paused at {', '.join(paused) or 'a task'}, but its state cannot be saved "
            f"({type(exc).__name__}: {exc}); resume it from Python: flow.run(resume_from=state, resume=[...])",
            err=True,
        )
        return
    click.echo(
        f"Flow run {flow.name!r} is paused, waiting at: {', '.join(paused) or '(a task)'}. "
        f"Its state is saved in {target}.\nTo resume it: plait run {spec} {resume}",
        err=True,
    )


def load_paused(flow_spec: str, flow: Flow) -> SavedRun:
    """The saved paused run of ``flow``, or a usage error saying there is none."""
    from plait.cli.run import PlaitUsageError

    target = paused_file(flow_spec, flow)
    try:
        saved = pickle.loads(target.read_bytes())
    except FileNotFoundError:
        raise PlaitUsageError(
            f"no paused run of flow {flow.name!r} from {flow_spec} is saved: --resume continues a run that "
            f"plait run left paused (exit code 3)"
        ) from None
    except Exception as exc:
        raise PlaitUsageError(f"the saved paused run in {target} cannot be read ({exc}); run the flow again") from None
    if not isinstance(saved, SavedRun):
        raise PlaitUsageError(f"{target} does not hold a paused run; remove it and run the flow again")
    return saved


def forget_paused(flow_spec: str, flow: Flow) -> None:
    """Remove the saved paused run (the resumed run went past the pause)."""
    try:
        paused_file(flow_spec, flow).unlink()
    except OSError:
        pass


def _is_paused(state: Any, paused: type) -> bool:
    if isinstance(state, paused):
        return True
    return any(isinstance(c, paused) for c in getattr(state, "map_states", None) or ())


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "flow"
