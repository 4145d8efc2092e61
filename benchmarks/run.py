"""Plait's benchmark: per-task overhead, growth, memory and import time.

Run it with ``make bench`` (or ``.venv/bin/python benchmarks/run.py``; ``--quick`` for a
smaller run). It prints tables, and never asserts a time: see ``benchmarks/README.md`` for
how to read them.

Workloads (every task is a trivial function, so the figures are the engine's own cost):

- chain N:   t1 -> t2 -> ... -> tN, each adds 1 to its input;
- fanout N:  one source -> N independent tasks, each taking the source's result
             (N + 1 task runs);
- fanin N:   the same, plus one sink that waits for all N tasks (N + 2 task runs; only up
             to 10,000: compiling a task with N upstream tasks is quadratic in N today);
- map N:     a task returns range(N) -> a task mapped over it -> a task sums the list
             (N + 2 task runs).

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

# --- the plain functions (shared by Plait and the bare schedulers) ----------------------------


def sink() -> int:
    return 0


# --- Plait flows ---------------------------------------------------------------------------


# Tasks get explicit slugs: Flow.add_task finds a free slug for a repeated name by counting
# up from 1, which makes building N same-named tasks quadratic (a flow-building cost, not a
# run cost; see benchmarks/README.md).


def chain_flow(n: int) -> Flow:
    t_inc = task(inc)
    with Flow(f"chain-{n}") as flow:
        x = t_inc(0, task_args={"slug": "inc-0"})
        for i in range(1, n):
            x = t_inc(x, task_args={"slug": f"inc-{i}"})
    return flow


def fanout_flow(n: int, fan_in: bool = False) -> Flow:
    t_one, t_inc, t_sink = task(one), task(inc), task(sink)
    with Flow(f"{'fanin' if fan_in else 'fanout'}-{n}") as flow:
        src = t_one()
        leaves = [t_inc(src, task_args={"slug": f"inc-{i}"}) for i in range(n)]
        if fan_in:
            t_sink(upstream_tasks=leaves)
    return flow


def fanin_flow(n: int) -> Flow:
    return fanout_flow(n, fan_in=True)


FLOWS: dict[str, Callable[[int], Flow]] = {
    "chain": chain_flow,
    "fanout": fanout_flow,
    "fanin": fanin_flow,
    "map": map_flow,
}


def task_runs(kind: str, n: int) -> int:
    return {"chain": n, "fanout": n + 1}.get(kind, n + 2)


# --- the bare schedulers -------------------------------------------------------------------
# A graph is a list of nodes (fn, upstream indices); a node's inputs are its upstream results.


def bare_graph(kind: str, n: int) -> list[tuple[Callable[..., Any], tuple[int, ...]]]:
    if kind == "chain":
        return [(lambda: inc(0), ())] + [(inc, (i,)) for i in range(n - 1)]
    if kind == "fanout":
        return [(one, ()), *[(inc, (0,)) for _ in range(n)]]
    if kind == "fanin":
        return [(one, ()), *[(inc, (0,)) for _ in range(n)], (lambda *_: sink(), tuple(range(1, n + 1)))]
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


def import_times(repeat: int) -> tuple[float, float, float]:
    """(importtime cumulative ms of `plait`, wall ms of `python -c "import plait"`, wall ms of `python -c pass`)."""
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


# --- the run -------------------------------------------------------------------------------


def plan_of(quick: bool) -> list[tuple[str, int, list[str]]]:
    """(workload, size, executors) in the order they run."""
    sizes = {
        "chain": [100, 1_000, 10_000],
        "fanout": [100, 1_000, 10_000, 100_000],
        "fanin": [100, 1_000, 10_000],
        "map": [100, 1_000, 10_000, 100_000],
    }
    if quick:
        sizes = {
            "chain": [100, 1_000],
            "fanout": [100, 1_000, 10_000],
            "fanin": [100, 1_000],
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
    f"{'workload':<8} {'tasks':>7} {'executor':<9} {'build s':>8} {'plait s':>8} {'us/task':>8} "
    f"{'bare s':>8} {'bare us':>8} {'ratio':>6} {'peak B/t':>9} {'kept B/t':>9}"
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
    print("times: best of N runs (N = 7 up to 1,000 tasks, 5 at 10,000, 3 at 100,000, 2 on processes);")
    print("bare = the same functions on a bare topological-sort loop (local) or ThreadPoolExecutor (threads);")
    print("memory: tracemalloc, local executor only, peak and retained bytes per task run (separate run).")
    print(f"plugins: {loaded_plugins()}")
    print()
    print_header(HEADER)
    per_task: dict[tuple[str, int, str], float] = {}
    bare_per_task: dict[tuple[str, int, str], float] = {}
    for kind, n, executors in plan_of(args.quick):
        runs = task_runs(kind, n)
        start = time.perf_counter()
        flow = FLOWS[kind](n)
        _plan(flow)  # compile the graph once (cached per flow version), as every real run does
        build_text = f"{time.perf_counter() - start:8.3f}"
        graph = bare_graph(kind, n)
        for executor in executors:
            r = repeats(n, executor)
            seconds = best_of(r, lambda flow=flow, executor=executor: run_plait(flow, executor))
            per_task[(kind, n, executor)] = seconds / runs
            bare_s = bare_us = ratio = ""
            if executor in ("local", "threads"):
                bare_fn = bare_loop if executor == "local" else bare_threads
                bare = best_of(r, lambda bare_fn=bare_fn, graph=graph: bare_fn(graph))
                bare_per_task[(kind, n, executor)] = bare / runs
                bare_s, bare_us, ratio = f"{bare:8.3f}", f"{bare / runs * 1e6:8.2f}", f"{seconds / bare:6.1f}"
            peak = kept = ""
            if executor == "local":
                peak_b, kept_b = memory_per_task(flow, executor, runs)
                peak, kept = f"{peak_b:9.0f}", f"{kept_b:9.0f}"
            print(
                f"{kind:<8} {runs:>7,} {executor:<9} {build_text:>8} {seconds:8.3f} {seconds / runs * 1e6:8.2f} "
                f"{bare_s:>8} {bare_us:>8} {ratio:>6} {peak:>9} {kept:>9}",
                flush=True,
            )
            build_text = ""  # shown once per workload
        del flow, graph
    if not args.with_plugins:
        print_plugin_cost(10_000 if not args.quick else 1_000)
    print()
    big, small = (100_000, 10_000) if not args.quick else (10_000, 1_000)
    print(f"linear growth: time for {big:,} tasks / time for {small:,} tasks (target <= 12x; bare for reference)")
    for kind in ("chain", "fanout", "map"):
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
