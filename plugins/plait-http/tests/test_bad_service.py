"""A webhook receiver that hangs or answers 429: a run's end and the process's exit wait at most
``timeout`` in total, with a configured (global) notifier and a per-flow one both sending.

The waits are counted, not timed: a real process runs a real flow against a real receiver that
holds every request (or answers 429); a spy on the senders' wait records how long each flush
was allowed to wait and advances the deadlines' clock by that much, as if the receiver used all
of it. The sum of the allowances is the most the run's end (or the exit) can take.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from plait_http.testing import WebhookReceiver

SCRIPT = """
import sys
from plait import Flow, alerting, task
from plait_http import webhook_notifier

clock = [1000.0]
alerting._monotonic = lambda: clock[0]
real_wait = alerting.BackgroundSender._wait


def spy(self, timeout):
    sys.stderr.write(f"GRANTED {self.name} {timeout}\\n")
    sys.stderr.flush()
    if timeout:
        clock[0] += timeout  # the receiver never answers: the whole allowance is spent
    return real_wait(self, 0)


alerting.BackgroundSender._wait = spy


@task
def boom():
    raise ValueError("boom")


own = webhook_notifier(url=sys.argv[1], timeout=3, retries=0)
with Flow("etl", state_handlers=[own]) as flow:
    boom()
assert flow.run().is_failed()
sys.stderr.write("RUN-END\\n")
sys.stderr.flush()
"""


def _allowances(stderr: str) -> tuple[list[float], list[float]]:
    run_end, at_exit, seen_end = [], [], False
    for line in stderr.splitlines():
        if line == "RUN-END":
            seen_end = True
        elif line.startswith("GRANTED "):
            (at_exit if seen_end else run_end).append(float(line.split()[-1]))
    return run_end, at_exit


@pytest.mark.parametrize("answer", ["hangs", "429"])
def test_a_bad_receiver_holds_the_run_end_and_the_exit_at_most_timeout(
    tmp_path, webhook_receiver: WebhookReceiver, answer
):
    if answer == "hangs":
        webhook_receiver.hold()
    else:
        webhook_receiver.fail_next(429, "slow down", {"Retry-After": "1"}, count=1000)
    config = tmp_path / "plait.toml"
    config.write_text(f'[plugins.http.webhook]\nurl = "{webhook_receiver.url}/global"\ntimeout = 3\n')
    script = tmp_path / "flow.py"
    script.write_text(textwrap.dedent(SCRIPT))
    try:
        proc = subprocess.run(
            [sys.executable, str(script), f"{webhook_receiver.url}/own"],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "PLAIT_CONFIG": str(config), "PLAIT_LOAD_PLUGINS": "http"},
        )
    finally:
        webhook_receiver.release()
    assert proc.returncode == 0, proc.stderr
    run_end, at_exit = _allowances(proc.stderr)
    assert len(run_end) >= 2, proc.stderr  # both notifiers flushed at the run's end...
    assert sum(run_end) == pytest.approx(3.0)  # ...within one timeout in total
    assert sum(at_exit) <= 3.0 + 1e-9, proc.stderr
