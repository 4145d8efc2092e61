"""Where the commands print: one console for stdout, sized for where it goes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["stdout_console"]

#: The width of output that is not a terminal (a pipe, a file, a CI log): wide enough that no
#: table wraps a word, yet a bound, so a runaway cell cannot make gigabyte lines.
PIPE_WIDTH = 1000


def stdout_console(**options: Any) -> Console:
    """A rich ``Console`` on stdout: the terminal's width on a terminal; else ``$COLUMNS`` if set,
    or ``PIPE_WIDTH``, so ``plait plugins | cat`` is not squeezed to 80 columns."""
    from rich.console import Console

    options.setdefault("highlight", False)
    console = Console(**options)
    if not console.is_terminal and "width" not in options:
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH
        console = Console(width=width, **options)
    return console
