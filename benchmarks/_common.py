"""What the benchmark scripts share: the machine/version header line and best-of-N timing.

The scripts run as files (``python benchmarks/run.py``), so their own folder is on
``sys.path`` and they import this module as ``_common``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine(*versions: str) -> str:
    """The header line every benchmark prints first: CPU, cores, Python, plait, ``versions``, date.

    ``machine: <cpu>, <n> cores | Python <version> (<impl>) | plait <version> | <versions...> | <now> UTC``
    """
    import plait

    parts = [
        f"machine: {cpu_model()}, {os.cpu_count()} cores",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"plait {plait.__version__}",
        *versions,
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
    ]
    return " | ".join(parts)


def timings(repeat: int, fn: Callable[[], Any], collect: bool = True) -> list[float]:
    """Seconds each of ``repeat`` calls of ``fn`` took (after a ``gc.collect()`` unless ``collect=False``)."""
    times = []
    for _ in range(repeat):
        if collect:
            gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best_of(repeat: int, fn: Callable[[], Any], collect: bool = True) -> float:
    """The fastest of ``repeat`` calls of ``fn``, in seconds."""
    return min(timings(repeat, fn, collect))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` took."""
    return timings(1, fn, collect=False)[0]


# --- the trivial workloads (every task is a trivial function: the figures are the engine's cost) --


def inc(x: int) -> int:
    return x + 1


def one() -> int:
    return 1


def make(n: int) -> list[int]:
    return list(range(n))


def total(xs: list[int]) -> int:
    return sum(xs)


def map_flow(n: int, mapped: Callable[[int], Any] = inc, name: str | None = None) -> Any:
    """``make(n)`` -> ``mapped`` mapped over it -> ``total``: n + 2 task runs (n + 3 with the map's parent)."""
    from plait import Flow, task

    t_make, t_mapped, t_total = task(make), task(mapped), task(total)
    with Flow(name or f"map-{n}") as flow:
        t_total(t_mapped.map(t_make(n)))
    return flow


# --- command line and tables ---------------------------------------------------------------------


def map_arguments(description: str) -> argparse.Namespace:
    """``--n`` (mapped children, default 10,000) and ``--repeat`` (runs per case, default 5)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=10_000, help="mapped children (default 10,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the best is kept (default 5)")
    return parser.parse_args()


def print_header(header: str) -> None:
    """A table's column titles and a rule under them."""
    print(header)
    print("-" * len(header))
