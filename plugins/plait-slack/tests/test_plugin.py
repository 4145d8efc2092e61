"""Global alerting through the plugin's hooks, configured by [plugins.slack] (no code changes)."""

from __future__ import annotations

import logging
import re

import pytest
from plait_slack import SlackConfigError, plugin, slack_notifier
from plait_slack.testing import FakeSlack

from plait import Flow, task
from plait.secrets import MASK, Secret, register_secret
from plait.testing import assert_plugin_conforms, using_plugins


def webhook_config(fake: FakeSlack, extra: str = "") -> str:
    return f"""
[plugins.slack]
webhook_url_secret = "TEST_SLACK_WEBHOOK"
template = "{{flow}} {{state}}: {{tasks}}"
{extra}
"""


@task
def fail_one(x: int) -> int:
    raise ValueError(f"bad item {x}")


def test_processes_executor_alerts_once(fake_slack, plait_config, plait_hooks):
    plait_config(webhook_config(fake_slack), TEST_SLACK_WEBHOOK=fake_slack.webhook_url)
    with Flow("procs") as flow:
        fail_one.map([1, 2, 3, 4])

    assert flow.run(executor="processes").is_failed()

    [text] = fake_slack.texts()
    # which child is reported first depends on which worker finished first
    assert re.fullmatch(
        r"procs Failed: fail_one: 4 task runs Failed \(first: fail_one\[(\d)\]: "
        r"Error during execution of task: ValueError\('bad item \d'\)\)",
        text,
    )


def broken_flow(name: str = "etl", n: int | None = None, tags: list[str] | None = None) -> Flow:
    @task(tags=tags or [])
    def boom(x: int = 0) -> int:
        raise ValueError(f"boom {x}")

    with Flow(name) as flow:
        if n is None:
            boom()
        else:
            boom.map(list(range(n)))
    return flow


def test_plugin_conforms_to_the_hook_specs():
    assert set(assert_plugin_conforms(plugin)) == {
        "plait_flow_state_changed",
        "plait_register_log_handlers",
        "plait_register_settings",
        "plait_register_tasks",
        "plait_server_event",
        "plait_task_state_changed",
    }


def test_installed_entry_point_is_the_plugin():
    assert "plait_task_state_changed" in assert_plugin_conforms("slack")


def test_every_flow_alerts_once_without_code_changes(fake_slack, plait_config, plait_hooks, caplog):
    caplog.set_level(logging.DEBUG)
    plait_config(webhook_config(fake_slack), TEST_SLACK_WEBHOOK=fake_slack.webhook_url)

    state = broken_flow().run()

    assert state.is_failed()
    [request] = fake_slack.requests
    assert request.path == fake_slack.webhook_path
    assert request.json == {
        "text": "etl Failed: boom: 1 task run Failed "
        "(first: boom: Error during execution of task: ValueError('boom 0'))"
    }
    assert fake_slack.webhook_path not in caplog.text


def test_500_mapped_failures_give_one_alert_per_run(fake_slack, plait_config, plait_hooks):
    plait_config(webhook_config(fake_slack), TEST_SLACK_WEBHOOK=fake_slack.webhook_url)

    broken_flow(n=500).run(executor="threads")
    broken_flow(n=500).run()

    texts = fake_slack.texts()
    assert len(texts) == 2
    assert all(t.startswith("etl Failed: boom: 500 task runs Failed") for t in texts)


def test_token_and_channel_from_config_and_environment(fake_slack, plait_config, plait_hooks, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("PLAIT__PLUGINS__SLACK__CHANNEL", "#ops")
    plait_config(
        f"""
[plugins.slack]
token_secret = "TEST_SLACK_TOKEN"
channel = "#alerts"
base_url = "{fake_slack.base_url}"
template = "{{flow}} {{state}}"
""",
        TEST_SLACK_TOKEN=fake_slack.token,
    )

    broken_flow().run()

    [request] = fake_slack.requests
    assert request.headers["authorization"] == f"Bearer {fake_slack.token}"
    assert request.json == {"channel": "#ops", "text": "etl Failed"}
    assert fake_slack.token not in caplog.text


def test_retries_do_not_alert(fake_slack, plait_config, plait_hooks):
    plait_config(webhook_config(fake_slack), TEST_SLACK_WEBHOOK=fake_slack.webhook_url)
    attempts = []

    @task(max_retries=1, retry_delay=0)
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")
        return 1

    with Flow("retry") as flow:
        flaky()

    assert flow.run().is_successful()
    assert fake_slack.requests == []


def test_flows_and_tags_select_what_alerts(fake_slack, plait_config, plait_hooks):
    plait_config(
        webhook_config(fake_slack, 'flows = ["etl"]\ntags = ["critical"]'),
        TEST_SLACK_WEBHOOK=fake_slack.webhook_url,
    )

    broken_flow("other", tags=["critical"]).run()
    broken_flow("etl", tags=["minor"]).run()
    assert fake_slack.requests == []

    broken_flow("etl", tags=["critical"]).run()
    assert len(fake_slack.texts()) == 1


def test_endpoint_down_leaves_the_run_alone_even_in_strict_mode(refused_url, plait_config, plait_hooks, caplog):
    url = f"{refused_url}/services/T/B/planted-webhook-secret"
    plait_config('[plugins.slack]\nwebhook_url_secret = "TEST_SLACK_WEBHOOK"\ntimeout = 2\n', TEST_SLACK_WEBHOOK=url)

    state = broken_flow().run()

    assert state.is_failed()
    assert state.message == "Some reference tasks failed."
    assert "plait-slack: failed sending an alert for flow 'etl'" in caplog.text
    assert "planted-webhook-secret" not in caplog.text


def test_task_only_notifier_sends_its_summary_when_the_run_ends(fake_slack, plait_config, plait_hooks):
    plait_config("")
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, template="{flow} {state}: {tasks}")

    @task(state_handlers=[alert])
    def boom(x: int) -> int:
        raise ValueError(x)

    with Flow("mapped") as flow:
        boom.map([1, 2, 3])

    flow.run()
    assert fake_slack.texts() == [
        "mapped Failed: boom: 3 task runs Failed (first: boom[0]: Error during execution of task: ValueError(1))"
    ]


def test_immediate_notifier_sends_the_first_then_a_summary_of_repeats(fake_slack, plait_config, plait_hooks):
    plait_config("")
    alert = slack_notifier(webhook_url=fake_slack.webhook_url, immediate=True, template="{task} {state} {tasks}")

    @task(state_handlers=[alert])
    def boom(x: int) -> int:
        raise ValueError(x)

    with Flow("imm") as flow:
        boom.map([1, 2, 3])

    flow.run()
    assert fake_slack.texts() == [
        "boom[0] Failed ",
        "boom Failed boom: 3 task runs Failed (first: boom[0]: Error during execution of task: ValueError(1))",
    ]


def test_bare_slack_notifier_uses_the_config(fake_slack, plait_config, plait_hooks):
    plait_config(
        '[plugins.slack]\nwebhook_url_secret = "W"\nalerts = false\ntemplate = "{flow}: {tasks}"\n',
        W=fake_slack.webhook_url,
    )

    @task(state_handlers=[slack_notifier])
    def boom() -> int:
        raise ValueError("x")

    with Flow("bare") as flow:
        boom()

    flow.run()
    # alerts = false turns off global alerting, not the notifier a task asked for
    assert len(fake_slack.texts()) == 1
    assert fake_slack.texts()[0].startswith("bare: boom: 1 task run Failed")


def test_bare_slack_notifier_without_config_warns_and_does_nothing(plait_config, plait_hooks, caplog):
    plait_config("")

    @task(state_handlers=[slack_notifier])
    def boom() -> int:
        raise ValueError("x")

    with Flow("bare") as flow:
        boom()

    assert flow.run().is_failed()


def test_log_handler_from_config_posts_after_the_run(fake_slack, plait_config):
    plait_config(
        '[plugins.slack]\nwebhook_url_secret = "W"\nalerts = false\nlog_level = "ERROR"\n',
        W=fake_slack.webhook_url,
    )

    @task
    def noisy() -> int:
        import plait

        plait.context.logger.error("something is off")
        return 1

    with Flow("logs") as flow:
        noisy()

    with using_plugins(plugin, strict=True):
        assert flow.run().is_successful()
    texts = fake_slack.texts()
    assert len(texts) == 1
    assert "ERROR plait.task: something is off" in texts[0]


def test_register_tasks_offers_slack_message():
    from plait_slack import SlackMessage

    assert plugin.plait_register_tasks() == [SlackMessage]


def test_a_bad_config_is_logged_and_the_run_goes_on(fake_slack, plait_config, plait_hooks, caplog):
    plait_config('[plugins.slack]\nwebhook_url_secret = "W"\nstates = ["Failure"]\n', W=fake_slack.webhook_url)

    assert broken_flow().run().is_failed()

    assert "plait-slack: [plugins.slack] is not usable, no alerts will be sent" in caplog.text
    assert "only_states has 'Failure'" in caplog.text
    assert fake_slack.requests == []


def test_a_missing_secret_is_logged_and_the_run_goes_on(plait_config, plait_hooks, caplog, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    plait_config('[plugins.slack]\nwebhook_url_secret = "NOT_SET_ANYWHERE"\n')

    assert broken_flow().run().is_failed()

    assert "[plugins.slack] webhook_url_secret names no secret that is set" in caplog.text


def test_configured_secrets_are_masked_by_plait(fake_slack, plait_config, plait_hooks):
    from plait.secrets import MASK, mask

    plait_config(
        f'[plugins.slack]\ntoken = "xoxb-inline-token-777"\nchannel = "#a"\nbase_url = "{fake_slack.base_url}"\n'
    )
    assert plugin.configured_notifier() is not None
    assert mask("token xoxb-inline-token-777 here") == f"token {MASK} here"


def test_factory_without_destination_takes_it_and_defaults_from_config(fake_slack, plait_config, plait_hooks):
    plait_config(
        '[plugins.slack]\nwebhook_url_secret = "W"\nalerts = false\ntemplate = "from config: {flow}"\n',
        W=fake_slack.webhook_url,
    )
    alert = slack_notifier(only_states=["Failed"])

    with Flow("factory", state_handlers=[alert]) as flow:
        fail_one(1)

    flow.run()
    assert fake_slack.texts() == ["from config: factory"]


# --- secrets in handler, trigger and loop errors never reach Slack (issue 11) -------------------

LEAK = "sl4ck-Leak-S3cret-0e1f"


def _handler_raises(*args):
    raise RuntimeError(f"the vault refused {LEAK}")


@task
def _fine() -> int:
    return 1


@task
def _loop_fails() -> int:
    import plait
    from plait import signals

    if plait.context.task_loop_count < 2:
        raise signals.LOOP()
    raise ValueError(f"loop failed with {LEAK}")


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
@pytest.mark.parametrize("where", ["state-handler", "trigger", "loop"])
def test_secrets_in_handler_trigger_and_loop_errors_never_reach_slack(
    fake_slack, plait_config, plait_hooks, executor, where
):
    plait_config(
        '[plugins.slack]\nwebhook_url_secret = "TEST_SLACK_WEBHOOK"\nimmediate = true\n'
        'template = "{message} / {tasks}"\n',
        TEST_SLACK_WEBHOOK=fake_slack.webhook_url,
        TEST_SLACK_LEAK=LEAK,
    )
    assert Secret("TEST_SLACK_LEAK").get() == LEAK
    with Flow("leaky") as flow:
        if where == "state-handler":
            _fine(task_args={"state_handlers": [_handler_raises]})
        elif where == "trigger":
            _fine(task_args={"trigger": _handler_raises}, upstream_tasks=[_fine()])
        else:
            _loop_fails()

    assert flow.run(executor=executor).is_failed()

    texts = fake_slack.texts()
    assert texts and all(LEAK not in text for text in texts)
    assert any(MASK in text for text in texts)


def test_a_secret_registered_after_the_failure_is_masked_before_sending(fake_slack, plait_config, plait_hooks):
    """The notifier masks again just before sending: here the secret becomes known only after
    the task's state (with the raw value in its message) was made."""
    plait_config(webhook_config(fake_slack), TEST_SLACK_WEBHOOK=fake_slack.webhook_url)
    late = "l4te-Registered-S3cret-77"

    @task
    def boom() -> int:
        raise ValueError(f"rejected {late}")

    def learn_the_secret(flow, old_state, new_state):
        if new_state.is_finished():
            register_secret(late)

    with Flow("late", state_handlers=[learn_the_secret]) as flow:
        boom()
    state = flow.run()
    assert late in next(iter(state.result.values())).message  # made before the secret was known

    [text] = fake_slack.texts()
    assert late not in text and f"rejected {MASK}" in text


@pytest.mark.parametrize("key", ["webhook_url_secret", "token_secret"])
def test_a_secret_pasted_into_a_secret_setting_is_named_never_shown(fake_slack, plait_config, plait_hooks, caplog, key):
    """``*_secret`` settings hold the names of secrets: the pasted secret is not echoed anywhere."""
    pasted = fake_slack.webhook_url if key == "webhook_url_secret" else "xoxb-1234-pasted-token-abcd"
    plait_config(f'[plugins.slack]\n{key} = "{pasted}"\nchannel = "#alerts"\n')
    caplog.set_level(logging.DEBUG)

    assert broken_flow().run().is_failed()  # the run is not affected

    logged = [r.getMessage() for r in caplog.records if r.name == "plait.plugins.slack"]
    assert any(f"[plugins.slack] {key} names no secret that is set" in m for m in logged), logged
    assert pasted not in caplog.text
    with pytest.raises(SlackConfigError) as info:
        slack_notifier(only_states=["Failed"])
    assert key in str(info.value) and pasted not in str(info.value)
    assert fake_slack.requests == []


def server_event(kind="flow_run_crashed", flow="etl", run_id="run-1", event_id=1, agent=None):
    from datetime import UTC, datetime

    from plait.events import ServerEvent

    return ServerEvent(
        kind=kind,
        message=f"{kind}: no heartbeat for 90s",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        id=event_id,
        flow_name=flow,
        flow_run_id=run_id,
        state="Failed" if run_id else None,
        agent_name=agent,
        agent_id="agent-1" if agent else None,
    )


def test_server_events_alert_once_with_the_same_settings(fake_slack, plait_config, plait_hooks):
    plait_config(
        webhook_config(fake_slack, 'flows = ["etl"]\nserver_events = ["flow_run_crashed", "agent_lost"]'),
        TEST_SLACK_WEBHOOK=fake_slack.webhook_url,
    )
    plugin.plait_server_event(server_event())
    plugin.plait_server_event(server_event())  # the same occurrence again: sent once
    plugin.plait_server_event(server_event(flow="other", run_id="run-2", event_id=2))  # not a flow we watch
    plugin.plait_server_event(server_event(kind="flow_run_late", event_id=3))  # not a kind we chose
    plugin.plait_server_event(server_event(kind="agent_lost", flow=None, run_id=None, event_id=4, agent="etl-box"))
    assert plugin.configured_notifier().flush(10)
    assert fake_slack.texts() == ["etl Failed: ", "agent etl-box Lost: "]


def test_a_bad_server_events_setting_is_a_clear_error(fake_slack, plait_config, plait_hooks, caplog):
    plait_config(
        webhook_config(fake_slack, 'server_events = ["flow_run_exploded"]'), TEST_SLACK_WEBHOOK=fake_slack.webhook_url
    )
    with caplog.at_level(logging.ERROR):
        plugin.plait_server_event(server_event())
    assert "server_events has 'flow_run_exploded'" in caplog.text and "flow_run_crashed" in caplog.text
    assert fake_slack.texts() == []
