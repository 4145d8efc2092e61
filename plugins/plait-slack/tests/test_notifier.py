"""slack_notifier as a per-object state handler, with real flows and the FakeSlack server."""

from __future__ import annotations

import logging
import re

import pytest
from plait_slack import SlackConfigError, slack_notifier
from plait_slack.testing import FakeSlack

from plait import Flow, task
from plait.states import Failed, TriggerFailed

TEMPLATE = "{flow}|{task}|{state}|{old_state}|{message}|{run_id}|{url}|{tasks}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failing_flow(alert, name: str = "etl", n: int | None = None, on_tasks: bool = True) -> Flow:
    handlers = [alert] if on_tasks else []

    @task(state_handlers=handlers)
    def boom(x: int = 0) -> int:
        raise ValueError(f"boom {x}")

    @task(state_handlers=handlers)
    def after(x: int) -> int:
        return x

    with Flow(name, state_handlers=[alert]) as flow:
        if n is None:
            after(boom())
        else:
            boom.map(list(range(n)))
    return flow


def test_failed_run_gives_one_message_with_every_field(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, template=TEMPLATE, ui_url="https://plait.example.com")

    state = failing_flow(alert).run(context={"flow_run_id": "run-1"})

    assert state.is_failed()
    assert fake_slack.texts() == [
        "etl|boom, after|Failed|Running|Root cause: boom Failed: Error during execution of task: ValueError('boom 0')|"
        "run-1|https://plait.example.com/flow-run/run-1|"
        "boom: 1 task run Failed (first: boom: Error during execution of task: ValueError('boom 0')); "
        "after: 1 task run TriggerFailed (first: after: Trigger 'all_successful' was not met by the upstream states.)"
    ]


def test_default_template_has_flow_state_run_time_and_link(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, ui_url="https://ui.example/runs/{run_id}")

    failing_flow(alert).run(context={"flow_run_id": "run-9"})

    [text] = fake_slack.texts()
    assert re.match(
        r":rotating_light: \*etl\* is \*Failed\* at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \(run `run-9`\)", text
    )
    assert "Task runs: boom: 1 task run Failed" in text
    assert text.endswith("\n<https://ui.example/runs/run-9|View run>")


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_500_failing_mapped_children_give_one_summarised_alert(fake_slack: FakeSlack, executor):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, template="{state}: {tasks}")

    state = failing_flow(alert, n=500).run(executor=executor)

    assert state.is_failed()
    assert len(fake_slack.requests) == 1
    [text] = fake_slack.texts()
    assert text.startswith("Failed: boom: 500 task runs Failed (first: boom[")


def test_retrying_does_not_alert_as_a_failure(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url)
    attempts = []

    @task(max_retries=1, retry_delay=0, state_handlers=[alert])
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first try")
        return 1

    with Flow("retry", state_handlers=[alert]) as flow:
        flaky()

    assert flow.run().is_successful()
    assert len(attempts) == 2
    assert fake_slack.requests == []


def test_retrying_alerts_when_asked(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, only_states=["Retrying"], template="{tasks}")

    @task(max_retries=2, retry_delay=0, state_handlers=[alert])
    def always() -> int:
        raise ValueError("nope")

    with Flow("retry", state_handlers=[alert]) as flow:
        always()

    assert flow.run().is_failed()
    assert fake_slack.texts() == [
        "always: 2 task runs Retrying (first: always: Attempt 1 of 3 failed "
        "(Error during execution of task: ValueError('nope')); retrying in 0s.)"
    ]


def test_ignore_states_leaves_them_out(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, ignore_states=[TriggerFailed], template="{tasks}")
    failing_flow(alert).run()
    [text] = fake_slack.texts()
    assert "boom: 1 task run Failed" in text
    assert "TriggerFailed" not in text


def test_successful_run_sends_nothing_by_default(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url)

    @task(state_handlers=[alert])
    def fine() -> int:
        return 1

    with Flow("ok", state_handlers=[alert]) as flow:
        fine()

    assert flow.run().is_successful()
    assert fake_slack.requests == []


def test_success_alerts_when_asked(fake_slack: FakeSlack):
    alert = slack_notifier(
        token=fake_slack.token,
        channel="#runs",
        base_url=fake_slack.base_url,
        only_states=["Success"],
        template="{flow} {state}",
    )

    @task
    def fine() -> int:
        return 1

    with Flow("ok", state_handlers=[alert]) as flow:
        fine()

    assert flow.run().is_successful()
    [request] = fake_slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.json == {"channel": "#runs", "text": "ok Success"}


def test_flows_filter(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, flows=["other"])
    assert failing_flow(alert).run().is_failed()
    assert fake_slack.requests == []


def test_tags_filter_selects_tasks(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, tags=["critical"], template="{tasks}")

    @task(tags=["critical"], state_handlers=[alert])
    def important() -> int:
        raise ValueError("x")

    @task(state_handlers=[alert])
    def minor() -> int:
        raise ValueError("y")

    with Flow("tags", state_handlers=[alert]) as flow:
        important()
        minor()

    flow.run()
    [text] = fake_slack.texts()
    assert text.startswith("important: 1 task run Failed") and "minor" not in text


def test_rate_limit_drops_and_then_reports_the_count(fake_slack: FakeSlack):
    clock = Clock()
    alert = slack_notifier(
        webhook_url=fake_slack.webhook_url, rate_limit=2, rate_period=60, clock=clock, template="{flow}: {message}"
    )
    flow = failing_flow(alert, on_tasks=False)

    for _ in range(4):
        assert flow.run().is_failed()
    assert len(fake_slack.texts()) == 2

    clock.now += 61
    flow.run()
    texts = fake_slack.texts()
    assert len(texts) == 3
    assert texts[2] == "etl: Some reference tasks failed. (2 earlier alerts were dropped by the rate limit)"


def test_immediate_sends_the_first_task_failure_at_once(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, immediate=True, template="{task} {state}")

    @task(state_handlers=[alert])
    def boom(x: int) -> int:
        raise ValueError(x)

    with Flow("imm") as flow:  # no flow handler: the task alerts on its own
        boom.map([1, 2, 3])

    flow.run()
    alert.flush()
    texts = fake_slack.texts()
    assert texts[0] == "boom[0] Failed"
    # the repeats (boom[1], boom[2]) are summarised at the run's end by the plugin's flow hook,
    # when the plugin system is there (see test_plugin.py); never one message per child
    assert len(texts) <= 2


def test_endpoint_down_never_changes_the_run(refused_url: str, slack_logs):
    url = f"{refused_url}/services/T0/B0/planted-secret-path"
    alert = slack_notifier(webhook_url=url, only_states=[Failed, "Success"])

    @task(state_handlers=[alert])
    def fine() -> int:
        return 1

    with Flow("ok", state_handlers=[alert]) as flow:
        result = fine()

    state = flow.run()
    assert state.is_successful()
    assert state.result[result].result == 1
    errors = [r for r in slack_logs.records if r.name == "plait.plugins.slack" and r.levelno >= logging.ERROR]
    assert errors and "plait-slack" in errors[0].getMessage()
    assert "planted-secret-path" not in slack_logs.text
    assert all("planted-secret-path" not in r.getMessage() for r in slack_logs.records)


def test_slow_endpoint_holds_the_run_end_at_most_the_timeout(fake_slack: FakeSlack, slack_logs):
    fake_slack.hold()
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, timeout=0.3)
    try:
        state = failing_flow(alert, on_tasks=False).run()
        assert state.is_failed()
        # either the run's end stopped waiting, or the request itself timed out: both are logged
        warned = [r for r in slack_logs.records if r.name == "plait.plugins.slack" and r.levelno >= logging.WARNING]
        assert warned
        assert any(("not sent within 0.3s" in r.getMessage()) or ("timed out" in r.getMessage()) for r in warned)
    finally:
        fake_slack.release()


def test_bad_token_is_logged_without_the_token(fake_slack: FakeSlack, slack_logs):
    token = "xoxb-planted-9f8e7d6c5b4a"
    alert = slack_notifier(token=token, channel="#a", base_url=fake_slack.base_url)

    assert failing_flow(alert).run().is_failed()

    assert "invalid_auth" in slack_logs.text
    assert token not in slack_logs.text
    assert fake_slack.requests[0].headers["authorization"] == f"Bearer {token}"


def test_bad_state_name_is_a_clear_error():
    with pytest.raises(SlackConfigError, match=r"only_states has 'Failure'.*Failed"):
        slack_notifier(webhook_url="http://127.0.0.1:9/x", only_states=["Failure"])


def test_bad_template_is_a_clear_error():
    with pytest.raises(SlackConfigError, match="not a valid format string"):
        slack_notifier(webhook_url="http://127.0.0.1:9/x", template="{flow")


def test_no_destination_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAIT_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    _reset_config()
    with pytest.raises(SlackConfigError, match="no Slack destination"):
        slack_notifier(only_states=[Failed])


def test_positional_misuse_is_a_clear_error():
    with pytest.raises(SlackConfigError, match="keyword options"):
        slack_notifier([Failed])


def _reset_config() -> None:
    try:
        from plait.config import reset_config
    except ImportError:
        return
    reset_config()


def test_429_is_honoured_and_the_alert_still_goes(fake_slack: FakeSlack):
    waits: list[float] = []
    fake_slack.fail_next(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"})
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, template="{flow} {state}", sleep=waits.append)

    assert failing_flow(alert).run().is_failed()

    assert waits == [3.0]
    assert [r.answered for r in fake_slack.requests] == [429, 200]
    assert fake_slack.texts() == ["etl Failed"]


@pytest.mark.parametrize(
    ("how", "logged"),
    [("webhook", "answered HTTP 500"), ("token", "(HTTP 500)")],
)
def test_persistent_500_is_logged_and_the_run_is_unchanged(fake_slack: FakeSlack, slack_logs, how, logged):
    fake_slack.fail_next(500, "oops", count=2)
    if how == "webhook":
        alert = slack_notifier(webhook_url=fake_slack.webhook_url, sleep=lambda s: None)
    else:
        alert = slack_notifier(token=fake_slack.token, channel="#a", base_url=fake_slack.base_url, sleep=lambda s: None)

    state = failing_flow(alert).run()

    assert state.is_failed() and state.message == "Some reference tasks failed."
    assert len(fake_slack.requests) == 2
    assert logged in slack_logs.text
    assert fake_slack.token not in slack_logs.text and fake_slack.webhook_path not in slack_logs.text


def test_the_summary_leads_with_the_root_cause_and_never_cuts_a_word(fake_slack: FakeSlack):
    alert = slack_notifier(webhook_url=fake_slack.webhook_url)

    @task
    def extract() -> int:
        raise ValueError("the source table is empty " + "because " * 40 + "END")

    @task
    def load(x: int) -> int:
        return x

    with Flow("etl", state_handlers=[alert]) as flow:
        rows = extract(task_args={"state_handlers": [alert]}) if False else extract()
        for _ in range(3):
            load(rows)
    for t in flow.tasks:
        t.state_handlers = [alert]
    flow.run()
    [text] = fake_slack.texts()
    second = text.splitlines()[1]
    assert second.startswith(
        "Root cause: extract Failed: Error during execution of task: ValueError('the source table is empty because"
    )
    assert "TriggerFailed" not in second
    assert text.index("extract: 1 task run Failed") < text.index("TriggerFailed")
    # cut at a word boundary with an ellipsis, never in the middle of a word
    assert second.endswith("because…")


def test_short_cuts_at_a_word_boundary():
    from plait.alerting import _short

    assert _short("word " * 100, limit=50) == "word " * 8 + "word…"
    assert _short("x" * 300, limit=10) == "x" * 9 + "…"
