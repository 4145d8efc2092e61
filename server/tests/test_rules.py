"""The transition rules, one by one, and the policy as a whole."""

import pytest
from plait_server.data import rules
from plait_server.data.rules import Transition
from plait_server.data.states import state_type


def flow(old, new, restart=False):
    return Transition(rules.FLOW_RUN, old, state_type(old) if old else None, new, state_type(new), None, restart)


def task(old, new, flow_run="Running", restart=False):
    return Transition(
        rules.TASK_RUN, old, state_type(old) if old else None, new, state_type(new), state_type(flow_run), restart
    )


def refused_by(t):
    found = rules.check(t)
    return None if found is None else found[0].name


@pytest.mark.parametrize(
    ("transition", "rule"),
    [
        (flow("Scheduled", "Submitted"), None),
        (flow("Submitted", "Running"), None),
        (flow("Running", "Success"), None),
        (flow("Running", "Cancelling"), None),
        (flow("Cancelling", "Cancelled"), None),
        (flow("Cancelling", "Success"), None),
        (flow("Running", "Scheduled"), None),  # rescheduled (a lost process)
        (flow("Success", "Running"), "FinishedIsFinal"),
        (flow("Failed", "Scheduled"), "FinishedIsFinal"),
        (flow("Failed", "Scheduled", restart=True), None),
        (flow("Failed", "Running", restart=True), "FinishedIsFinal"),
        (flow("Running", "Scheduled", restart=True), "RestartOnlyFinishedRuns"),
        (flow("Cancelling", "Running"), "NoReturnFromCancelling"),
        (flow("Cancelling", "Scheduled"), "NoReturnFromCancelling"),
        (flow("Submitted", "Submitted"), "ClaimOnlyWaitingRuns"),
        (flow("Running", "Submitted"), "ClaimOnlyWaitingRuns"),
        (flow("Pending", "Submitted"), None),
        (task(None, "Pending"), None),
        (task(None, "Running"), None),
        (task(None, "Running", flow_run="Scheduled"), "TaskRunsStartInRunningFlowRuns"),
        (task("Pending", "Running", flow_run="Cancelling"), "TaskRunsStartInRunningFlowRuns"),
        (task("Running", "Success", flow_run="Cancelling"), None),
        (task("Running", "Success", flow_run="Success"), "TaskRunsFrozenInFinishedFlowRuns"),
        (task("Running", "Retrying"), None),
        (task("Retrying", "Running"), None),
        (task("Success", "Running"), "FinishedIsFinal"),
        (task("Looped", "Running"), None)
        if "Looped" in __import__("plait.states").states.STATES_BY_NAME
        else (task("Running", "Running"), None),
    ],
)
def test_each_rule(transition, rule):
    assert refused_by(transition) == rule


def test_every_rule_explains_itself_and_the_table_lists_them():
    table = rules.policy_table()
    assert [row["rule"] for row in table] == [r.name for r in rules.POLICY]
    for row in table:
        assert len(row["why"]) > 40, row


def test_state_types_come_from_the_core_states():
    assert state_type("TimedOut") == "FAILED"
    assert state_type("Cancelling") == "CANCELLING"
    assert state_type("Submitted") == "SUBMITTED"
    from plait_server.errors import BadInput

    for bad in ("State", "Finished", "Exploded"):
        with pytest.raises(BadInput):
            state_type(bad)


def test_a_rule_that_reads_more_than_the_transition_is_asked_every_time(monkeypatch):
    """Answers are remembered only while every rule is pure: a rule added without
    ``pure = True`` (one that reads the database, say) sees every transition."""
    asked = []

    class Counting(rules.Rule):
        def check(self, t):
            asked.append(t)
            return "no more" if len(asked) > 1 else None

    t = task("Pending", "Running")
    assert refused_by(t) is None and refused_by(t) is None  # the pure policy: remembered
    monkeypatch.setattr(rules, "POLICY", [*rules.POLICY, Counting()])
    assert refused_by(t) is None
    assert refused_by(t) == "Counting"
    assert len(asked) == 2
    monkeypatch.setattr(rules, "POLICY", [*rules.POLICY[:-1]])
    assert refused_by(t) is None  # back to the pure policy: its own answers again
    assert refused_by(flow("Success", "Running")) == "FinishedIsFinal"


def test_every_rule_of_the_policy_is_pure():
    # A rule that needs the database must say so (pure = False) and then costs every write a
    # check per item; today none does.
    assert all(rule.pure for rule in rules.POLICY)
