"""Global webhook alerts through the plugin's hooks, configured by [plugins.http.webhook]."""

from __future__ import annotations

import logging

import pytest
from plait_http import HTTPConfigError, HTTPRequest, plugin, webhook_notifier
from plait_http.testing import WebhookReceiver

from plait import Flow, task
from plait.secrets import MASK, Secret, register_secret
from plait.testing import assert_plugin_conforms

CONFIG = """
[plugins.http.webhook]
url_secret = "TEST_ALERT_URL"
signing_key_secret = "TEST_ALERT_KEY"
"""


def broken_flow(name: str = "etl", n: int | None = None) -> Flow:
    @task
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
        "plait_register_settings",
        "plait_register_tasks",
        "plait_server_event",
        "plait_task_state_changed",
    }
    assert "plait_register_tasks" in assert_plugin_conforms("http")


def test_every_flow_posts_one_signed_document(webhook_receiver: WebhookReceiver, plait_config, plait_hooks, caplog):
    plait_config(
        CONFIG, TEST_ALERT_URL=webhook_receiver.url + "/alerts/secret-route", TEST_ALERT_KEY="test-signing-key"
    )

    assert broken_flow(n=200).run(executor="threads").is_failed()

    [document] = webhook_receiver.documents
    assert webhook_receiver.signatures_ok == [True]
    assert (document["event"], document["flow"], document["state"]) == ("flow_run_summary", "etl", "Failed")
    assert document["tasks"][0]["count"] == 200
    assert "secret-route" not in caplog.text


def test_environment_overrides_and_flow_filter(
    webhook_receiver: WebhookReceiver, plait_config, plait_hooks, monkeypatch
):
    monkeypatch.setenv("PLAIT__PLUGINS__HTTP__WEBHOOK__FLOWS", '["wanted"]')
    plait_config(CONFIG, TEST_ALERT_URL=webhook_receiver.url, TEST_ALERT_KEY="k" * 8)

    broken_flow("other").run()
    broken_flow("wanted").run()

    assert [d["flow"] for d in webhook_receiver.documents] == ["wanted"]


def test_endpoint_down_leaves_the_run_alone_in_strict_mode(refused_url, plait_config, plait_hooks, caplog):
    plait_config(CONFIG + "retries = 0\n", TEST_ALERT_URL=refused_url + "/planted/route/123", TEST_ALERT_KEY="x" * 8)

    state = broken_flow().run()

    assert state.is_failed() and state.message == "Some reference tasks failed."
    assert "plait-http: failed sending an alert for flow 'etl'" in caplog.text
    assert "/planted/route/123" not in caplog.text


def test_bare_webhook_notifier_uses_the_config(webhook_receiver: WebhookReceiver, plait_config, plait_hooks):
    plait_config(CONFIG + "alerts = false\n", TEST_ALERT_URL=webhook_receiver.url, TEST_ALERT_KEY="test-signing-key")

    @task(state_handlers=[webhook_notifier])
    def boom() -> int:
        raise ValueError("x")

    with Flow("bare") as flow:
        boom()

    flow.run()
    assert [d["tasks"][0]["task"] for d in webhook_receiver.documents] == ["boom"]


def test_register_tasks_offers_http_request():
    assert plugin.plait_register_tasks() == [HTTPRequest]


def test_configured_url_and_key_are_masked_by_plait(webhook_receiver, plait_config, plait_hooks):
    from plait.secrets import MASK, mask

    url = webhook_receiver.url + "/T123/secret-route-456"
    plait_config(CONFIG, TEST_ALERT_URL=url, TEST_ALERT_KEY="signing-key-789")
    assert plugin.configured_notifier() is not None
    assert mask(f"posting to {url}") == f"posting to {MASK}"
    assert mask("/T123/secret-route-456 and signing-key-789") == f"{MASK} and {MASK}"


# --- secrets in handler, trigger and loop errors never reach the webhook (issue 11) -------------

LEAK = "w3bhook-Leak-S3cret-5d2a"


def _raises(*args):
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
def test_secrets_in_handler_trigger_and_loop_errors_never_reach_the_webhook(
    webhook_receiver: WebhookReceiver, plait_config, plait_hooks, executor, where
):
    plait_config(
        CONFIG + "immediate = true\n",
        TEST_ALERT_URL=webhook_receiver.url + "/alerts/secret-route",
        TEST_ALERT_KEY="test-signing-key",
        TEST_WEBHOOK_LEAK=LEAK,
    )
    assert Secret("TEST_WEBHOOK_LEAK").get() == LEAK
    with Flow("leaky") as flow:
        if where == "state-handler":
            _fine(task_args={"state_handlers": [_raises]})
        elif where == "trigger":
            _fine(task_args={"trigger": _raises}, upstream_tasks=[_fine()])
        else:
            _loop_fails()

    assert flow.run(executor=executor).is_failed()

    bodies = [r.body.decode() for r in webhook_receiver.requests]
    assert bodies and all(LEAK not in body for body in bodies)
    assert any(MASK in body for body in bodies)
    assert webhook_receiver.signatures_ok == [True] * len(bodies)


def test_a_secret_registered_after_the_failure_is_masked_in_the_json(
    webhook_receiver: WebhookReceiver, plait_config, plait_hooks
):
    plait_config(CONFIG, TEST_ALERT_URL=webhook_receiver.url + "/alerts/secret-route", TEST_ALERT_KEY="k3y-0123")
    late = 'l4te "quoted" S3cret-é'  # escaped in JSON text: masked before serializing

    @task
    def boom() -> int:
        raise ValueError(f"rejected {late}")

    def learn_the_secret(flow, old_state, new_state):
        if new_state.is_finished():
            register_secret(late)

    with Flow("late", state_handlers=[learn_the_secret]) as flow:
        boom()
    flow.run()

    [request] = webhook_receiver.requests
    assert late not in str(request.json) and "S3cret" not in request.body.decode()
    assert MASK in request.json["tasks"][0]["examples"][0]["message"]


@pytest.mark.parametrize("key", ["url_secret", "signing_key_secret"])
def test_a_secret_pasted_into_a_secret_setting_is_named_never_shown(
    webhook_receiver: WebhookReceiver, plait_config, plait_hooks, caplog, key
):
    pasted = webhook_receiver.url + "/alerts/pasted-route" if key == "url_secret" else "pasted signing key!"
    other = "signing_key_secret" if key == "url_secret" else "url_secret"
    plait_config(
        f'[plugins.http.webhook]\n{key} = "{pasted}"\n{other} = "TEST_ALERT_OTHER"\n',
        TEST_ALERT_OTHER=webhook_receiver.url + "/x" if other == "url_secret" else "k3y-0123",
    )
    caplog.set_level(logging.DEBUG)

    assert broken_flow().run().is_failed()

    logged = [r.getMessage() for r in caplog.records if r.name == "plait.plugins.http"]
    assert any(f"[plugins.http.webhook] {key} names no secret that is set" in m for m in logged), logged
    assert pasted not in caplog.text
    with pytest.raises(HTTPConfigError) as info:
        webhook_notifier(only_states=["Failed"])
    assert key in str(info.value) and pasted not in str(info.value)
    assert webhook_receiver.requests == []


def test_server_events_post_one_document_each(webhook_receiver: WebhookReceiver, plait_config, plait_hooks):
    from datetime import UTC, datetime

    from plait.events import ServerEvent

    plait_config(
        CONFIG + "rate_limit = 2\n",
        TEST_ALERT_URL=webhook_receiver.url + "/alerts/x",
        TEST_ALERT_KEY="test-signing-key",
    )
    for i in range(4):  # the rate limit of the flow alerts applies: two get through
        plugin.plait_server_event(
            ServerEvent(
                kind="flow_run_rescheduled",
                message="its process exited with code -9",
                time=datetime(2026, 1, 1, tzinfo=UTC),
                id=i,
                flow_name="etl",
                flow_run_id=f"run-{i}",
                state="Scheduled",
                agent_name="box",
            )
        )
    assert plugin.configured_notifier().flush(10)
    documents = webhook_receiver.documents
    assert len(documents) == 2 and webhook_receiver.signatures_ok == [True, True]
    first = documents[0]
    assert (first["event"], first["flow"], first["state"], first["flow_run_id"], first["agent"]) == (
        "flow_run_rescheduled",
        "etl",
        "Scheduled",
        "run-0",
        "box",
    )
