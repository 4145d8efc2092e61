"""A Slack that hangs or answers 429: a run's end and the process's exit wait at most ``timeout``
in total, with alerts and the log handler (``log_level``) both configured.

The waits are counted, not timed: a real process runs a real flow against a real FakeSlack that
holds every request (or answers 429); a spy on the senders' wait records how long each flush
was allowed to wait and advances the deadlines' clock by that much, as if the endpoint used all
of it. The sum of the allowances is the most the run's end (or the exit) can take.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading

import pytest
from plait_slack import SlackLogHandler
from plait_slack.testing import FakeSlack

from plait.logging import PluginHandler

SCRIPT = """
import sys
from plait import Flow, alerting, task

clock = [1000.0]
alerting._monotonic = lambda: clock[0]
real_wait = alerting.BackgroundSender._wait


def spy(self, timeout):
    sys.stderr.write(f"GRANTED {self.name} {timeout}\\n")
    sys.stderr.flush()
    if timeout:
        clock[0] += timeout  # the endpoint never answers: the whole allowance is spent
    return real_wait(self, 0)


alerting.BackgroundSender._wait = spy


@task
def boom():
    raise ValueError("boom")


with Flow("etl") as flow:
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
@pytest.mark.parametrize("log_level", [None, "ERROR"])
def test_a_bad_slack_holds_the_run_end_and_the_exit_at_most_timeout(tmp_path, fake_slack: FakeSlack, answer, log_level):
    if answer == "hangs":
        fake_slack.hold()
    else:
        fake_slack.fail_next(429, "rate limited", {"Retry-After": "1"}, count=1000)
    config = tmp_path / "plait.toml"
    config.write_text(
        f'[plugins.slack]\nwebhook_url = "{fake_slack.webhook_url}"\ntimeout = 3\n'
        + (f'log_level = "{log_level}"\n' if log_level else "")
    )
    script = tmp_path / "flow.py"
    script.write_text(textwrap.dedent(SCRIPT))
    try:
        proc = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "PLAIT_CONFIG": str(config), "PLAIT_LOAD_PLUGINS": "slack"},
        )
    finally:
        fake_slack.release()
    assert proc.returncode == 0, proc.stderr
    run_end, at_exit = _allowances(proc.stderr)
    assert run_end, proc.stderr  # the run's end did wait for its alert
    assert sum(run_end) == pytest.approx(3.0)  # one timeout in total, however many flushes
    assert sum(at_exit) <= 3.0 + 1e-9, proc.stderr
    if log_level:
        assert len(run_end) >= 2 and at_exit  # alerts and log records both flushed, sharing the time


def test_a_record_logged_while_logging_shutdown_closes_the_handler_does_not_wait(fake_slack: FakeSlack):
    """logging.shutdown holds a handler's lock while it flushes and closes it; the Slack handler's
    sender thread, logging its own failure meanwhile, must not wait for that lock (it did, so
    exit took the whole timeout even when the request had failed at once)."""
    plait_logger = logging.getLogger("plait")
    wrapped = PluginHandler("slack", SlackLogHandler(level="ERROR", webhook_url=fake_slack.webhook_url))
    plait_logger.addHandler(wrapped)
    done = threading.Event()

    def log_a_failure():
        logging.getLogger("plait.plugins.slack").error("plait-slack: failed sending log records")
        done.set()

    wrapped.acquire()  # as logging.shutdown does around flush() and close()
    try:
        thread = threading.Thread(target=log_a_failure, daemon=True)
        thread.start()
        assert done.wait(30), "the record waited for the lock logging.shutdown holds"
    finally:
        wrapped.release()
        plait_logger.removeHandler(wrapped)
        wrapped.close()
