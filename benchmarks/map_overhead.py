"""Per-task cost of a 10,000-item map on the local executor.

Run: ``.venv/bin/python benchmarks/map_overhead.py [N]``. Prints the machine, the versions and the
figures; it asserts nothing about time. It measures plain tasks (no results, caching or control
flow) so that changes to the engine can be checked for cost on tasks that do not use them.
"""

from __future__ import annotations

import logging
import platform
import statistics
import sys
import time

import plait
from plait import Flow, task


@task
def inc(x):
    return x + 1


def build(n: int) -> Flow:
    with Flow("map-overhead") as flow:
        inc.map(list(range(n)))
    return flow


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    logging.getLogger("plait").setLevel(logging.WARNING)
    flow = build(n)
    flow.run()  # warm up: plan compiled and cached
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state = flow.run()
        times.append(time.perf_counter() - start)
        assert state.is_successful()
    best, median = min(times), statistics.median(times)
    machine = f"{platform.machine()} {platform.system()}"
    print(f"machine: {machine} python {platform.python_version()} plait {plait.__version__}")
    print(f"{'map size':>10} {'best us/task':>14} {'median us/task':>16}")
    print(f"{n:>10} {best / n * 1e6:>14.2f} {median / n * 1e6:>16.2f}")


if __name__ == "__main__":
    main()
