"""What plait-metrics adds to every task state change (the issue's target: at most 10 us).

Run it with ``.venv/bin/python benchmarks/bench_metrics.py`` (``--quick`` for 1,000 tasks,
``--repeat N`` for the number of runs per row, best kept). It prints a table and never asserts
a time.

Workloads, on the ``local`` executor (every task is trivial, so the figures are the engine's
cost and the plugin's):

- map N:    ``make(N)`` -> ``inc.map(...)`` -> ``total(...)``: 2N + 6 task state changes;
- fanout N: one source -> N independent tasks: 2N + 2 task state changes.

Rows:

- ``no plugin``: the flow run with no observer at all (the engine's fast path);
- ``plugin off``: the plugin's hooks are called but ``[plugins.metrics]`` leaves it off
  (what an installed, unconfigured plugin costs);
- ``plugin on``: the Prometheus metrics (counters, histograms, gauge) are updated;
- ``plugin on + statsd``: the same, keeping every duration for StatsD (sent at the run's end
  to a local UDP port nobody reads; the flush is inside the timed run).

``us/change`` is the run's time divided by its task state changes; ``added us`` is the
difference with the ``no plugin`` row: the plugin's cost per task state change, including the
call into it. The hooks are called the way the plugin system calls them: through the installed
plugin manager when the core has one (``plait.hooks``), else as ``FlowRunner`` observers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import inspect
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import plait
from plait import Flow, task
from plait.engine.runner import FlowRunner, _plan

try:
    import plait_metrics
    from plait_metrics import plugin as metrics_plugin
except ImportError:
    sys.exit("plait-metrics is not installed: pip install -e 'plugins/plait-metrics[test]'")


def inc(x: int) -> int:
    return x + 1


def one() -> int:
    return 1


def make(n: int) -> list[int]:
    return list(range(n))


def total(xs: list[int]) -> int:
    return sum(xs)


def map_flow(n: int) -> Flow:
    t_make, t_inc, t_total = task(make), task(inc), task(total)
    with Flow(f"map-{n}") as flow:
        t_total(t_inc.map(t_make(n)))
    return flow


def fanout_flow(n: int) -> Flow:
    t_one, t_inc = task(one), task(inc)
    with Flow(f"fanout-{n}") as flow:
        src = t_one()
        for i in range(n):
            t_inc(src, task_args={"slug": f"inc-{i}"})
    return flow


def changes(name: str, n: int) -> int:
    return 2 * n + 6 if name == "map" else 2 * n + 2


# --- calling the hooks as the plugin system does --------------------------------------------------


def _has_plugin_system() -> bool:
    return "plugins" in inspect.signature(FlowRunner).parameters


def runner_factory(with_plugin: bool) -> tuple[Callable[[Flow], FlowRunner], Callable[[], AbstractContextManager]]:
    """``(make a FlowRunner, context manager around the timed runs)`` with or without the plugin."""
    if _has_plugin_system():
        from plait.hooks.manager import PlaitHooks, PlaitPluginManager, use_hooks

        # Only the core's built-in plugin, plus plait-metrics in the rows that have it: other
        # installed plugins do not take part.
        pm = PlaitPluginManager()
        pm.load_builtins()
        if with_plugin:
            pm.add_plugin(metrics_plugin, "metrics")
        hooks = PlaitHooks(pm)
        return FlowRunner, (lambda: use_hooks(hooks))
    if not with_plugin:
        return FlowRunner, nullcontext
    context = plait.context

    def on_task(t: Any, old: Any, new: Any) -> None:
        metrics_plugin.plait_task_state_changed(t, old, new, context)

    def on_flow(f: Any, old: Any, new: Any) -> None:
        metrics_plugin.plait_flow_state_changed(f, old, new, context)

    return (lambda flow: FlowRunner(flow, task_observers=[on_task], flow_observers=[on_flow])), nullcontext


def best_time(flow: Flow, with_plugin: bool, repeat: int) -> float:
    make_runner, around = runner_factory(with_plugin)
    times = []
    with around():
        make_runner(flow).run(executor="local")  # warm-up: plan compiled, label children made
        for _ in range(repeat):
            gc.collect()
            start = time.perf_counter()
            state = make_runner(flow).run(executor="local")
            times.append(time.perf_counter() - start)
            assert state.is_successful(), state
    return min(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return (
        f"machine: {cpu}, {os.cpu_count()} cores | Python {platform.python_version()} | "
        f"plait {plait.__version__} | plait-metrics {plait_metrics.__version__} | "
        f"prometheus-client {version('prometheus-client')} | "
        f"hooks via {'the plugin manager' if _has_plugin_system() else 'FlowRunner observers'} | "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 tasks instead of 10,000")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per row (best kept)")
    args = parser.parse_args(argv)
    n = 1_000 if args.quick else 10_000
    logging.getLogger("plait").setLevel(logging.WARNING)  # no "Beginning flow run" lines in the table

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))  # a StatsD port nobody reads: sends succeed, datagrams pile up
        statsd = f"127.0.0.1:{sink.getsockname()[1]}"
        rows: list[tuple[str, dict[str, Any] | None]] = [
            ("no plugin", None),
            ("plugin off", {"enabled": False}),
            ("plugin on", {"enabled": True}),
            ("plugin on + statsd", {"statsd": statsd, "statsd_interval": 3600}),
        ]
        print(machine())
        print()
        header = f"{'workload':<14}{'row':<22}{'changes':>9}{'run s':>10}{'us/change':>11}{'added us':>10}"
        print(header)
        print("-" * len(header))
        for name, build in (("map", map_flow), ("fanout", fanout_flow)):
            flow = build(n)
            _plan(flow)
            count = changes(name, n)
            base = None
            for label, settings in rows:
                if settings is None:
                    plait_metrics.stop()
                    seconds = best_time(flow, False, args.repeat)
                else:
                    plait_metrics.start(settings)
                    seconds = best_time(flow, True, args.repeat)
                    plait_metrics.stop()
                per = seconds / count * 1e6
                if base is None:
                    base = per
                added = "" if settings is None else f"{per - base:10.2f}"
                print(f"{name + f' {n:,}':<14}{label:<22}{count:>9,}{seconds:>10.4f}{per:>11.2f}{added:>10}")
        print()
        print("target: the 'plugin on' rows add at most 10 us per task state change")


if __name__ == "__main__":
    main()
