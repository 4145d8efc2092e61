"""Finding a flow from the command line: ``path/to/file.py[:flow_name]``."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from plait.flow import Flow


def load_flow(spec: str) -> Flow:
    """Load the flow named in ``spec`` (``FILE.py`` or ``FILE.py:NAME``).

    ``NAME`` is a module attribute or a flow's ``name``; without it the file must hold
    exactly one flow. Raises ``click.UsageError`` with what was found otherwise.
    """
    from plait.flow import Flow

    path_text, _, wanted = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    path = Path(path_text)
    if not path.is_file():
        raise click.UsageError(f"Flow file {path_text!r} does not exist (expected FILE.py or FILE.py:FLOW).")
    module_name = "plait_flow_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise click.UsageError(f"Cannot load {path_text!r} as a Python file.")
        module = importlib.util.module_from_spec(loader_spec)
        # Registered before running so worker processes and pickling can find its tasks.
        sys.modules[module_name] = module
        sys.path.insert(0, str(path.resolve().parent))
        try:
            loader_spec.loader.exec_module(module)
        except Exception:
            del sys.modules[module_name]
            raise
    flows = {name: obj for name, obj in vars(module).items() if isinstance(obj, Flow)}
    if wanted:
        if wanted in flows:
            return flows[wanted]
        by_name = [f for f in flows.values() if f.name == wanted]
        if len(by_name) == 1:
            return by_name[0]
        raise click.UsageError(f"No flow {wanted!r} in {path_text}; flows found: {_describe(flows)}")
    unique = list({id(f): f for f in flows.values()}.values())
    if len(unique) == 1:
        return unique[0]
    if not unique:
        raise click.UsageError(f"No flow found in {path_text}: define a Flow at module level.")
    raise click.UsageError(f"{path_text} defines several flows; pick one with {path_text}:NAME ({_describe(flows)})")


def _describe(flows: dict[str, Flow]) -> str:
    return ", ".join(f"{attr} (name {f.name!r})" for attr, f in sorted(flows.items())) or "none"
