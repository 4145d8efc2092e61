"""Instructions per task run to build, validate + plan, and run run.py's flows, counted by callgrind.

Wall-clock figures on a shared machine move with the load; instruction counts do not. This
runs ``run.py``'s chain, fan-out and fan-in (built as users write them) in one Python process
under ``valgrind --tool=callgrind`` (``apt-get install valgrind``), each phase between two
``os.getppid()`` calls where callgrind dumps its counters (``--dump-before=getppid``), and
prints, per task run: ``build`` (the ``with Flow`` block), ``plan`` (``flow.validate()`` and
the run plan), ``run1`` (the flow's first run, which also pays the young collections of what
planning made with the collector paused) and ``run2`` (a second run), with
``(build + plan) / run2``, the instruction-count version of ``make bench``'s
``(build + plan) / run`` (issue 13's target: at most 1).

    .venv/bin/python benchmarks/bench_build_callgrind.py                       # 1,000 and 10,000: ~2 minutes
    .venv/bin/python benchmarks/bench_build_callgrind.py --shapes fanin --sizes 100000

Counts include Python's garbage collector, as building in a user's process does.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("build", "plan", "run1", "run2")


def child(shapes: list[str], sizes: list[int]) -> None:
    os.environ["PLAIT_LOAD_PLUGINS"] = ""
    sys.path.insert(0, str(HERE))
    import logging

    from run import FLOWS, run_plait, task_runs

    from plait.engine.runner import _plan

    logging.getLogger("plait").setLevel(logging.WARNING)
    for kind in shapes:  # warm up: imports, binders, caches
        run_plait(FLOWS[kind](10), "local")
    layout = []
    for kind in shapes:
        for n in sizes:
            gc.collect()
            os.getppid()
            flow = FLOWS[kind](n)
            os.getppid()
            flow.validate()
            _plan(flow)
            os.getppid()
            run_plait(flow, "local")
            os.getppid()
            run_plait(flow, "local")
            os.getppid()
            layout.append([kind, n, task_runs(kind, n)])
            del flow
    print(json.dumps(layout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="chain,fanout,fanin", help="comma-separated (default: chain,fanout,fanin)")
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated task counts (default: 1000,10000)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        return child(shapes, sizes)
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_build_callgrind.py needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=getppid",
            f"--callgrind-out-file={tmp}/cg.%p",
            sys.executable,
            __file__,
            "--child",
            "--shapes",
            args.shapes,
            "--sizes",
            args.sizes,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if proc.returncode:
            raise SystemExit(f"the process under callgrind failed:\n{proc.stderr[-3000:]}")
        layout = json.loads(proc.stdout.strip().splitlines()[-1])
        counts = {}  # dump number -> instructions; cg.PID.K holds what ran before the K-th marker
        for path in glob.glob(f"{tmp}/cg.*.*"):
            k = int(re.sub(r".*\.", "", path))
            for line in Path(path).read_text().splitlines():
                if line.startswith("summary:"):
                    counts[k] = int(line.split()[1])
                    break
    print("instructions per task run (callgrind; PYTHONHASHSEED=0)")
    print(f"{'shape':<7} {'tasks':>8} {'build':>8} {'plan':>8} {'run1':>8} {'run2':>8}  (build + plan) / run2")
    for e, (kind, _n, runs) in enumerate(layout):
        first = 5 * e + 1  # the segment after marker m is in dump m + 1
        build, plan, run1, run2 = (counts[first + i + 1] / runs for i in range(len(PHASES)))
        print(
            f"{kind:<7} {runs:>8,} {build / 1e3:7.1f}k {plan / 1e3:7.1f}k {run1 / 1e3:7.1f}k {run2 / 1e3:7.1f}k"
            f"  {(build + plan) / run2:5.2f}"
        )


if __name__ == "__main__":
    main()
