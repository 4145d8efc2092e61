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
    assert repr(state) == '<Success: "done">'  # Prefect 1's form
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


# --- Prefect 1's state API ---------------------------------------------------------------------


def test_paused_is_a_scheduled_state_that_waits_for_a_resume_unless_given_a_start_time():
    from plait.states import Scheduled as _Scheduled

    assert issubclass(Paused, _Scheduled) and Paused().is_scheduled() and Paused().is_pending()
    assert Paused().start_time is None
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert Paused("later", start_time=when).start_time == when


def test_scheduled_and_retrying_start_now_when_no_time_is_given():
    before = datetime.now(UTC)
    for state in (Scheduled(), Retrying(), Scheduled(start_time=None)):
        assert before <= state.start_time <= datetime.now(UTC)


def test_retrying_and_looped_take_their_counts_from_the_running_task():
    import plait
    from plait.states import Looped

    assert Retrying().run_count == 1 and Looped().loop_count == 1
    with plait.context(task_run_count=4, task_loop_count=3):
        assert Retrying().run_count == 4
        assert Looped().loop_count == 3
    assert Retrying(run_count=2).run_count == 2


def test_states_are_equal_by_kind_and_result_whatever_their_message():
    assert Success("one", 1) == Success("another", 1)
    assert Success("same", 1) != Success("same", 2)
    assert Success(result=1) != Failed(result=1)


def test_a_mapped_state_can_be_given_its_result_and_its_number_of_children():
    assert Mapped("m", result=[1, 2]).result == [1, 2]
    assert Mapped(map_states=[Success(result=1), Success(result=2)]).n_map_states == 2
    assert Mapped(n_map_states=4).n_map_states == 4


def test_children_and_parents_walk_the_state_hierarchy():
    from plait.states import Finished, Skipped, State, TimedOut, TriggerFailed, ValidationFailed

    assert set(Success.children()) == {Cached, Mapped, Skipped}
    assert Success.children(include_self=True, names_only=True)[0] == "Success"
    assert TriggerFailed.children() == []
    assert set(TimedOut.parents()) == {Failed, Finished, State}
    assert State.parents(include_self=True) == [State]
    assert issubclass(ValidationFailed, Failed) and ValidationFailed().is_failed()
    # the same-named classes made for remote and read-only states are not the hierarchy's
    from plait.states import read_only

    read_only(Success())
    assert Success not in Success.children() and len(Success.children()) == 3
