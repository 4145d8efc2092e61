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


def run_with(notifier, flow, executor=None):
    flow.state_handlers.append(notifier)
    for t in flow:
        t.state_handlers.append(notifier)
    return flow.run(executor=executor)


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


# --- GlobalNotifier: the plumbing a notifier plugin's hookimpls delegate to ----------------------------


class Pager(Recording):
    """A plugin's notifier class: a real Notifier that records what it would deliver."""

    plugin = "plait-pager"
    logger_name = "plait.plugins.pager"


@pytest.fixture
def configure(plait_config):
    return plait_config


@pytest.fixture
def pager(request):
    """A ``GlobalNotifier`` for a ``[plugins.pager]`` section, its hooks installed as a plugin,
    with the notifiers it built in ``built`` and its end-of-run calls counted in ``ended``."""
    from plait import hookimpl
    from plait.alerting import GlobalNotifier
    from plait.testing import using_plugins

    built: list[Pager] = []
    ended: list[int] = []

    def factory(config):
        section = dict(config.plugin_section("pager"))
        if section.pop("broken", False):
            raise ValueError("[plugins.pager] has a bad key: pager-key-123456")
        section.pop("url", None)
        section.pop("alerts", None)
        notifier = Pager(**section)
        built.append(notifier)
        return notifier

    alerts = GlobalNotifier(
        "plait-pager",
        "plugins.pager",
        section=lambda config: config.plugin_section("pager"),
        factory=factory,
        kind=Pager,
        has_destination=lambda section: bool(section.get("url")),
        on_run_end=lambda: ended.append(1),
        unconfigured="plait-pager: [plugins.pager] has no url; no alert is sent",
    )

    class Plugin:
        @hookimpl
        def plait_task_state_changed(self, task, old_state, new_state):
            alerts.task_state_changed(task, old_state, new_state)

        @hookimpl
        def plait_flow_state_changed(self, flow, old_state, new_state, context):
            alerts.flow_state_changed(flow, old_state, new_state, context)

    alerts.built, alerts.ended = built, ended
    with using_plugins(Plugin(), strict=True):
        yield alerts


def failing_with(*handlers):
    """A flow whose one task fails, with ``handlers`` as the task's state handlers."""

    @task(name="boom", state_handlers=list(handlers))
    def failing():
        raise ValueError("bad item")

    with Flow("handled") as flow:
        failing()
    return flow


def failing_flow(name="nightly"):
    with Flow(name) as flow:
        boom.map([1, 2, 3])
    return flow


def test_global_notifier_alerts_for_every_flow_once_configured(configure, pager):
    configure('[plugins.pager]\nurl = "https://pager.example.com"\n')
    assert failing_flow().run().is_failed()
    (notifier,) = pager.built
    assert notifier.flush(5)
    (summary,) = notifier.delivered
    assert (summary.kind, summary.flow, summary.state) == ("summary", "nightly", "Failed")
    assert [(t.task, t.count) for t in summary.tasks] == [("boom", 3)]
    assert pager.ended == [1]
    # the notifier is made once per config, and again when the config changes
    assert failing_flow().run().is_failed()
    assert len(pager.built) == 1 and pager.notifier() is notifier
    configure('[plugins.pager]\nurl = "https://pager.example.com"\nonly_states = ["Success"]\n')
    assert pager.notifier() is not notifier and len(pager.built) == 2


def test_global_notifier_without_a_destination_sends_nothing(configure, pager, caplog):
    configure("[plugins.other]\nx = 1\n")
    assert failing_flow().run().is_failed()
    assert pager.built == [] and pager.notifier() is None and not pager.alerts_on()
    assert pager.ended == [1]  # the end-of-run callback runs all the same
    caplog.set_level("WARNING", logger="plait.plugins.pager")
    flow = failing_with(pager.state_handler)
    flow.run()
    flow.run()
    assert caplog.text.count("plait-pager: [plugins.pager] has no url; no alert is sent") == 1


def test_global_notifier_with_alerts_false_keeps_the_notifier_for_the_bare_handler(configure, pager):
    configure('[plugins.pager]\nurl = "https://pager.example.com"\nalerts = false\n')
    flow = failing_with(pager.state_handler)
    flow.state_handlers.append(pager.state_handler)
    assert flow.run().is_failed()
    assert not pager.alerts_on()
    (notifier,) = pager.built
    assert notifier.flush(5)
    (summary,) = notifier.delivered  # from the bare handler, not from the hooks: exactly one
    assert summary.kind == "summary" and [t.task for t in summary.tasks] == ["boom"]


def test_global_notifier_finishes_runs_of_its_task_only_notifiers(configure, pager):
    configure("")
    mine = Pager()
    assert failing_with(mine).run().is_failed()
    assert mine.flush(5)
    (summary,) = mine.delivered  # the flow hook told it the run was over
    assert summary.kind == "summary" and summary.flow == "handled"


def test_global_notifier_never_raises_and_logs_naming_the_plugin_with_secrets_masked(configure, pager, caplog):
    caplog.set_level("ERROR", logger="plait.plugins.pager")
    register_secret("pager-key-123456")
    configure('[plugins.pager]\nurl = "https://pager.example.com"\nbroken = true\n')
    assert failing_flow().run().is_failed()  # strict hooks: any exception would have re-raised
    assert "plait-pager: [plugins.pager] is not usable, no alerts will be sent" in caplog.text
    assert "pager-key-123456" not in caplog.text

    class Exploding(Pager):
        def task_changed(self, task, old_state, new_state):
            raise RuntimeError("pager-key-123456 rejected")

        def flow_changed(self, flow, old_state, new_state):
            raise RuntimeError("pager-key-123456 rejected")

    pager.factory = lambda config: Exploding()
    configure('[plugins.pager]\nurl = "https://pager.example.com"\n')
    with Flow("exploding") as flow:
        fine()
    assert flow.run().is_successful()
    assert "plait-pager: failed handling a state change of flow 'exploding'" in caplog.text
    assert "pager-key-123456" not in caplog.text


def test_notifier_settings_renames_keys_and_resolves_secrets(monkeypatch):
    from plait.alerting import notifier_settings

    monkeypatch.setenv("PAGER_TOKEN", "pager-token-from-secret")
    section = {"states": ["Failed"], "token_secret": "PAGER_TOKEN", "log_level": "ERROR"}
    settings = notifier_settings(section, {"states": "only_states", "token": "token"}, ["token"])
    assert settings == {"only_states": ["Failed"], "token": "pager-token-from-secret"}
    assert mask_text("sent with pager-token-from-secret", ()) == "sent with ********"  # registered
    given = notifier_settings({"token": "given-directly", "token_secret": "PAGER_TOKEN"}, {"token": "token"}, ["token"])
    assert given == {"token": "given-directly"}


def test_secret_masking_filter_masks_remembered_values_in_a_library_logger(caplog):
    import logging

    from plait.alerting import SecretMaskingFilter

    masking = SecretMaskingFilter()
    masking.remember("https://hooks.example.com/T0/B0/very-secret-path", None, "ab")
    library = masking.install(logging.getLogger("plait-test.library"))
    assert masking.install(library) is library and library.filters.count(masking) == 1
    caplog.set_level("DEBUG", logger="plait-test.library")
    library.debug("POST %s failed", "https://hooks.example.com/T0/B0/very-secret-path")
    library.debug("nothing secret in %s", "here")
    assert "very-secret-path" not in caplog.text and "POST ******** failed" in caplog.text
    assert "nothing secret in here" in caplog.text
    library.removeFilter(masking)


def test_notifier_settings_name_a_wrong_secret_key_but_never_its_value(monkeypatch, tmp_path):
    from plait.alerting import notifier_settings
    from plait.errors import ConfigError

    monkeypatch.setenv("PLAIT_CONFIG", str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("")
    section = {"token_secret": "pager-token-pasted-by-mistake"}
    with pytest.raises(ConfigError) as info:
        notifier_settings(section, {"token": "token"}, ["token"], where="[plugins.pager]")
    assert "[plugins.pager] token_secret names no secret that is set" in str(info.value)
    assert "pager-token-pasted-by-mistake" not in str(info.value)
    with pytest.raises(ValueError, match="token_secret must be the name of a secret"):
        notifier_settings({"token_secret": 42}, {"token": "token"}, ["token"], error=ValueError)


def test_an_event_is_masked_just_before_delivery():
    notifier = Recording()
    late = "l4te-S3cret-in-an-event"
    with Flow("late") as flow:
        boom(late)
    run_with(notifier, flow)  # the state messages were made before the secret was known
    register_secret(late)
    # a hand-made event with the secret, delivered now
    from plait.alerting import AlertEvent, TaskCount

    event = AlertEvent(
        "summary",
        "late",
        "Failed",
        message=f"saw {late}",
        tasks=[TaskCount("boom", "Failed", 1, [("boom", f"bad item {late}")])],
    )
    notifier.enqueue(event)
    assert notifier.flush(5)
    delivered = notifier.delivered[-1]
    assert late not in repr(delivered) and delivered.message == "saw ********"
    assert event.message == f"saw {late}"  # the caller's event is left as it was


def test_a_failure_followed_by_a_retry_is_not_alerted():
    """State handlers see the failure a task goes through before each retry (Running -> Failed,
    Failed -> Retrying); a notifier used as one does not count it as the run's failure."""
    notifier = Recording()
    attempts = []

    @task(max_retries=2, retry_delay=0)
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return 1

    @task(max_retries=1, retry_delay=0)
    def hopeless():
        raise ValueError("never")

    with Flow("retries") as flow:
        flaky()
        hopeless()
    state = run_with(notifier, flow)
    assert state.is_failed() and len(attempts) == 3
    [summary] = notifier.delivered
    assert [(t.task, t.state, t.count) for t in summary.tasks] == [("hopeless", "Failed", 1)]


def test_a_retried_child_does_not_erase_another_childs_failure():
    """Only the failure a retry follows is left out: child 0's final failure stays in the summary
    when child 1 of the same mapped task fails, then retries and succeeds."""
    notifier = Recording()
    attempts = []

    @task(max_retries=1, retry_delay=0, retry_on=ValueError)
    def child(i):
        attempts.append(i)
        if i == 0:
            raise TypeError("never retried")
        if attempts.count(1) == 1:
            raise ValueError("retried")
        return i

    with Flow("children") as flow:
        child.map([0, 1])
    state = run_with(notifier, flow)
    assert state.is_failed() and attempts.count(1) == 2
    [summary] = notifier.delivered
    assert [(t.task, t.state, t.count) for t in summary.tasks] == [("child", "Failed", 1)]


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_an_immediate_notifier_never_sends_the_failure_a_retry_follows(executor):
    """``immediate=True`` sends the first change of each (task, state) at once: a failure that
    a retry follows must not be sent at all (it cannot be recalled once sent)."""
    notifier = Recording(immediate=True)

    @task(max_retries=1, retry_delay=0)
    def flaky():
        import plait

        if plait.context.get("task_run_count") == 1:
            raise ValueError("first attempt")
        return 1

    @task
    def hopeless():
        raise ValueError("no retries")

    with Flow("retried") as flow:
        flaky()
        hopeless()
    state = run_with(notifier, flow, executor)
    assert state.is_failed() and state.result[flow.get_tasks(name="flaky")[0]].is_successful()
    assert [(e.task, e.state) for e in notifier.delivered if e.kind == "task"] == [("hopeless", "Failed")]
    [summary] = [e for e in notifier.delivered if e.kind == "summary"]
    assert summary.tasks == []  # single changes went out at once; flaky's first attempt is not one
