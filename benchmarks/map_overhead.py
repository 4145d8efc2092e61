"""Per-task cost of a 10,000-item map on the local executor.

Run: ``.venv/bin/python benchmarks/map_overhead.py [N] [REPEATS]``. Prints the machine, the
versions and the figures; it asserts nothing about time. The ``plain`` row is the one to watch
when the engine changes: tasks that use no results, caching or control flow must not pay for
them. The ``cache_for`` row shows what the in-memory cache costs a task that opts in.
"""

from __future__ import annotations

import logging
import statistics
import sys
from datetime import timedelta

from _common import machine, timings

from plait import Flow, task


@task
def inc(x):
    return x + 1


def build(n: int, **task_args) -> Flow:
    with Flow("map-overhead") as flow:
        inc.map(list(range(n)), task_args=task_args or None)
    return flow


def measure(flow: Flow, repeats: int) -> list[float]:
    flow.run()  # warm up: plan compiled and cached

    def run() -> None:
        assert flow.run().is_successful()

    return timings(repeats, run, collect=False)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    logging.getLogger("plait").setLevel(logging.WARNING)
    print(machine())
    print(f"{'scenario':>12} {'map size':>10} {'best us/task':>14} {'median us/task':>16}")
    for label, options in (("plain", {}), ("cache_for", {"cache_for": timedelta(hours=1)})):
        times = measure(build(n, **options), repeats)
        best, median = min(times), statistics.median(times)
        print(f"{label:>12} {n:>10} {best / n * 1e6:>14.2f} {median / n * 1e6:>16.2f}")


if __name__ == "__main__":
    main()
