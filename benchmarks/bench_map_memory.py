"""Memory and time of one big map (1,000,000 items by default) on each executor.

Run: ``.venv/bin/python benchmarks/bench_map_memory.py [--n N] [--executors local,threads]``
(``make bench`` runs it with the default size). Each executor runs in a fresh Python process,
so the figures do not mix: the process's peak resident memory (``ru_maxrss``) after the flow was
built, at the end of the run, and the run's wall time. Printed, never asserted.

The flow is ``make(N) -> inc.map(...) -> total(...)`` with trivial tasks: the memory is the
engine's (the states of N task runs, the work queued for the executor), not the tasks'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import machine, print_header

CHILD = """
import json, logging, resource, sys, time
sys.path.insert(0, {bench!r})
logging.getLogger("plait").setLevel(logging.WARNING)
from _common import map_flow
from plait.engine.runner import _plan

flow = map_flow({n})
_plan(flow)
built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
state = flow.run(executor={executor!r})
seconds = time.perf_counter() - start
assert state.is_successful(), state.message
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"built_kb": built, "peak_kb": peak, "seconds": seconds}}))
"""


def measure(n: int, executor: str) -> dict[str, float]:
    code = CHILD.format(bench=str(Path(__file__).parent), n=n, executor=executor)
    env = {**os.environ, "PLAIT_LOAD_PLUGINS": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def print_table(n: int, executors: list[str]) -> None:
    """One row per executor (each in a fresh process): run time, memory built, peak and ratio to local."""
    print(f"map {n:,} (n + 2 task runs), each executor in a fresh process; peak = ru_maxrss")
    print("(target: threads' peak <= 1.5x local's)")
    header = (
        f"{'executor':<10} {'run s':>8} {'us/task':>8} {'built MB':>9} {'peak MB':>8} {'run MB':>8} {'vs local':>9}"
    )
    print_header(header)
    local_peak = None
    for executor in executors:
        r = measure(n, executor)
        run_mb = (r["peak_kb"] - r["built_kb"]) / 1024
        if executor == "local":
            local_peak = r["peak_kb"]
        ratio = f"{r['peak_kb'] / local_peak:8.2f}x" if local_peak else ""
        print(
            f"{executor:<10} {r['seconds']:8.2f} {r['seconds'] / (n + 2) * 1e6:8.2f} "
            f"{r['built_kb'] / 1024:9.0f} {r['peak_kb'] / 1024:8.0f} {run_mb:8.0f} {ratio:>9}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="mapped children (default 1,000,000)")
    parser.add_argument("--executors", default="local,threads", help="comma-separated (default local,threads)")
    args = parser.parse_args()
    print(machine())
    print()
    print_table(args.n, args.executors.split(","))


if __name__ == "__main__":
    main()
