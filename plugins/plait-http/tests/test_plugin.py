"""Global webhook alerts through the plugin's hooks, configured by [plugins.http.webhook]."""

from __future__ import annotations

from plait_http import HTTPRequest, plugin, webhook_notifier
from plait_http.testing import WebhookReceiver

from plait import Flow, task
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
