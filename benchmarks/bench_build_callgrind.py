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


def cache_options() -> list[str]:
    """valgrind's ``--I1``/``--D1``/``--LL`` from the kernel's description of CPU 0's caches.

    valgrind reads the caches with ``cpuid``, which a virtual machine may answer wrongly (this
    one reports a 320 MB direct-mapped last level): the kernel's figures are used instead.
    """
    found: dict[str, str] = {}
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            level, kind, size, ways, line = (
                Path(index, name).read_text().strip()
                for name in ("level", "type", "size", "ways_of_associativity", "coherency_line_size")
            )
        except OSError:
            continue
        size_bytes = int(size.rstrip("KM")) * (1024 if size.endswith("K") else 1024 * 1024 if size.endswith("M") else 1)
        option = {("1", "Data"): "D1", ("1", "Instruction"): "I1"}.get((level, kind), "LL" if kind == "Unified" else "")
        if option and (option != "LL" or int(level) >= int(found.get("LL-level", "0"))):
            found[option] = f"--{option}={size_bytes},{ways},{line}"
            if option == "LL":
                found["LL-level"] = level
    found.pop("LL-level", None)
    return list(found.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="chain,fanout,fanin", help="comma-separated (default: chain,fanout,fanin)")
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated task counts (default: 1000,10000)")
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="simulate the caches too (about twice as slow): adds last-level misses and estimated cycles",
    )
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
            *(["--cache-sim=yes", *cache_options()] if args.cache_sim else []),
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
        cycles = {}  # dump number -> estimated cycles (--cache-sim)
        misses = {}  # dump number -> last-level misses (--cache-sim)
        for path in glob.glob(f"{tmp}/cg.*.*"):
            k = int(re.sub(r".*\.", "", path))
            events: list[str] = []
            for line in Path(path).read_text().splitlines():
                if line.startswith("events:"):
                    events = line.split()[1:]
                elif line.startswith("summary:"):
                    values = dict(zip(events, map(int, line.split()[1:]), strict=False))
                    counts[k] = values["Ir"]
                    if "DLmr" in values:
                        misses[k] = values["ILmr"] + values["DLmr"] + values["DLmw"]
                        first_level = values["I1mr"] + values["D1mr"] + values["D1mw"]
                        cycles[k] = values["Ir"] + 10 * first_level + 100 * misses[k]
                    break
    print("instructions per task run (callgrind; PYTHONHASHSEED=0)")
    print(f"{'shape':<7} {'tasks':>8} {'build':>8} {'plan':>8} {'run1':>8} {'run2':>8}  (build + plan) / run2")
    tables = [("instructions", counts)]
    if cycles:
        tables += [("estimated cycles (Ir + 10 x first-level misses + 100 x last-level misses)", cycles)]
        tables += [("last-level cache misses", misses)]
    for title, table in tables:
        if title != "instructions":
            print(f"{title} per task run (simulated caches)")
        for e, (kind, _n, runs) in enumerate(layout):
            first = 5 * e + 1  # the segment after marker m is in dump m + 1
            build, plan, run1, run2 = (table[first + i + 1] / runs for i in range(len(PHASES)))
            scale, unit = (1e3, "k") if title != "last-level cache misses" else (1, " ")
            ratio = f"{(build + plan) / run2:5.2f}" if run2 else "    -"
            print(
                f"{kind:<7} {runs:>8,} {build / scale:7.1f}{unit} {plan / scale:7.1f}{unit} {run1 / scale:7.1f}{unit}"
                f" {run2 / scale:7.1f}{unit}  {ratio}"
            )


if __name__ == "__main__":
    main()
