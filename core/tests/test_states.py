"""plait/states.py: what each state means, and the states a run produces."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from plait import Flow, task
from plait.states import (
    Cached,
    Cancelled,
    Failed,
    Mapped,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)

# (state, successful, failed, finished, skipped, pending)
MEANINGS = [
    (Pending(), False, False, False, False, True),
    (Scheduled(), False, False, False, False, True),
    (Retrying(), False, False, False, False, True),
    (Paused(), False, False, False, False, True),
    (Running(), False, False, False, False, False),
    (Success(), True, False, True, False, False),
    (Cached(), True, False, True, False, False),
    (Skipped(), True, False, True, True, False),
    (Failed(), False, True, True, False, False),
    (TriggerFailed(), False, True, True, False, False),
    (TimedOut(), False, True, True, False, False),
    (Cancelled(), False, True, True, False, False),
]


@pytest.mark.parametrize(("state", "successful", "failed", "finished", "skipped", "pending"), MEANINGS, ids=repr)
def test_state_meanings(state, successful, failed, finished, skipped, pending):
    assert state.is_successful() is successful
    assert state.is_failed() is failed
    assert state.is_finished() is finished
    assert state.is_skipped() is skipped
    assert state.is_pending() is pending


def test_mapped_state_follows_its_children():
    ok = Mapped("two", [Success(result=1), Success(result=2)])
    assert ok.is_successful() and not ok.is_failed() and ok.is_finished()
    assert ok.result == [1, 2]
    err = ValueError("x")
    bad = Mapped("one failed", [Success(result=1), Failed(result=err)])
    assert bad.is_failed() and not bad.is_successful()
    assert bad.result == [1, err]
    assert Mapped("all skipped", [Skipped(), Skipped()]).is_skipped()
    assert not Mapped("empty", []).is_skipped()
    assert Mapped("empty", []).is_successful()


def test_message_result_name_and_repr():
    state = Success("done", result=42)
    assert state.message == "done" and state.result == 42
    assert state.name == "Success"
    assert repr(state) == "<Success: 'done'>"
    assert repr(Pending()) == "<Pending>"
    assert state.datetime.tzinfo is UTC


def test_retrying_and_scheduled_carry_start_time():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    retrying = Retrying("again", start_time=start, run_count=2)
    assert retrying.start_time == start and retrying.run_count == 2
    assert retrying.is_scheduled() and retrying.is_retrying() and retrying.is_pending()


def test_to_dict_is_json():
    state = Mapped("m", [Success(result=1), Failed("bad", result=ValueError("x"), traceback="tb")])
    data = json.loads(json.dumps(state.to_dict()))
    assert data["type"] == "Mapped"
    assert data["map_states"][1] == {
        "type": "Failed",
        "message": "bad",
        "timestamp": state.map_states[1].timestamp,
        "result_type": "ValueError",
        "traceback": "tb",
    }


class ExplodingError(Exception):
    pass


@task
def explode_here():
    raise ExplodingError("kaboom")


def test_failed_state_keeps_the_exception_and_traceback(any_executor):
    with Flow("f") as flow:
        t = explode_here()
    state = flow.run(executor=any_executor)
    assert state.is_failed() and state.is_finished() and not state.is_successful()
    failed = state.result[t]
    assert type(failed) is Failed
    assert isinstance(failed.result, ExplodingError)
    assert str(failed.result) == "kaboom"
    assert "kaboom" in failed.message
    assert "explode_here" in failed.traceback
    assert "ExplodingError" in failed.traceback


def test_flow_run_state_result_maps_every_task():
    @task
    def one():
        return 1

    with Flow("f") as flow:
        a = one()
        b = one()
    state = flow.run()
    assert isinstance(state, State) and type(state) is Success
    assert set(state.result) == {a, b}
    assert all(type(s) is Success and s.result == 1 for s in state.result.values())
