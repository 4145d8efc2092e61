"""webhook_notifier against a local WebhookReceiver: documents, signatures, storms, failures."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest
from plait_http import HTTPConfigError, sign, verify_signature, webhook_notifier
from plait_http.testing import WebhookReceiver

from plait import Flow, task
from plait.states import Failed


def failing_flow(alert, name: str = "etl", n: int | None = None) -> Flow:
    @task(state_handlers=[alert])
    def boom(x: int = 0) -> int:
        raise ValueError(f"boom {x}")

    with Flow(name, state_handlers=[alert]) as flow:
        if n is None:
            boom()
        else:
            boom.map(list(range(n)))
    return flow


def test_failed_run_posts_one_signed_document(webhook_receiver: WebhookReceiver):
    alert = webhook_notifier(
        url=webhook_receiver.url + "/hooks/plait",
        signing_key=webhook_receiver.signing_key,
        ui_url="https://plait.example.com",
        headers={"Authorization": "Bearer receiver-token"},
    )

    state = failing_flow(alert).run(context={"flow_run_id": "run-7"})

    assert state.is_failed()
    [request] = webhook_receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/plait")
    assert request.stable_headers() == {
        "authorization": "Bearer receiver-token",
        "content-type": "application/json",
        "x-plait-event": "flow_run_summary",
        "x-plait-signature-256": sign(webhook_receiver.signing_key, request.body),
    }
    assert len(request.headers["x-plait-delivery"]) == 32
    assert webhook_receiver.signatures_ok == [True]
    document = request.json
    assert document.pop("time").endswith("+00:00")
    assert document == {
        "event": "flow_run_summary",
        "flow": "etl",
        "flow_run_id": "run-7",
        "task": "boom",
        "state": "Failed",
        "old_state": "Running",
        "message": "Root cause: boom Failed: Error during execution of task: ValueError('boom 0')",
        "url": "https://plait.example.com/flow-run/run-7",
        "tasks": [
            {
                "task": "boom",
                "state": "Failed",
                "count": 1,
                "examples": [{"task_run": "boom", "message": "Error during execution of task: ValueError('boom 0')"}],
            }
        ],
        "suppressed_alerts": 0,
    }


def test_signature_is_hmac_sha256_of_the_body():
    body = b'{"flow":"etl"}'
    expected = "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert sign("k3y", body) == expected
    assert verify_signature("k3y", body, expected)
    assert not verify_signature("other", body, expected)
    assert not verify_signature("k3y", body + b" ", expected)
    assert not verify_signature("k3y", body, None)


def test_a_tampered_body_fails_verification(webhook_receiver: WebhookReceiver):
    alert = webhook_notifier(url=webhook_receiver.url, signing_key="not-the-receivers-key")
    failing_flow(alert).run()
    assert webhook_receiver.signatures_ok == [False]


def test_unsigned_when_no_key(webhook_receiver: WebhookReceiver):
    failing_flow(webhook_notifier(url=webhook_receiver.url)).run()
    assert "x-plait-signature-256" not in webhook_receiver.requests[0].headers


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_500_mapped_failures_post_one_document(webhook_receiver: WebhookReceiver, executor):
    failing_flow(webhook_notifier(url=webhook_receiver.url), n=500).run(executor=executor)
    [document] = webhook_receiver.documents
    assert document["tasks"][0]["count"] == 500
    assert len(document["tasks"][0]["examples"]) == 5


def test_retrying_is_not_failed(webhook_receiver: WebhookReceiver):
    alert = webhook_notifier(url=webhook_receiver.url)
    attempts = []

    @task(max_retries=1, retry_delay=0, state_handlers=[alert])
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")
        return 1

    with Flow("retry", state_handlers=[alert]) as flow:
        flaky()

    assert flow.run().is_successful()
    assert webhook_receiver.requests == []


def test_5xx_is_retried_then_delivered(webhook_receiver: WebhookReceiver):
    webhook_receiver.fail_next(503, count=2)
    failing_flow(webhook_notifier(url=webhook_receiver.url, retries=2, backoff_factor=0)).run()
    assert [r.answered for r in webhook_receiver.requests] == [503, 503, 204]


def test_rate_limit(webhook_receiver: WebhookReceiver):
    now = [0.0]
    alert = webhook_notifier(url=webhook_receiver.url, rate_limit=1, rate_period=60, clock=lambda: now[0])
    flow = failing_flow(alert)
    flow.run()
    flow.run()
    now[0] = 100.0
    flow.run()
    assert [d["suppressed_alerts"] for d in webhook_receiver.documents] == [0, 1]


def test_endpoint_down_never_changes_the_run(refused_url: str, http_logs):
    url = f"{refused_url}/hooks/planted-secret-route"
    alert = webhook_notifier(
        url=url, signing_key="planted-signing-key", only_states=[Failed, "Success"], retries=1, backoff_factor=0
    )

    @task(state_handlers=[alert])
    def fine() -> int:
        return 1

    with Flow("ok", state_handlers=[alert]) as flow:
        result = fine()

    state = flow.run()
    assert state.is_successful()
    assert state.result[result].result == 1
    errors = [r for r in http_logs.records if r.name == "plait.plugins.http" and r.levelno >= logging.ERROR]
    assert errors and errors[0].getMessage().startswith("plait-http: failed sending an alert for flow 'ok'")
    assert "planted-secret-route" not in http_logs.text
    assert "planted-signing-key" not in http_logs.text


def test_4xx_answer_is_logged_not_raised(webhook_receiver: WebhookReceiver, http_logs):
    webhook_receiver.fail_next(401, "bad signature")
    state = failing_flow(webhook_notifier(url=webhook_receiver.url)).run()
    assert state.is_failed()
    assert "webhook answered HTTP 401: bad signature" in http_logs.text


def test_slow_endpoint_holds_the_run_end_at_most_the_timeout(webhook_receiver: WebhookReceiver, http_logs):
    webhook_receiver.hold()
    try:
        state = failing_flow(webhook_notifier(url=webhook_receiver.url, timeout=0.3, retries=0)).run()
        assert state.is_failed()
        warned = [r for r in http_logs.records if r.name == "plait.plugins.http" and r.levelno >= logging.WARNING]
        assert any("not sent within 0.3s" in r.getMessage() or "timed out" in r.getMessage() for r in warned)
    finally:
        webhook_receiver.release()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://x"}, "got a value without http:// or https://"),
        ({"url": "http://x", "only_states": ["Oops"]}, "only_states has 'Oops'"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(HTTPConfigError, match=message):
        webhook_notifier(**kwargs)


def test_bad_url_error_does_not_show_the_value():
    with pytest.raises(HTTPConfigError) as caught:
        webhook_notifier(url="hooks.example.com/planted-secret")
    assert "planted-secret" not in str(caught.value)
