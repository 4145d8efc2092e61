"""SlackLogHandler: records at or above its level, posted in batches."""

from __future__ import annotations

import logging

import pytest
from plait_slack import SlackLogHandler
from plait_slack.testing import FakeSlack


@pytest.fixture
def logger():
    log = logging.getLogger("plait.test_slack_logs")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def test_batches_records_at_or_above_the_level(fake_slack: FakeSlack, logger):
    handler = SlackLogHandler(level="WARNING", webhook_url=fake_slack.webhook_url, batch_size=2)
    logger.addHandler(handler)

    logger.info("not sent")
    logger.warning("disk %d%% full", 91)
    logger.error("load failed")
    handler.sender.flush(10)
    assert fake_slack.texts() == [
        "```\nWARNING plait.test_slack_logs: disk 91% full\nERROR plait.test_slack_logs: load failed\n```"
    ]

    logger.critical("gave up")
    assert len(fake_slack.requests) == 1  # still buffered
    handler.flush()
    assert fake_slack.texts()[1] == "```\nCRITICAL plait.test_slack_logs: gave up\n```"


def test_close_sends_what_is_buffered(fake_slack: FakeSlack, logger):
    handler = SlackLogHandler(token=fake_slack.token, channel="#logs", base_url=fake_slack.base_url)
    logger.addHandler(handler)
    logger.error("one")
    handler.close()
    [request] = fake_slack.requests
    assert request.json == {"channel": "#logs", "text": "```\nERROR plait.test_slack_logs: one\n```"}


def test_own_records_are_not_sent(fake_slack: FakeSlack):
    handler = SlackLogHandler(webhook_url=fake_slack.webhook_url, batch_size=1)
    own = logging.getLogger("plait.plugins.slack")
    own.addHandler(handler)
    try:
        own.error("plait-slack: failed sending")
    finally:
        own.removeHandler(handler)
    handler.flush()
    assert fake_slack.requests == []


def test_failing_slack_never_raises_into_logging(refused_url: str, logger, caplog):
    handler = SlackLogHandler(webhook_url=f"{refused_url}/services/T/B/planted-path-1", batch_size=1, timeout=2)
    logger.addHandler(handler)
    caplog.set_level(logging.ERROR, logger="plait.plugins.slack")
    logger.error("boom")
    handler.flush()
    assert "plait-slack: failed sending log records to Slack" in caplog.text
    assert "planted-path-1" not in caplog.text
