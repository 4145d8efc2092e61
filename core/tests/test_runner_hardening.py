"""The engine under conditions users meet in production: failing flow handlers, generators
shared by several tasks, huge exception messages (issue 11).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from plait import Flow, task


@task
def produce():
    return {"rows": 3}


@task
def count(data):
    return data["rows"]


def test_a_flow_handler_that_raises_at_the_end_keeps_every_task_state(any_executor):
    def broken_alert(flow, old, new):
        if new.is_finished():
            raise ConnectionError("the alerting service is down")

    with Flow("etl", state_handlers=[broken_alert]) as flow:
        data = produce()
        rows = count(data)
    state = flow.run(executor=any_executor)
    assert state.is_failed()
    assert "broken_alert" in state.message and "the alerting service is down" in state.message
    assert "ConnectionError" in state.traceback
    assert set(state.result) == {data, rows}
    assert state.result[data].result == {"rows": 3}
    assert state.result[rows].result == 3


def test_a_flow_handler_that_raises_at_the_start_fails_the_run_before_any_task():
    def refuses(flow, old, new):
        if new.is_running():
            raise RuntimeError("not today")

    with Flow("etl", state_handlers=[refuses]) as flow:
        produce()
    state = flow.run()
    assert state.is_failed() and "not today" in state.message
    assert isinstance(state.result, RuntimeError)


@task
def squares(n):
    return (i * i for i in range(n))


@task
def total(xs):
    return sum(xs)


@task
def how_many(xs):
    return len(list(xs))


def test_a_generator_feeds_every_downstream_task(any_executor):
    with Flow("gen") as flow:
        sq = squares(4)
        s = total(sq)
        n = how_many(sq)
        doubled = total(sq)
    state = flow.run(executor=any_executor)
    assert state.is_successful(), state.message
    assert state.result[sq].result == [0, 1, 4, 9]  # materialized once, when the task run ended
    assert state.result[s].result == 14
    assert state.result[doubled].result == 14
    assert state.result[n].result == 4


@task
def broken_generator():
    yield 1
    raise ValueError("the source broke at item 2")


def test_a_generator_that_raises_fails_the_task_that_returned_it(executor):
    with Flow("gen") as flow:
        g = broken_generator()
        t = total(g)
    state = flow.run(executor=executor)
    assert state.result[g].is_failed()
    assert "the source broke at item 2" in state.result[g].message
    assert state.result[t].name == "TriggerFailed"


@task
def explode(size):
    raise ValueError("x" * size)


def test_a_huge_exception_message_is_logged_as_an_excerpt_and_kept_whole(caplog):
    size = 5_000_000
    with Flow("huge") as flow:
        e = explode(size)
    with caplog.at_level(logging.ERROR, logger="plait"):
        state = flow.run()
    final = state.result[e]
    assert len(final.message) > size  # the state has the full text
    assert len(str(final.result)) == size
    (line,) = [r.getMessage() for r in caplog.records if "Task 'explode' failed" in r.getMessage()]
    assert len(line) < 30_000
    assert "characters left out" in line


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_plait_run_with_a_50_mb_exception_message_prints_a_bounded_summary(tmp_path, executor):
    flow_file = tmp_path / "huge.py"
    flow_file.write_text(
        textwrap.dedent(
            """
            from plait import Flow, task

            @task
            def explode():
                raise ValueError("y" * 50_000_000)

            with Flow("huge") as flow:
                explode()
            """
        )
    )
    plait = Path(sys.executable).parent / "plait"
    proc = subprocess.run(
        [str(plait), "run", str(flow_file), "--executor", executor],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "Failed" in proc.stdout and "characters left out" in proc.stdout
    assert len(proc.stdout) < 50_000
    assert len(proc.stderr) < 100_000


@task
def plus_one(x):
    return x + 1


@pytest.mark.parametrize("executor_cls", ["threads", "processes"])
def test_a_big_map_is_handed_to_the_executor_in_a_bounded_window(executor_cls):
    from plait.engine.executors import ProcessExecutor, ThreadExecutor

    base = ThreadExecutor if executor_cls == "threads" else ProcessExecutor

    class Counting(base):  # counts the task runs submitted and not yet finished
        def __init__(self):
            super().__init__(max_workers=2)
            self.outstanding = 0
            self.most = 0
            self.lock = threading.Lock()

        def submit(self, fn, /, *args, **kwargs):
            future = super().submit(fn, *args, **kwargs)
            with self.lock:
                self.outstanding += 1
                self.most = max(self.most, self.outstanding)
            future.add_done_callback(self._done)
            return future

        def _done(self, future):
            with self.lock:
                self.outstanding -= 1

    executor = Counting()
    with Flow("window") as flow:
        out = plus_one.map(list(range(600)))
    state = flow.run(executor=executor)
    assert state.result[out].result == list(range(1, 601))
    assert executor.max_inflight == 8
    assert executor.most <= 8 + 1  # + 1: a callback may not have run yet when the next submit comes
