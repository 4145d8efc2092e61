"""plait.alerting: the destination-independent half of alert plugins (plait-slack, plait-http).

A real ``Notifier`` subclass records what it would deliver; flows run for real.
"""

from __future__ import annotations

import threading

import pytest

from plait import Flow, task
from plait.alerting import BackgroundSender, Notifier, RateLimiter, RunAlerts, StateFilter, mask_text
from plait.secrets import register_secret
from plait.states import Failed, Retrying, Success, TimedOut, TriggerFailed


class Recording(Notifier):
    plugin = "plait-test-alerts"
    logger_name = "plait.plugins.test-alerts"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.delivered = []

    def deliver(self, event):
        self.delivered.append(event)


@task
def boom(x):
    raise ValueError(f"bad item {x}")


@task
def fine():
    return 1


def run_with(notifier, flow):
    flow.state_handlers.append(notifier)
    for t in flow:
        t.state_handlers.append(notifier)
    return flow.run()


def test_many_failing_children_give_one_summary_per_flow_run():
    notifier = Recording()
    with Flow("storm") as flow:
        boom.map(list(range(500)))
    state = run_with(notifier, flow)
    assert state.is_failed()
    summaries = [e for e in notifier.delivered if e.kind == "summary"]
    assert len(notifier.delivered) == 1 and len(summaries) == 1
    (counted,) = summaries[0].tasks
    assert (counted.task, counted.state, counted.count) == ("boom", "Failed", 500)
    assert len(counted.examples) == 5  # a few examples, not 500


def test_a_notifier_never_changes_the_run_even_when_delivery_fails():
    class Broken(Recording):
        def deliver(self, event):
            raise ConnectionError("endpoint down")

    with Flow("ok") as flow:
        fine()
    assert run_with(Broken(only_states=["Success"]), flow).is_successful()


def test_retrying_is_not_a_failure():
    filt = StateFilter(None, None, "test", ValueError)
    assert filt.matches(Failed()) and filt.matches(TimedOut()) and filt.matches(TriggerFailed())
    assert not filt.matches(Retrying()) and not filt.matches(Success())


def test_state_filter_names_and_ignores():
    filt = StateFilter(["Failed"], ["TriggerFailed"], "test", ValueError)
    assert filt.matches(Failed()) and not filt.matches(TriggerFailed())
    with pytest.raises(ValueError, match="Faild"):
        StateFilter(["Faild"], None, "test", ValueError)


def test_rate_limiter_counts_what_it_refused():
    now = [0.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0])
    assert [limiter.allow() for _ in range(4)] == [True, True, False, False]
    assert limiter.take_suppressed() == 2 and limiter.take_suppressed() == 0
    now[0] = 61.0  # the window moved on
    assert limiter.allow()


def test_run_alerts_are_kept_per_run_and_forgotten_after_pop():
    runs = RunAlerts()
    assert runs.record("r1", "t", "t[0]", Failed("x")) is True
    assert runs.record("r1", "t", "t[1]", Failed("y")) is False
    runs.record("r2", "t", "t", Failed("z"))
    (entry,) = runs.pop("r1")
    assert entry.count == 2 and [e[0] for e in entry.examples] == ["t[0]", "t[1]"]
    assert runs.pop("r1") == [] and len(runs.pop("r2")) == 1


def test_background_sender_delivers_in_order_and_drops_when_full():
    release = threading.Event()
    got = []

    def deliver(item):
        release.wait()
        got.append(item)

    sender = BackgroundSender(deliver, "test-sender", queue_size=2)
    results = [sender.submit(i) for i in range(5)]
    # the thread holds one item, two wait in the queue; the rest are dropped, never waited for
    assert results.count(False) >= 2 and sender.dropped == results.count(False)
    release.set()
    assert sender.flush(timeout=10)
    assert got == sorted(got) and len(got) == results.count(True)


def test_mask_text_masks_given_and_registered_secrets():
    register_secret("registered-secret-value")
    text = mask_text("token abcd1234 and registered-secret-value", ["abcd1234"])
    assert "abcd1234" not in text and "registered-secret-value" not in text


def test_live_notifiers_of_one_plugin_leave_the_others_alone():
    from plait.alerting import live_notifiers

    class Other(Recording):
        plugin = "plait-other-alerts"

    mine, theirs = Recording(), Other()
    assert mine in live_notifiers(Recording) and theirs in live_notifiers(Other)
    assert mine not in live_notifiers(Other)
