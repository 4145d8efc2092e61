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

import logging
import os
import tempfile
from pathlib import Path

from _common import best_of, inc, machine, map_arguments, map_flow, print_header

from plait import Flow
from plait.config import reset_config
from plait.testing import using_plugins


def fail(x):
    raise ValueError(x)


def build(n: int, mapped) -> Flow:
    return map_flow(n, mapped, name="bench-alerts")


def best_run(flow: Flow, repeat: int) -> float:
    return best_of(repeat, lambda: flow.run(executor="local"))


def configure(text: str) -> None:
    path = Path(tempfile.mkdtemp()) / "config.toml"
    path.write_text(text)
    os.environ["PLAIT_CONFIG"] = str(path)
    reset_config()


def main() -> None:
    args = map_arguments(__doc__.splitlines()[0])

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
            best_run(ok_flow, 1)
            base = best_run(ok_flow, args.repeat)
            failing_base = best_run(failing_flow, args.repeat)
        rows.append(("no plugin", base, base))
        with using_plugins(slack_plugin, strict=False):
            rows.append(("slack, unconfigured", best_run(ok_flow, args.repeat), base))
        configure('[plugins.slack]\nwebhook_url_secret = "BENCH_SLACK_WEBHOOK"\nrate_limit = 0\n')
        with using_plugins(slack_plugin, strict=False):
            rows.append(("slack, configured", best_run(ok_flow, args.repeat), base))
            rows.append(("slack, every task fails", best_run(failing_flow, args.repeat), failing_base))
        configure('[plugins.http.webhook]\nurl_secret = "BENCH_ALERT_URL"\nrate_limit = 0\n')
        with using_plugins(http_plugin, strict=False):
            rows.append(("http, configured", best_run(ok_flow, args.repeat), base))
        sent = len(slack.requests)
    reset_config()

    print(machine())
    print(f"alert plugins benchmark: map of {args.n:,} tasks on local, {tasks:,} task runs;")
    print(f"best of {args.repeat} runs; Slack messages sent in all: {sent}")
    print()
    header = f"{'case':<24} {'run (ms)':>10} {'us/task':>9} {'extra us/task':>14}"
    print_header(header)
    for name, seconds, reference in rows:
        print(
            f"{name:<24} {seconds * 1e3:>10.1f} {seconds / tasks * 1e6:>9.2f} "
            f"{(seconds - reference) / tasks * 1e6:>14.2f}"
        )


if __name__ == "__main__":
    main()
