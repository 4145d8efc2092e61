"""SlackMessage posts from a flow; it fails (unlike the notifiers) when Slack refuses."""

from __future__ import annotations

import pickle

import pytest
from plait_slack import SlackConfigError, SlackError, SlackMessage
from plait_slack.testing import FakeSlack

from plait import Flow, task


def test_message_is_formatted_with_context_and_inputs(fake_slack: FakeSlack):
    notify = SlackMessage(token=fake_slack.token, channel="#data", base_url=fake_slack.base_url)

    @task
    def load() -> int:
        return 42

    with Flow("report") as flow:
        rows = load()
        sent = notify(message="{flow_name}: loaded {rows} rows on {today}", rows=rows)

    state = flow.run(context={"today": "2026-11-24"})

    assert state.is_successful()
    assert state.result[sent].result["ok"] is True
    [request] = fake_slack.requests
    assert request.path == "/api/chat.postMessage"
    assert request.json == {"channel": "#data", "text": "report: loaded 42 rows on 2026-11-24"}


def test_webhook_and_default_message(fake_slack: FakeSlack):
    notify = SlackMessage(message="done", webhook_url=fake_slack.webhook_url)
    with Flow("f") as flow:
        notify()
    assert flow.run().is_successful()
    assert fake_slack.texts() == ["done"]


def test_refused_message_fails_the_task_without_the_token(fake_slack: FakeSlack):
    token = "xoxb-planted-abcdef123456"
    notify = SlackMessage(message="hi", token=token, channel="#x", base_url=fake_slack.base_url)
    with Flow("f") as flow:
        sent = notify()

    state = flow.run()

    task_state = state.result[sent]
    assert task_state.is_failed()
    assert isinstance(task_state.result, SlackError)
    assert "invalid_auth" in task_state.message
    assert token not in task_state.message
    assert token not in (task_state.traceback or "")


def test_no_message_is_a_clear_error(fake_slack: FakeSlack):
    with pytest.raises(SlackConfigError, match="no message to post"):
        SlackMessage(webhook_url=fake_slack.webhook_url, name="ping").run()


def test_pickles_without_its_client(fake_slack: FakeSlack):
    notify = SlackMessage(message="x", webhook_url=fake_slack.webhook_url)
    notify.run()
    copy = pickle.loads(pickle.dumps(notify))
    copy.run(message="again")
    assert fake_slack.texts() == ["x", "again"]
