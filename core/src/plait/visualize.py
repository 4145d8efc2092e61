"""Drawing flows with Graphviz: ``flow.visualize()`` and ``plait visualize``.

The DOT text is generated here (``flow_to_dot``); rendering runs Graphviz's ``dot`` program,
so no Python package is needed, only ``dot`` on ``PATH`` (Debian/Ubuntu: ``apt-get install
graphviz``; macOS: ``brew install graphviz``).

Each task is a box labelled with its name; parameters are ellipses; a mapped task is one
node with a double border and, when a flow-run state is given, the number of its children.
Edges carry the name of the input they feed. With a flow-run state, tasks are filled with
the colour of their state (green success, red failure, grey skipped, ...).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plait.errors import GraphvizNotFoundError, PlaitError

if TYPE_CHECKING:
    from plait.flow import Flow
    from plait.states import State

__all__ = ["STATE_COLOURS", "flow_to_dot", "render"]

#: Fill colour by state class name; the first match along the state's class hierarchy wins.
STATE_COLOURS: dict[str, str] = {
    "Cached": "#7bc8a4",
    "Skipped": "#d9d9d9",
    "Mapped": "#9fd49f",
    "Success": "#9fd49f",
    "TriggerFailed": "#f4b183",
    "TimedOut": "#f28b82",
    "Failed": "#f28b82",
    "Cancelled": "#c9a0dc",
    "Paused": "#fff2a8",
    "Retrying": "#ffd27f",
    "Scheduled": "#ffffff",
    "Running": "#9ecbff",
    "Pending": "#ffffff",
}

_FORMATS = ("svg", "png", "pdf", "dot", "gv", "jpg", "jpeg", "gif", "json", "ps", "plain")


def flow_to_dot(flow: Flow, flow_state: State | None = None) -> str:
    """The flow as DOT text, coloured by ``flow_state`` (a flow-run state) when given."""
    from plait.states import Mapped
    from plait.tasks import Parameter

    task_states: dict[Any, State] = {}
    if flow_state is not None:
        result = flow_state.result
        if not isinstance(result, dict):
            raise PlaitError(
                f"flow_state must be a flow-run state (what flow.run() returned), got {flow_state!r} "
                f"whose result is a {type(result).__name__}"
            )
        task_states = result
    mapped_tasks = {e.downstream_task for e in flow.edges if e.mapped}
    lines = [
        f"digraph {_quote(flow.name)} {{",
        f"  graph [rankdir=TB, label={_quote(flow.name)}, labelloc=t, fontname=Helvetica];",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname=Helvetica];',
        "  edge [fontname=Helvetica, fontsize=10];",
    ]
    for task in flow.sorted_tasks():
        attrs: dict[str, str] = {}
        label = task.name
        state = task_states.get(task)
        if task in mapped_tasks:
            attrs["peripheries"] = "2"
            if isinstance(state, Mapped):
                label += f"\n{len(state.map_states)} mapped runs"
            else:
                label += "\n(mapped)"
        if isinstance(task, Parameter):
            attrs["shape"] = "ellipse"
        if state is not None:
            label += f"\n{state.name}"
            attrs["fillcolor"] = _colour(state)
            if state.message:
                attrs["tooltip"] = state.message
        attrs["label"] = label
        lines.append(f"  {_quote(task.slug)} [{_attrs(attrs)}];")
    for edge in sorted(flow.edges, key=lambda e: (e.upstream_task.slug, e.downstream_task.slug, e.key or "")):
        attrs = {}
        if edge.key:
            attrs["label"] = (
                edge.key + (" (mapped)" if edge.mapped else "") + (" (flattened)" if edge.flattened else "")
            )
        elif edge.mapped:
            attrs["label"] = "(mapped)"
        if edge.mapped:
            attrs["style"] = "dashed"
        suffix = f" [{_attrs(attrs)}]" if attrs else ""
        lines.append(f"  {_quote(edge.upstream_task.slug)} -> {_quote(edge.downstream_task.slug)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(
    flow: Flow, filename: str | Path | None = None, format: str = "svg", flow_state: State | None = None
) -> bytes | str:
    """Render the flow with ``dot``; return the bytes, or write ``filename`` and return its path."""
    if format not in _FORMATS:
        raise PlaitError(f"flow.visualize: unknown format {format!r}; use one of {', '.join(_FORMATS)}")
    source = flow_to_dot(flow, flow_state)
    if format in ("dot", "gv"):
        data = source.encode("utf-8")
    else:
        data = _run_dot(source, format, flow.name)
    if filename is None:
        return data
    path = Path(filename)
    if not path.suffix:
        path = path.with_suffix(f".{format}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _run_dot(source: str, format: str, flow_name: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFoundError(
            f"Cannot draw flow {flow_name!r}: Graphviz's `dot` program is not on PATH. Install Graphviz "
            "(Debian/Ubuntu: `apt-get install graphviz`; macOS: `brew install graphviz`; "
            "conda: `conda install graphviz`), or use flow.to_dot() for the DOT text."
        )
    proc = subprocess.run([dot, f"-T{format}"], input=source.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0:
        raise PlaitError(
            f"Graphviz `dot -T{format}` failed for flow {flow_name!r} (exit code {proc.returncode}): "
            f"{proc.stderr.decode('utf-8', 'replace').strip()}"
        )
    return proc.stdout


def _colour(state: State) -> str:
    for cls in type(state).__mro__:
        colour = STATE_COLOURS.get(cls.__name__)
        if colour is not None:
            if cls.__name__ == "Mapped" and state.is_failed():
                return STATE_COLOURS["Failed"]
            return colour
    return "#ffffff"


def _quote(text: Any) -> str:
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _attrs(attrs: dict[str, str]) -> str:
    return ", ".join(f"{key}={_quote(value)}" for key, value in attrs.items())
