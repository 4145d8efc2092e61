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

import types

from _common import best_of, machine, map_arguments, map_flow, print_header

import plait
from plait import Flow
from plait.testing import using_plugins


def build(n: int) -> Flow:
    return map_flow(n, name="bench-hooks")


def plugin(name: str, body) -> types.ModuleType:
    module = types.ModuleType(name)
    module.plait_task_state_changed = plait.hookimpl(body)
    return module


def passthrough(task, context):
    state = yield
    return state


def best_run(flow: Flow, repeat: int) -> float:
    def run() -> None:
        assert flow.run(executor="local").is_successful()

    return best_of(repeat, run)


def main() -> None:
    args = map_arguments(__doc__.splitlines()[0])

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
        best_run(flow, 1)  # warm up: the plan is compiled once per flow
        base = best_run(flow, args.repeat)
    rows.append(("no plugin", base))
    with using_plugins(plugin("plait_bench_trivial", nothing), strict=False):
        rows.append(("trivial plugin", best_run(flow, args.repeat)))
    with using_plugins(plugin("plait_bench_counting", count), strict=False):
        rows.append(("counting plugin", best_run(flow, args.repeat)))
    wrapper = types.ModuleType("plait_bench_wrapper")
    wrapper.plait_task_run = plait.hookimpl(wrapper=True)(passthrough)
    with using_plugins(wrapper, strict=False):
        rows.append(("task-run wrapper", best_run(flow, args.repeat)))

    print(machine())
    print(f"hooks benchmark: map of {args.n:,} tasks on local, {tasks:,} task runs,")
    print(f"{changes:,} task state changes per run; best of {args.repeat} runs")
    print()
    header = f"{'case':<17} {'run (ms)':>10} {'us/task':>9} {'extra us/task':>14} {'extra us/change':>16}"
    print_header(header)
    for name, seconds in rows:
        extra = seconds - base
        print(
            f"{name:<17} {seconds * 1e3:>10.1f} {seconds / tasks * 1e6:>9.2f} "
            f"{extra / tasks * 1e6:>14.2f} {extra / changes * 1e6:>16.2f}"
        )


if __name__ == "__main__":
    main()
