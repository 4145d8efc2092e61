"""A paused flow run from the command line: its state is saved, ``plait run FILE --resume TASK`` continues it.

``plait run`` keeps the state of a run that paused (every task's state, the results of those
that succeeded, the parameters) in ``$XDG_CACHE_HOME/plait/paused/`` (``~/.cache/plait/...``),
one file per flow file and flow, readable by its owner only, and says how to resume.
``--resume`` reads it back and runs the flow with ``resume_from`` and ``resume``; a resumed run
that does not pause again removes it.

Secrets are never written there:

- the values of secret parameters (``Parameter(..., secret=True)``) are withheld: the file
  names the ones the run was given, and ``--resume`` asks for them again (``--param``);
- the states of the tasks downstream of a secret parameter (whatever they made from it may
  hold it, encoded or not) and of every task whose state holds a registered secret
  (``plait.secrets``: a value read with ``Secret(...).get()``, say) are not saved: those tasks
  run again when the run is resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from plait.flow import Flow
    from plait.states import State

__all__ = ["SavedRun", "check_withheld", "forget_paused", "load_paused", "paused_file", "report_paused"]


@dataclass
class SavedRun:
    """What a paused run left: ``{task slug: State}`` and the run's parameters.

    ``withheld`` names the secret parameters the run was given, whose values are not saved (a
    resume must give them again); ``rerun`` names the tasks whose states were not saved because
    they hold or derive from a secret (they run again on resume).
    """

    states: dict[str, Any]
    parameters: dict[str, Any]
    paused: list[str]
    withheld: tuple[str, ...] = ()
    rerun: tuple[str, ...] = ()


def paused_file(flow_spec: str, flow: Flow) -> Path:
    """Where the paused run of ``flow`` from the file in ``flow_spec`` is kept."""
    path = Path(flow_spec.partition(":")[0] if not Path(flow_spec).exists() else flow_spec).resolve()
    key = hashlib.sha1(f"{path}:{flow.name}".encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plait" / "paused" / f"{_safe(flow.name)}-{key}.pickle"


def report_paused(flow_spec: str, flow: Flow, state: State, parameters: dict[str, Any]) -> None:
    """Save the paused run (without its secrets) and print which tasks wait and how to resume."""
    from plait.secrets import mask
    from plait.states import Paused

    tasks = state.result if isinstance(state.result, dict) else {}
    paused = sorted({t.name for t, s in tasks.items() if _is_paused(s, Paused)})
    secret = {p.name for p in flow.parameters() if p.secret}
    withheld = tuple(sorted(name for name in parameters if name in secret))
    target = paused_file(flow_spec, flow)
    spec = flow_spec if " " not in flow_spec else f"'{flow_spec}'"
    resume = " ".join(f"--resume {name}" for name in paused) or "--resume TASK"
    resume += "".join(f" --param {name}=..." for name in withheld)
    try:
        states, rerun = _states_without_secrets(flow, tasks)
        saved = SavedRun(
            states, {k: v for k, v in parameters.items() if k not in secret}, paused, withheld, tuple(rerun)
        )
        _write_private(target, pickle.dumps(saved))
    except Exception as exc:
        click.echo(
            f"Flow run {flow.name!r} paused at {', '.join(paused) or 'a task'}, but its state cannot be saved "
            f"({type(exc).__name__}: {mask(str(exc))}); resume it from Python: "
            "flow.run(resume_from=state, resume=[...])",
            err=True,
        )
        return
    notes = ""
    if withheld:
        which = "parameter" if len(withheld) == 1 else "parameters"
        notes += f"\nThe value of secret {which} {', '.join(withheld)} is not saved: give it again to resume."
    if rerun:
        notes += f"\nNot saved, as they hold or were made from a secret: {', '.join(rerun)} (they run again on resume)."
    click.echo(
        f"Flow run {flow.name!r} is paused, waiting at: {', '.join(paused) or '(a task)'}. "
        f"Its state is saved in {target}.{notes}\nTo resume it: plait run {spec} {resume}",
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
        from plait.secrets import mask

        raise PlaitUsageError(
            f"the saved paused run in {target} cannot be read ({mask(str(exc))}); run the flow again"
        ) from None
    if not isinstance(saved, SavedRun):
        raise PlaitUsageError(f"{target} does not hold a paused run; remove it and run the flow again")
    return saved


def forget_paused(flow_spec: str, flow: Flow) -> None:
    """Remove the saved paused run (the resumed run went past the pause)."""
    try:
        paused_file(flow_spec, flow).unlink()
    except OSError:
        pass


def check_withheld(saved: SavedRun, flow_spec: str, flow: Flow, parameters: dict[str, Any]) -> None:
    """Refuse to resume without the secret parameters the paused run was given (not saved)."""
    from plait.cli.run import PlaitUsageError

    missing = [name for name in saved.withheld if name not in parameters]
    if missing:
        which = "parameter" if len(missing) == 1 else "parameters"
        spec = flow_spec if " " not in flow_spec else f"'{flow_spec}'"
        resume = " ".join(f"--resume {name}" for name in saved.paused) or "--resume TASK"
        adds = " ".join(f"--param {name}=..." for name in missing)
        raise PlaitUsageError(
            f"the paused run of flow {flow.name!r} was given the secret {which} {', '.join(map(repr, missing))}, "
            f"whose value is never saved: give it again: plait run {spec} {resume} {adds}"
        )


def _states_without_secrets(flow: Flow, tasks: dict[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    """``{slug: State}`` to save, and the names of the tasks left out because of a secret.

    Left out: secret parameters, every task downstream of one (what it made from the value may
    hold it in any encoding), and every task whose pickled state holds a registered secret.
    """
    from plait.secrets import registered_since
    from plait.tasks import Parameter

    tainted = _downstream(flow, [p for p in flow.parameters() if p.secret])
    values = [v.encode("utf-8", "surrogatepass") for v in registered_since(0)[0]]
    states: dict[str, Any] = {}
    rerun: list[str] = []
    for task, state in tasks.items():
        if task in tainted or (values and _holds_any(state, values)):
            if not isinstance(task, Parameter) and state.is_successful():
                rerun.append(task.name)  # it would have been kept: say that it runs again
            continue
        states[task.slug or task.name] = state
    return states, sorted(set(rerun))


def _downstream(flow: Flow, roots: list[Any]) -> set[Any]:
    """``roots`` and every task downstream of them."""
    seen = set(roots)
    queue = deque(roots)
    while queue:
        for task in flow.downstream_tasks(queue.popleft()):
            if task not in seen:
                seen.add(task)
                queue.append(task)
    return seen


def _holds_any(state: Any, values: list[bytes]) -> bool:
    try:
        data = pickle.dumps(state)
    except Exception:
        return False  # cannot be saved anyway: the whole save reports it
    return any(value in data for value in values)


def _write_private(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target``, readable by its owner only (it holds parameters and results)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, target)  # a reader never sees half a file
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _is_paused(state: Any, paused: type) -> bool:
    if isinstance(state, paused):
        return True
    return any(isinstance(c, paused) for c in getattr(state, "map_states", None) or ())


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40] or "flow"
