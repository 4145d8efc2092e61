"""The real slack-sdk client (through SlackPoster) against the local FakeSlack server."""

from __future__ import annotations

import pytest
from plait_slack.client import SlackPoster
from plait_slack.errors import SlackConfigError, SlackError
from plait_slack.testing import FakeSlack


def test_webhook_post_sends_the_exact_request(fake_slack: FakeSlack):
    answer = SlackPoster(webhook_url=fake_slack.webhook_url).post("Nightly load *done*")

    assert answer == {"ok": True, "body": "ok"}
    [request] = fake_slack.requests
    assert request.method == "POST"
    assert request.path == fake_slack.webhook_path
    assert request.stable_headers() == {"content-type": "application/json;charset=utf-8"}
    assert request.json == {"text": "Nightly load *done*"}


def test_token_post_uses_chat_post_message_with_bearer_auth(fake_slack: FakeSlack):
    poster = SlackPoster(token=fake_slack.token, channel="#alerts", base_url=fake_slack.base_url)

    answer = poster.post("hello", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}])

    assert answer["ok"] is True and answer["channel"] == "#alerts"
    [request] = fake_slack.requests
    assert (request.method, request.path) == ("POST", "/api/chat.postMessage")
    assert request.stable_headers() == {
        "authorization": f"Bearer {fake_slack.token}",
        "content-type": "application/json;charset=utf-8",
    }
    assert request.json == {
        "channel": "#alerts",
        "text": "hello",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}],
    }


def test_post_to_another_channel(fake_slack: FakeSlack):
    SlackPoster(token=fake_slack.token, channel="#alerts", base_url=fake_slack.base_url).post("x", channel="#ops")
    assert fake_slack.requests[0].json["channel"] == "#ops"


@pytest.mark.parametrize("how", ["webhook", "token"])
def test_429_waits_retry_after_then_succeeds(fake_slack: FakeSlack, sleeps, no_sleep, how):
    fake_slack.fail_next(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"})
    poster = _poster(fake_slack, how, sleep=no_sleep)

    poster.post("after the limit")

    assert sleeps == [7.0]
    assert [r.answered for r in fake_slack.requests] == [429, 200]
    assert fake_slack.texts() == ["after the limit"]


@pytest.mark.parametrize("how", ["webhook", "token"])
def test_429_longer_than_max_retry_wait_gives_up_without_waiting(fake_slack: FakeSlack, sleeps, no_sleep, how):
    fake_slack.fail_next(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "120"})
    poster = _poster(fake_slack, how, sleep=no_sleep, max_retry_wait=10)

    with pytest.raises(SlackError, match=r"429|ratelimited"):
        poster.post("too late")

    assert sleeps == []
    assert len(fake_slack.requests) == 1


@pytest.mark.parametrize("how", ["webhook", "token"])
def test_500_is_retried_once(fake_slack: FakeSlack, sleeps, no_sleep, how):
    fake_slack.fail_next(500, "oops")
    _poster(fake_slack, how, sleep=no_sleep).post("second time lucky")
    assert [r.answered for r in fake_slack.requests] == [500, 200]
    assert len(sleeps) == 1


@pytest.mark.parametrize("how", ["webhook", "token"])
def test_500_twice_raises_slack_error_without_secrets(fake_slack: FakeSlack, no_sleep, how):
    fake_slack.fail_next(500, "oops", count=2)
    with pytest.raises(SlackError) as caught:
        _poster(fake_slack, how, sleep=no_sleep).post("never")
    assert "500" in str(caught.value)
    _assert_no_secret(str(caught.value), fake_slack)


def test_invalid_auth_raises_naming_the_error_not_the_token(fake_slack: FakeSlack):
    bad = "xoxb-not-a-real-token-1234"
    poster = SlackPoster(token=bad, channel="#alerts", base_url=fake_slack.base_url)

    with pytest.raises(SlackError, match="invalid_auth") as caught:
        poster.post("hello")

    assert bad not in str(caught.value)
    assert fake_slack.requests[0].headers["authorization"] == f"Bearer {bad}"


def test_unknown_webhook_raises_404(fake_slack: FakeSlack):
    url = fake_slack.webhook_url + "wrong"
    with pytest.raises(SlackError, match="404") as caught:
        SlackPoster(webhook_url=url).post("x")
    assert url not in str(caught.value)


def test_connection_refused_raises_slack_error(refused_url: str, no_sleep):
    url = f"{refused_url}/services/T0/B0/very-secret-path"
    with pytest.raises(SlackError, match="could not be reached") as caught:
        SlackPoster(webhook_url=url, sleep=no_sleep).post("x")
    assert "very-secret-path" not in str(caught.value)


def test_timeout_raises_slack_error(fake_slack: FakeSlack, no_sleep):
    fake_slack.hold()
    try:
        with pytest.raises(SlackError, match="could not be reached"):
            SlackPoster(webhook_url=fake_slack.webhook_url, timeout=0.2, sleep=no_sleep).post("x")
    finally:
        fake_slack.release()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either webhook_url or token"),
        ({"webhook_url": "http://x/y", "token": "xoxb-1"}, "got both"),
        ({"token": "xoxb-1"}, "needs a channel"),
    ],
)
def test_bad_destination_is_a_clear_error(kwargs, message):
    with pytest.raises(SlackConfigError, match=message):
        SlackPoster(**kwargs)


def test_repr_hides_secrets():
    poster = SlackPoster(webhook_url="https://hooks.example/services/T/B/secretpart")
    assert "secretpart" not in repr(poster)


def _poster(fake: FakeSlack, how: str, **kwargs) -> SlackPoster:
    if how == "webhook":
        return SlackPoster(webhook_url=fake.webhook_url, **kwargs)
    return SlackPoster(token=fake.token, channel="#alerts", base_url=fake.base_url, **kwargs)


def _assert_no_secret(text: str, fake: FakeSlack) -> None:
    assert fake.token not in text
    assert fake.webhook_path not in text
