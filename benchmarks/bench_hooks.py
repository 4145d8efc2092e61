"""What a plugin observer costs per task: a 10,000-task map on the local executor.

Run it with ``.venv/bin/python benchmarks/bench_hooks.py`` (``--n``, ``--repeat`` to change the
size). It prints one table and asserts nothing. Cases:

- no plugin:       only the core's built-in plugin (no observer hook implemented, so the
                   runner calls nothing per task);
- trivial plugin:  one plugin whose ``plait_task_state_changed`` does nothing;
- counting plugin: one plugin whose ``plait_task_state_changed`` counts calls (so the table
                   also says how many state changes a run makes);
- task-run wrapper: one plugin whose ``plait_task_run`` wrapper only yields (its "extra us/change"
                   column is per state change too, for comparison; it runs once per task run).

The per-state-change figure is (plugin run - no-plugin run) / state changes; the target is
at most 5 us.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
import types

import plait
from plait import Flow, task
from plait.testing import using_plugins


@task
def numbers(n):
    return list(range(n))


@task
def inc(x):
    return x + 1


@task
def total(xs):
    return sum(xs)


def build(n: int) -> Flow:
    with Flow("bench-hooks") as flow:
        total(inc.map(numbers(n)))
    return flow


def plugin(name: str, body) -> types.ModuleType:
    module = types.ModuleType(name)
    module.plait_task_state_changed = plait.hookimpl(body)
    return module


def passthrough(task, context):
    state = yield
    return state


def best_of(flow: Flow, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        state = flow.run(executor="local")
        times.append(time.perf_counter() - start)
        assert state.is_successful()
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="mapped children (default 10,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the best is kept (default 5)")
    args = parser.parse_args()

    import logging

    logging.getLogger("plait").setLevel(logging.WARNING)
    flow = build(args.n)
    tasks = args.n + 3  # numbers, the mapped parent, its children, total

    calls = [0]

    def count(task, old_state, new_state, context):
        calls[0] += 1

    def nothing(task, old_state, new_state, context):
        return None

    with using_plugins(plugin("plait_bench_counting", count), strict=False):
        flow.run(executor="local")
    changes = calls[0]

    rows = []
    with using_plugins(strict=False):
        best_of(flow, 1)  # warm up: the plan is compiled once per flow
        base = best_of(flow, args.repeat)
    rows.append(("no plugin", base))
    with using_plugins(plugin("plait_bench_trivial", nothing), strict=False):
        rows.append(("trivial plugin", best_of(flow, args.repeat)))
    with using_plugins(plugin("plait_bench_counting", count), strict=False):
        rows.append(("counting plugin", best_of(flow, args.repeat)))
    wrapper = types.ModuleType("plait_bench_wrapper")
    wrapper.plait_task_run = plait.hookimpl(wrapper=True)(passthrough)
    with using_plugins(wrapper, strict=False):
        rows.append(("task-run wrapper", best_of(flow, args.repeat)))

    print(f"Plait {plait.__version__} hooks benchmark on {platform.python_implementation()} {sys.version.split()[0]}")
    print(f"{platform.machine()}, {platform.system()} {platform.release()}; map of {args.n:,} tasks on local,")
    print(f"{tasks:,} task runs, {changes:,} task state changes per run; best of {args.repeat} runs")
    print()
    header = f"{'case':<17} {'run (ms)':>10} {'us/task':>9} {'extra us/task':>14} {'extra us/change':>16}"
    print(header)
    print("-" * len(header))
    for name, seconds in rows:
        extra = seconds - base
        print(
            f"{name:<17} {seconds * 1e3:>10.1f} {seconds / tasks * 1e6:>9.2f} "
            f"{extra / tasks * 1e6:>14.2f} {extra / changes * 1e6:>16.2f}"
        )


if __name__ == "__main__":
    main()
