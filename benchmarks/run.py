"""Plait's benchmark: per-task overhead, growth, memory and import time.

Run it with ``make bench`` (or ``.venv/bin/python benchmarks/run.py``; ``--quick`` for a
smaller run). It prints tables, and never asserts a time: see ``benchmarks/README.md`` for
how to read them.

Workloads (every task is a trivial function, so the figures are the engine's own cost), each
built the way users write it (no slugs or other help for the engine):

- chain N:   t1 -> t2 -> ... -> tN, each adds 1 to its input (``x = inc(x)`` in a loop);
- fanout N:  one source -> N independent tasks, each taking the source's result
             (N + 1 task runs);
- fanin N:   ``total([inc(i) for i in range(N)])``: N tasks, the list collecting their
             results, and the sum (N + 2 task runs);
- map N:     a task returns range(N) -> a task mapped over it -> a task sums the list
             (N + 2 task runs).

Building a flow (the ``with Flow(...)`` block), validating and planning it (what the first
``flow.run()`` of a flow does before its first task) and running it are measured apart, and
the first run of a fresh process is measured against its second run.

Each Plait run is compared with the same plain functions driven by a bare scheduler:
for ``local``, a topological-sort loop (Kahn's algorithm with in-degree counts) calling the
functions in order; for ``threads``, the same loop submitting ready functions to a
``concurrent.futures.ThreadPoolExecutor`` and collecting them as they finish.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import gc
import os
import queue
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from _common import best_of, inc, machine, make, map_flow, one, print_header, total

from plait import Flow, task
from plait.engine.runner import _plan

# --- Plait flows, built the way users write them ------------------------------------------


def chain_flow(n: int) -> Flow:
    t_inc = task(inc)
    with Flow(f"chain-{n}") as flow:
        x = t_inc(0)
        for _ in range(1, n):
            x = t_inc(x)
    return flow


def fanout_flow(n: int) -> Flow:
    t_one, t_inc = task(one), task(inc)
    with Flow(f"fanout-{n}") as flow:
        src = t_one()
        for _ in range(n):
            t_inc(src)
    return flow


def fanin_flow(n: int) -> Flow:
    t_inc, t_total = task(inc), task(total)
    with Flow(f"fanin-{n}") as flow:
        t_total([t_inc(i) for i in range(n)])
    return flow


FLOWS: dict[str, Callable[[int], Flow]] = {
    "chain": chain_flow,
    "fanout": fanout_flow,
    "fanin": fanin_flow,
    "map": map_flow,
}


def task_runs(kind: str, n: int) -> int:
    # fanin: n tasks, the list that collects them, the sum; map: make, n children, total
    return {"chain": n, "fanout": n + 1}.get(kind, n + 2)


# --- the bare schedulers -------------------------------------------------------------------
# A graph is a list of nodes (fn, upstream indices); a node's inputs are its upstream results.


def bare_graph(kind: str, n: int) -> list[tuple[Callable[..., Any], tuple[int, ...]]]:
    if kind == "chain":
        return [(lambda: inc(0), ())] + [(inc, (i,)) for i in range(n - 1)]
    if kind == "fanout":
        return [(one, ()), *[(inc, (0,)) for _ in range(n)]]
    if kind == "fanin":
        return [*[((lambda i=i: inc(i)), ()) for i in range(n)], (lambda *xs: total(list(xs)), tuple(range(n)))]
    # map: node 0 makes the list, nodes 1..n each take item i-1 of it, node n+1 sums them
    leaves = [((lambda xs, i=i: inc(xs[i])), (0,)) for i in range(n)]
    return [(lambda: make(n), ()), *leaves, (lambda *xs: total(list(xs)), tuple(range(1, n + 1)))]


def _prepare(graph: list[tuple[Callable[..., Any], tuple[int, ...]]]) -> tuple[list[int], list[list[int]]]:
    indegree = [len(ups) for _, ups in graph]
    downs: list[list[int]] = [[] for _ in graph]
    for d, (_, ups) in enumerate(graph):
        for u in ups:
            downs[u].append(d)
    return indegree, downs


def bare_loop(graph: list[tuple[Callable[..., Any], tuple[int, ...]]]) -> list[Any]:
    """Kahn's algorithm, calling each function once its inputs are ready."""
    indegree, downs = _prepare(graph)
    results: list[Any] = [None] * len(graph)
    ready = [i for i, k in enumerate(indegree) if k == 0]
    while ready:
        i = ready.pop()
        fn, ups = graph[i]
        results[i] = fn(*[results[u] for u in ups])
        for d in downs[i]:
            indegree[d] -= 1
            if indegree[d] == 0:
                ready.append(d)
    return results


def bare_threads(graph: list[tuple[Callable[..., Any], tuple[int, ...]]]) -> list[Any]:
    """The same loop, submitting ready functions to a thread pool and collecting them as they finish."""
    indegree, downs = _prepare(graph)
    results: list[Any] = [None] * len(graph)
    done: queue.SimpleQueue = queue.SimpleQueue()
    inflight: dict[Any, int] = {}
    with cf.ThreadPoolExecutor() as pool:

        def submit(i: int) -> None:
            fn, ups = graph[i]
            future = pool.submit(fn, *[results[u] for u in ups])
            inflight[future] = i
            future.add_done_callback(done.put)

        for i, k in enumerate(indegree):
            if k == 0:
                submit(i)
        while inflight:
            future = done.get()
            i = inflight.pop(future)
            results[i] = future.result()
            for d in downs[i]:
                indegree[d] -= 1
                if indegree[d] == 0:
                    submit(d)
    return results


# --- measuring -----------------------------------------------------------------------------


def run_plait(flow: Flow, executor: str) -> None:
    state = flow.run(executor=executor)
    if not state.is_successful():
        raise SystemExit(f"benchmark flow {flow.name} failed on {executor}: {state.message}")


def memory_per_task(flow: Flow, executor: str, runs: int) -> tuple[float, float]:
    """(peak bytes, retained bytes) per task run of one run, measured with tracemalloc.

    Peak: the highest traced memory during the run, above what was traced before it.
    Retained: what the finished flow-run state (every task-run state, the results of these
    tasks are small ints) still holds after the run.
    """
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        state = flow.run(executor=executor)
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del state
    return (peak - before) / runs, (current - before) / runs


def build_times(kind: str, n: int, repeat: int) -> tuple[float, float, float]:
    """(build, validate + plan, new flow) seconds, best of ``repeat``, each sample a new flow.

    build: the ``with Flow(...)`` block as users write it; validate + plan: ``flow.validate()``
    and compiling the run plan, what the first ``flow.run()`` of a flow does before its first
    task; new flow: build, validate, plan and run a new flow on the local executor, in one go.
    """
    build, plan, new = [], [], []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        flow = FLOWS[kind](n)
        built = time.perf_counter()
        flow.validate()
        _plan(flow)
        planned = time.perf_counter()
        build.append(built - start)
        plan.append(planned - built)
        del flow
        gc.collect()
        start = time.perf_counter()
        run_plait(FLOWS[kind](n), "local")
        new.append(time.perf_counter() - start)
    return min(build), min(plan), min(new)


def compile_plait() -> None:
    """Write the byte-code caches of the installed plait packages, as installing them does.

    With ``PYTHONDONTWRITEBYTECODE`` set (CI images and this machine set it), a checkout whose
    sources changed since they were last compiled is compiled again in every fresh process,
    and the import and first-run rows would measure the compiler, not Plait.
    """
    import compileall
    import importlib.util

    for name in (
        "plait",
        *(f"plait_{p}" for p in ("dask", "docker", "http", "metrics", "s3", "server", "slack", "sql")),
    ):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)


def import_times(repeat: int) -> tuple[float, float, float]:
    """(importtime cumulative ms of `plait`, wall ms of `python -c "import plait"`, wall ms of `python -c pass`)."""
    compile_plait()
    cumulative = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import plait"], capture_output=True, text=True, check=True
        )
        for line in proc.stderr.splitlines():
            match = re.match(r"import time:\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\S+)\s*$", line)
            if match and match.group(3) == "plait":
                cumulative.append(int(match.group(2)) / 1000)

    def wall(code: str) -> float:
        return best_of(repeat, lambda: subprocess.run([sys.executable, "-c", code], check=True), collect=False) * 1000

    return statistics.median(cumulative), wall("import plait"), wall("pass")


# A fresh process: import plait, build a one-task flow, run it (the first run of the process),
# then build and run another one-task flow (the second run). Prints the three times as JSON.
FIRST_RUN = """
import json, time
start = time.perf_counter()
from plait import Flow, task
imported = time.perf_counter()

@task
def one():
    return 1

def run():
    with Flow("first-run") as flow:
        one()
    start = time.perf_counter()
    state = flow.run()
    assert state.is_successful(), state
    return time.perf_counter() - start

first = run()
second = run()
print(json.dumps({"import": imported - start, "first": first, "second": second}))
"""


def first_run_times(repeat: int, plugins: bool) -> dict[str, float]:
    """Best of ``repeat`` fresh processes: seconds to import plait, of the first and the second run.

    ``plugins``: every installed plugin is loaded, none configured (an empty home, no
    ``PLAIT_*`` variables); otherwise none is loaded (``PLAIT_LOAD_PLUGINS=""``).
    """
    import json
    import tempfile

    compile_plait()
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT")}
        env["HOME"] = home  # no ~/.plait/config.toml: nothing configured
        if not plugins:
            env["PLAIT_LOAD_PLUGINS"] = ""
        for _ in range(repeat):
            proc = subprocess.run(
                [sys.executable, "-c", FIRST_RUN], env=env, capture_output=True, text=True, cwd=home, check=False
            )
            if proc.returncode != 0:
                raise SystemExit(f"first-run benchmark failed:\n{proc.stderr}")
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            for key, value in figures.items():
                best[key] = min(best.get(key, value), value)
    return best


def installed_plugins() -> str:
    from importlib.metadata import entry_points

    names = sorted(
        {ep.dist.name for ep in entry_points(group="plait") if ep.dist is not None and ep.dist.name != "plait"}
    )
    return ", ".join(names) or "none"


def print_first_run(repeat: int) -> None:
    print(f"first run: a one-task flow in a fresh process, best of {repeat} processes (ms)")
    print(f"  {'plugins':<44} {'import':>7} {'1st run':>8} {'2nd run':>8} {'1st - 2nd':>9}")
    rows = [('none loaded (PLAIT_LOAD_PLUGINS="")', False), ("all installed, none configured", True)]
    for label, plugins in rows:
        t = first_run_times(repeat, plugins)
        print(
            f"  {label:<44} {t['import'] * 1e3:7.1f} {t['first'] * 1e3:8.1f} {t['second'] * 1e3:8.1f} "
            f"{(t['first'] - t['second']) * 1e3:9.1f}",
            flush=True,
        )
    print(f"  installed: {installed_plugins()}  (target: 1st - 2nd <= 50 ms with all installed)")


# --- the run -------------------------------------------------------------------------------


def plan_of(quick: bool) -> list[tuple[str, int, list[str]]]:
    """(workload, size, executors) in the order they run."""
    sizes = {
        "chain": [100, 1_000, 10_000],
        "fanout": [100, 1_000, 10_000, 100_000],
        "fanin": [100, 1_000, 10_000, 100_000],
        "map": [100, 1_000, 10_000, 100_000],
    }
    if quick:
        sizes = {
            "chain": [100, 1_000],
            "fanout": [100, 1_000, 10_000],
            "fanin": [100, 1_000, 10_000],
            "map": [100, 1_000, 10_000],
        }
    out = []
    for kind, ns in sizes.items():
        for n in ns:
            executors = ["local", "threads"] + (["processes"] if n <= 1_000 else [])
            out.append((kind, n, executors))
    return out


def repeats(n: int, executor: str) -> int:
    if executor == "processes":
        return 2
    return 7 if n <= 1_000 else 5 if n <= 10_000 else 3


HEADER = (
    f"{'workload':<8} {'tasks':>7} {'executor':<9} {'build us':>8} {'plan us':>8} {'run us':>8} "
    f"{'bare us':>8} {'ratio':>6} {'new us':>8} {'new/bare':>8} {'peak B/t':>9} {'kept B/t':>9}"
)


def loaded_plugins() -> str:
    from plait.hooks.manager import get_hooks

    records = get_hooks().pm.records.values()
    names = [r.distribution for r in records if r.status == "loaded" and not r.builtin]
    return ", ".join(sorted(names)) or "none (the engine alone; --with-plugins loads the installed ones)"


def print_plugin_cost(n: int) -> None:
    """The same map with every installed plugin loaded, against none: what plugins add per task."""
    from plait.hooks.manager import reset_hooks

    flow = map_flow(n)
    runs = n + 2
    alone = best_of(5, lambda: run_plait(flow, "local"))
    saved = os.environ.pop("PLAIT_LOAD_PLUGINS", None)
    reset_hooks()
    try:
        installed = loaded_plugins()
        loaded = best_of(5, lambda: run_plait(flow, "local"))
    finally:
        if saved is not None:
            os.environ["PLAIT_LOAD_PLUGINS"] = saved
        reset_hooks()
    print()
    print(f"installed plugins, unconfigured: map {n:,} on local")
    print(f"  none loaded {alone / runs * 1e6:8.2f} us/task")
    print(f"  all loaded  {loaded / runs * 1e6:8.2f} us/task   (+{(loaded - alone) / runs * 1e6:.2f}; {installed})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 20 seconds)")
    parser.add_argument(
        "--with-plugins",
        action="store_true",
        help="measure with the installed plugins loaded (default: none, so the figures are the engine's)",
    )
    args = parser.parse_args()
    # The tables measure the engine. Installed plugins that observe state changes add their own
    # cost to every run (shown in its own row below, and by each plugin's benchmark).
    if not args.with_plugins:
        os.environ["PLAIT_LOAD_PLUGINS"] = ""
    # Log lines would measure the terminal, not the engine.
    import logging

    logging.getLogger("plait").setLevel(logging.WARNING)

    started = time.perf_counter()
    print(machine())
    print("times: best of N (N = 7 up to 1,000 tasks, 5 at 10,000, 3 at 100,000, 2 on processes), per task run;")
    print("flows are built as users write them; build, validate + plan and new flow take a new flow each sample;")
    print("bare = the same functions on a bare topological-sort loop (local) or ThreadPoolExecutor (threads);")
    print("memory: tracemalloc, local executor only, peak and retained bytes per task run (separate run).")
    print(f"plugins: {loaded_plugins()}")
    print()
    print_header(HEADER)
    per_task: dict[tuple[str, int, str], float] = {}
    bare_per_task: dict[tuple[str, int, str], float] = {}
    build_per_task: dict[tuple[str, int], tuple[float, float, float]] = {}
    for kind, n, executors in plan_of(args.quick):
        runs = task_runs(kind, n)
        build_s, plan_s, new_s = build_times(kind, n, repeats(n, "local"))
        build_per_task[(kind, n)] = (build_s / runs, plan_s / runs, new_s / runs)
        flow = FLOWS[kind](n)
        _plan(flow)  # the run figures are of a flow already validated and planned
        graph = bare_graph(kind, n)
        for executor in executors:
            r = repeats(n, executor)
            seconds = best_of(r, lambda flow=flow, executor=executor: run_plait(flow, executor))
            per_task[(kind, n, executor)] = seconds / runs
            build = plan = bare_us = ratio = new = new_ratio = ""
            if executor == "local":
                build, plan, new = (
                    f"{build_s / runs * 1e6:8.2f}",
                    f"{plan_s / runs * 1e6:8.2f}",
                    f"{new_s / runs * 1e6:8.2f}",
                )
            if executor in ("local", "threads"):
                bare_fn = bare_loop if executor == "local" else bare_threads
                bare = best_of(r, lambda bare_fn=bare_fn, graph=graph: bare_fn(graph))
                bare_per_task[(kind, n, executor)] = bare / runs
                bare_us, ratio = f"{bare / runs * 1e6:8.2f}", f"{seconds / bare:6.1f}"
                if executor == "local":
                    new_ratio = f"{new_s / bare:8.1f}"
            peak = kept = ""
            if executor == "local":
                peak_b, kept_b = memory_per_task(flow, executor, runs)
                peak, kept = f"{peak_b:9.0f}", f"{kept_b:9.0f}"
            print(
                f"{kind:<8} {runs:>7,} {executor:<9} {build:>8} {plan:>8} {seconds / runs * 1e6:8.2f} "
                f"{bare_us:>8} {ratio:>6} {new:>8} {new_ratio:>8} {peak:>9} {kept:>9}",
                flush=True,
            )
        del flow, graph
    print()
    print("building: us per task to build the flow, and to build + validate + plan it, against the run (local)")
    print("  (targets: build <= 5 us per task at 10,000 tasks; build + validate + plan <= run)")
    for (kind, n), (build_t, plan_t, _new) in build_per_task.items():
        if n >= 1_000:
            run_t = per_task[(kind, n, "local")]
            ready = build_t + plan_t
            print(
                f"  {kind:<7} {task_runs(kind, n):>8,}  build {build_t * 1e6:6.2f}  build + plan {ready * 1e6:6.2f}"
                f"  run {run_t * 1e6:6.2f}  (build + plan) / run {ready / run_t:5.2f}"
            )
    if not args.with_plugins:
        print_plugin_cost(10_000 if not args.quick else 1_000)
    print()
    big, small = (100_000, 10_000) if not args.quick else (10_000, 1_000)
    print(f"linear growth: time for {big:,} tasks / time for {small:,} tasks (target <= 12x; bare for reference)")
    for kind in ("chain", "fanout", "fanin", "map"):
        for executor in ("local", "threads"):
            key_big, key_small = (kind, big, executor), (kind, small, executor)
            if key_big in per_task and key_small in per_task:
                growth = task_runs(kind, big) / task_runs(kind, small)
                ratio = per_task[key_big] / per_task[key_small] * growth
                bare = bare_per_task[key_big] / bare_per_task[key_small] * growth
                print(f"  {kind:<7} {executor:<8} plait {ratio:6.1f}x   bare {bare:6.1f}x")
    # Python's cyclic garbage collector scans every live object in its full collections, and a
    # run with many task runs in flight keeps many alive: show the growth without it too.
    if not args.quick:
        timed = {}
        for n in (small, big):
            flow = fanout_flow(n)
            _plan(flow)
            gc.collect()
            gc.disable()
            try:
                timed[n] = best_of(2, lambda flow=flow: run_plait(flow, "threads"))
            finally:
                gc.enable()
            del flow
        ratio = timed[big] / timed[small]
        print(f"  fanout  threads  plait {ratio:6.1f}x   with the garbage collector disabled during the runs")
    print()
    print_first_run(5)
    print()
    # Memory of one big map per executor, each in a fresh process (benchmarks/bench_map_memory.py):
    # the thread executor gets the runner's ready task runs in a bounded window.
    from bench_map_memory import print_table

    print_table(100_000 if args.quick else 1_000_000, ["local", "threads"])
    print()
    cumulative, wall, baseline = import_times(5)
    print("import plait:")
    print(
        f"  python -X importtime, cumulative of the `plait` line (median of 5): {cumulative:7.1f} ms  (target <= 60 ms)"
    )
    print(f"  wall time of a fresh `python -c 'import plait'` (best of 5):     {wall:7.1f} ms")
    print(f"  wall time of a fresh `python -c 'pass'` (best of 5):             {baseline:7.1f} ms")
    print()
    print(f"benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
