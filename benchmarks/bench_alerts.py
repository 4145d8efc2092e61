"""What plait-slack and plait-http cost per task: a 10,000-task map on the local executor.

Run it with ``.venv/bin/python benchmarks/bench_alerts.py`` (``--n``, ``--repeat``) once the two
plugins are installed (``make test`` installs them). It prints one table and asserts nothing.
Cases, each with only the named plugin registered:

- no plugin:               the baseline;
- slack, unconfigured:     plait-slack installed, no ``[plugins.slack]`` (its task hook returns at once);
- slack, configured:       ``[plugins.slack]`` with a webhook on a local FakeSlack, all tasks succeed
                           (the hook checks each state against ``states`` and moves on);
- slack, every task fails: the same, with the mapped task failing: every failure is recorded
                           and one summary is sent at the run's end;
- http, configured:        ``[plugins.http.webhook]`` on a local WebhookReceiver, all tasks succeed.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import plait
from plait import Flow, task
from plait.config import reset_config
from plait.testing import using_plugins


@task
def numbers(n):
    return list(range(n))


@task
def inc(x):
    return x + 1


@task
def fail(x):
    raise ValueError(x)


@task
def total(xs):
    return sum(xs)


def build(n: int, mapped) -> Flow:
    with Flow("bench-alerts") as flow:
        total(mapped.map(numbers(n)))
    return flow


def best_of(flow: Flow, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        flow.run(executor="local")
        times.append(time.perf_counter() - start)
    return min(times)


def configure(text: str) -> None:
    path = Path(tempfile.mkdtemp()) / "config.toml"
    path.write_text(text)
    os.environ["PLAIT_CONFIG"] = str(path)
    reset_config()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="mapped children (default 10,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the best is kept (default 5)")
    args = parser.parse_args()

    from plait_http import plugin as http_plugin
    from plait_http.testing import WebhookReceiver
    from plait_slack import plugin as slack_plugin
    from plait_slack.testing import FakeSlack

    logging.getLogger("plait").setLevel(logging.CRITICAL)
    ok_flow = build(args.n, inc)
    failing_flow = build(args.n, fail)
    tasks = args.n + 3

    rows = []
    with FakeSlack() as slack, WebhookReceiver() as receiver:
        os.environ["BENCH_SLACK_WEBHOOK"] = slack.webhook_url
        os.environ["BENCH_ALERT_URL"] = receiver.url
        configure("")
        with using_plugins(strict=False):
            best_of(ok_flow, 1)
            base = best_of(ok_flow, args.repeat)
            failing_base = best_of(failing_flow, args.repeat)
        rows.append(("no plugin", base, base))
        with using_plugins(slack_plugin, strict=False):
            rows.append(("slack, unconfigured", best_of(ok_flow, args.repeat), base))
        configure('[plugins.slack]\nwebhook_url_secret = "BENCH_SLACK_WEBHOOK"\nrate_limit = 0\n')
        with using_plugins(slack_plugin, strict=False):
            rows.append(("slack, configured", best_of(ok_flow, args.repeat), base))
            rows.append(("slack, every task fails", best_of(failing_flow, args.repeat), failing_base))
        configure('[plugins.http.webhook]\nurl_secret = "BENCH_ALERT_URL"\nrate_limit = 0\n')
        with using_plugins(http_plugin, strict=False):
            rows.append(("http, configured", best_of(ok_flow, args.repeat), base))
        sent = len(slack.requests)
    reset_config()

    print(
        f"Plait {plait.__version__} alert plugins benchmark on {platform.python_implementation()} "
        f"{sys.version.split()[0]}"
    )
    print(f"{platform.machine()}, {platform.system()} {platform.release()}; map of {args.n:,} tasks on local,")
    print(f"{tasks:,} task runs; best of {args.repeat} runs; Slack messages sent in all: {sent}")
    print()
    header = f"{'case':<24} {'run (ms)':>10} {'us/task':>9} {'extra us/task':>14}"
    print(header)
    print("-" * len(header))
    for name, seconds, reference in rows:
        print(
            f"{name:<24} {seconds * 1e3:>10.1f} {seconds / tasks * 1e6:>9.2f} "
            f"{(seconds - reference) / tasks * 1e6:>14.2f}"
        )


if __name__ == "__main__":
    main()
