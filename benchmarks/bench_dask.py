"""Plait's DaskExecutor against plain dask.distributed, on the same 2-worker LocalCluster.

Run: ``.venv/bin/python benchmarks/bench_dask.py [N] [--chain C] [--big]`` (needs plugins/plait-dask
installed). Three workloads, each through ``DaskExecutor`` and through plain Dask futures
(``client.map`` / ``client.submit``, then ``client.gather``), in the same run and on the same
cluster; the Plait flows are built as users write them:

- ``map``: ``inc.map(range(N))``, every result back in the driver at the end;
- ``fan-out``: one task, then N tasks that each take its result;
- ``chain``: C tasks (default 1,000), each taking the result of the one before
  (``x = inc(x)``); plain Dask submits each with the previous future as its argument;
- ``map bs=1``, ``chain bs=1``: the same with ``batch_size=1`` (each task run its own Dask
  task), once each.

A chain is pipelined: its tasks are sent together, each run on the cluster once the one before
it succeeded, in batches of consecutive links (see plait-dask's README).

``--big`` adds a 100,000-item map, each side on a fresh cluster, with the resident memory of
the scheduler's process before and after (a LocalCluster's scheduler lives in this process,
so Plait's figure includes the driver's own states too). Prints the machine, the versions and the figures (total
seconds, best of 3, and the ratio Plait / plain Dask); asserts nothing about time.
"""

from __future__ import annotations

import argparse
import logging
import time

import dask
import distributed
from _common import machine
from plait_dask import DaskExecutor

from plait import Flow, task

REPEATS = 3


def inc(x):
    return x + 1


def source():
    return 1


inc_task = task(inc, name="inc")
source_task = task(source, name="source")


def map_flow(n: int) -> Flow:
    with Flow("bench-map") as flow:
        inc_task.map(list(range(n)))
    return flow


def fan_out_flow(n: int) -> Flow:
    with Flow("bench-fan-out") as flow:
        s = source_task()
        for _ in range(n):
            inc_task(s)
    return flow


def chain_flow(n: int) -> Flow:
    with Flow("bench-chain") as flow:
        x = inc_task(0)
        for _ in range(n - 1):
            x = inc_task(x)
    return flow


def plain_chain(client, n: int) -> int:
    x = client.submit(inc, 0, pure=False)
    for _ in range(n - 1):
        x = client.submit(inc, x, pure=False)
    return x.result()


def plain_map(client, n: int) -> list:
    return client.gather(client.map(inc, range(n), pure=False))


def plain_fan_out(client, n: int) -> list:
    s = client.submit(source, pure=False)
    return client.gather([client.submit(inc, s, pure=False) for _ in range(n)])


def best(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_plait(flow: Flow, address: str) -> None:
    state = flow.run(executor=DaskExecutor(address))
    assert state.is_successful(), state


def scheduler_rss(client) -> int:
    def rss(dask_scheduler=None):
        import psutil

        return psutil.Process().memory_info().rss

    return client.run_on_scheduler(rss)


def cluster() -> distributed.LocalCluster:
    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000, help="map and fan-out size (default 10,000)")
    parser.add_argument("--chain", type=int, default=1_000, help="chain length (default 1,000)")
    parser.add_argument("--big", action="store_true", help="add a 100,000-item map with memory figures")
    args = parser.parse_args()
    n, chain = args.n, args.chain
    logging.getLogger("plait").setLevel(logging.WARNING)
    print(machine(f"dask {dask.__version__}", f"distributed {distributed.__version__}"))
    print("cluster: LocalCluster, 2 worker processes x 1 thread, 127.0.0.1; seconds: best of 3")
    print(f"{'workload':>10} {'size':>8} {'plait s':>9} {'dask s':>9} {'ratio':>7} {'plait ms/t':>10} {'dask ms/t':>9}")
    with cluster() as c, distributed.Client(c) as client:
        flows = {"map": map_flow(n), "fan-out": fan_out_flow(n), "chain": chain_flow(chain)}
        plains = {"map": plain_map, "fan-out": plain_fan_out, "chain": plain_chain}
        sizes = {"map": n, "fan-out": n, "chain": chain}
        for name, flow in flows.items():
            run_plait(flow, c.scheduler_address)  # warm up: workers import plait, the plan is compiled
            plains[name](client, 100)
            size = sizes[name]
            plait_s = best(lambda flow=flow: run_plait(flow, c.scheduler_address))
            dask_s = best(lambda name=name, size=size: plains[name](client, size))
            print(
                f"{name:>10} {size:>8} {plait_s:>9.2f} {dask_s:>9.2f} {plait_s / dask_s:>7.2f} "
                f"{plait_s / size * 1e3:>10.2f} {dask_s / size * 1e3:>9.2f}",
                flush=True,
            )
            if name == "map":
                map_dask_s = dask_s
            elif name == "chain":
                chain_dask_s = dask_s
        # The same map without batching (one Dask task per task run, plus one for its states):
        # what batching buys. One repeat: it is slow.
        single = DaskExecutor(c.scheduler_address, batch_size=1)
        for name, dask_s in (("map", map_dask_s), ("chain", chain_dask_s)):
            start = time.perf_counter()
            assert flows[name].run(executor=single).is_successful()
            single_s = time.perf_counter() - start
            size = sizes[name]
            print(
                f"{name + ' bs=1':>10} {size:>8} {single_s:>9.2f} {dask_s:>9.2f} {single_s / dask_s:>7.2f} "
                f"{single_s / size * 1e3:>10.2f} {dask_s / size * 1e3:>9.2f}",
                flush=True,
            )
    if args.big:
        big = 100_000
        print(f"\n{'100k map':>10} {'seconds':>9} {'scheduler RSS before MB':>24} {'after MB':>9}")
        for label in ("plait", "dask"):
            with cluster() as c, distributed.Client(c) as client:
                before = scheduler_rss(client)
                start = time.perf_counter()
                if label == "plait":
                    run_plait(map_flow(big), c.scheduler_address)
                else:
                    plain_map(client, big)
                seconds = time.perf_counter() - start
                after = scheduler_rss(client)
            print(f"{label:>10} {seconds:>9.2f} {before / 1e6:>24.0f} {after / 1e6:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
