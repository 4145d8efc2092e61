"""examples/alerts.py, run by `plait run` in a fresh process, alerts Slack once and posts one webhook.

The plugins come from their entry points (installed by `make test`), the configuration from
$PLAIT_CONFIG and the secrets from the environment: no code in the example mentions them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("plait_slack", reason="plait-slack is not installed (make test installs it)")
pytest.importorskip("plait_http", reason="plait-http is not installed (make test installs it)")

from plait_http.testing import WebhookReceiver
from plait_slack.testing import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
PLAIT = str(Path(sys.executable).with_name("plait"))


def test_failing_example_alerts_slack_once_and_posts_one_webhook(tmp_path):
    config = tmp_path / "alerts.toml"
    config.write_text(
        """
[plugins.slack]
webhook_url_secret = "SLACK_WEBHOOK_URL"
template = "{flow} {state}: {tasks}"

[plugins.http.webhook]
url_secret = "ALERT_WEBHOOK_URL"
signing_key_secret = "ALERT_WEBHOOK_KEY"
"""
    )
    with FakeSlack() as slack, WebhookReceiver("example-signing-key") as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT")}
        env.update(
            PLAIT_CONFIG=str(config),
            SLACK_WEBHOOK_URL=slack.webhook_url,
            ALERT_WEBHOOK_URL=receiver.url + "/plait-alerts",
            ALERT_WEBHOOK_KEY="example-signing-key",
        )
        done = subprocess.run(
            [PLAIT, "run", "examples/alerts.py", "--param", "pages=50"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert done.returncode != 0, done.stdout + done.stderr  # the run failed, as the example means to
    assert slack.texts() == [
        "alerts Failed: fetch: 10 task runs Failed "
        "(first: fetch[0]: Error during execution of task: ValueError('page 0 is gone')); "
        "count: 1 task run TriggerFailed (first: count: Trigger 'all_successful' was not met by the upstream states.)"
    ]
    [document] = receiver.documents
    assert receiver.signatures_ok == [True]
    assert (document["flow"], document["state"], document["tasks"][0]["count"]) == ("alerts", "Failed", 10)
    output = done.stdout + done.stderr
    assert slack.webhook_path not in output
    assert "example-signing-key" not in output
