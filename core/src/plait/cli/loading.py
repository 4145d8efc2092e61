"""Finding a flow from the command line: ``path/to/file.py[:flow_name]``."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
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
        what = "is a directory" if path.is_dir() else "does not exist"
        raise click.UsageError(f"Flow file {path_text!r} {what}; expected FILE.py or FILE.py:FLOW.")
    if path.suffix != ".py":
        raise click.UsageError(f"Flow file {path_text!r} is not a .py file; expected FILE.py or FILE.py:FLOW.")
    module_name = "plait_flow_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise click.UsageError(f"Cannot load {path_text!r} as a Python file.")
        module = importlib.util.module_from_spec(loader_spec)
        # Registered before running so worker processes and pickling can find its tasks.
        sys.modules[module_name] = module
        # Sibling modules of the flow file become importable; appended, not prepended, so a
        # file named like a standard module (examples/numbers.py) does not shadow it.
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.append(folder)
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise FlowFileError(path_text, exc) from None
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


class FlowFileError(click.ClickException):
    """The flow file raised while being imported; the message shows the file's own traceback."""

    exit_code = 2

    def __init__(self, path_text: str, exc: BaseException) -> None:
        if isinstance(exc, SyntaxError):
            # The file does not parse: file:line, the line and a caret, and nothing of the loader.
            where = f"{exc.filename or path_text}:{exc.lineno}" if exc.lineno else (exc.filename or path_text)
            detail = "".join(traceback.format_exception_only(type(exc), exc)).rstrip()
            super().__init__(f"{where}: the flow file has a syntax error\n{detail}")
            return
        tb = exc.__traceback__
        names = {path_text, str(Path(path_text)), str(Path(path_text).resolve())}
        # Drop the frames of the loader and importlib: start at the user's file.
        while tb is not None and tb.tb_frame.f_code.co_filename not in names:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__)).rstrip()
        super().__init__(f"Could not import flow file {path_text!r}: {exc!r}\n{text}")


def _describe(flows: dict[str, Flow]) -> str:
    return ", ".join(f"{attr} (name {f.name!r})" for attr, f in sorted(flows.items())) or "none"
