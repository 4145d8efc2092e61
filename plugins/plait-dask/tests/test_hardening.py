"""The Dask executor under faults (issue 11; issue 12 item 13), on the real shared LocalCluster:
a task run that cannot be pickled fails alone and never raises out of ``flow.run()``; values a
task registers for masking on a worker are masked in the driver; a timed-out task is stopped.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from plait_dask import DaskExecutor

import plait
from plait import Flow, task
from plait.secrets import MASK, mask, register_secret
from plait.states import TimedOut


@task
def takes(value):
    return "never runs"


@task
def double(x):
    return 2 * x


@task
def after(x):
    return x


def test_a_task_run_that_cannot_be_pickled_fails_alone(address):
    with Flow("unpicklable") as flow:
        bad = takes(threading.Lock())
        good = double.map([1, 2, 3])
        downstream = after(bad)
    state = flow.run(executor=DaskExecutor(address))  # returns: never raises
    failed = state.result[bad]
    assert failed.is_failed()
    assert "it cannot be pickled to send it to the Dask cluster" in failed.message
    assert "lock" in failed.message
    assert state.result[good].result == [2, 4, 6]
    assert state.result[downstream].name == "TriggerFailed"


SECRET = "d4sk-W0rker-0nly-S3cret"


@task
def learns_a_secret():
    register_secret(SECRET)  # as a plugin does with a password it read on the worker
    plait.context.logger.warning("logged in with %s", SECRET)
    return SECRET


@task
def fails_with(value):
    raise ConnectionError(f"refused {value}")


def test_secrets_registered_on_a_worker_are_masked_in_the_driver(address, monkeypatch, caplog):
    from plait import secrets

    monkeypatch.setattr(secrets, "_values", list(secrets._values))
    monkeypatch.setattr(secrets, "_registered", list(secrets._registered))
    assert mask(SECRET) == SECRET  # the driver does not know it
    with Flow("worker-secret") as flow:
        value = learns_a_secret()
        failing = fails_with(value)
    with caplog.at_level(logging.WARNING, logger="plait"):
        state = flow.run(executor=DaskExecutor(address))
    assert mask(f"[{SECRET}]") == f"[{MASK}]"  # came back with the batch
    assert state.result[value].result == SECRET  # the value itself is still the result
    failed = state.result[failing]
    assert SECRET not in failed.message and SECRET not in (failed.traceback or "")
    forwarded = [r.getMessage() for r in caplog.records if "logged in with" in r.getMessage()]
    assert forwarded and all(SECRET not in m for m in forwarded)


@task(timeout=0.5)
def hangs(out):
    Path(out).write_text(str(os.getpid()))
    threading.Event().wait(300)
    Path(out).write_text("finished")


def test_a_timed_out_task_on_dask_is_stopped(address, tmp_path):
    out = tmp_path / "pid"
    with Flow("timeout") as flow:
        h = hangs(str(out))
    state = flow.run(executor=DaskExecutor(address))
    final = state.result[h]
    assert type(final) is TimedOut
    assert "its process was killed" in final.message
    pid = int(out.read_text())
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        assert stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X"), "the timed-out run is still running"
    except ProcessLookupError:
        pass
