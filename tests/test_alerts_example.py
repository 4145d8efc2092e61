"""examples/alerts.py, run by `plait run` in a fresh process, alerts Slack once, posts one
webhook and shows up in Prometheus (pushed to a real Pushgateway that a real Prometheus scrapes).

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
pytest.importorskip("plait_metrics", reason="plait-metrics is not installed (make test installs it)")

from plait_http.testing import WebhookReceiver
from plait_metrics.testing import find_binary, run_prometheus, run_pushgateway
from plait_slack.testing import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
PLAIT = str(Path(sys.executable).with_name("plait"))


@pytest.mark.skipif(
    not (find_binary("prometheus") and find_binary("prometheus-pushgateway")),
    reason="prometheus and prometheus-pushgateway are not installed (make services-prometheus installs them)",
)
def test_failing_example_alerts_slack_once_posts_one_webhook_and_shows_in_prometheus(tmp_path):
    with run_pushgateway(tmp_path / "pushgateway") as gateway:
        targets = [f"127.0.0.1:{gateway.port}"]
        with run_prometheus(tmp_path / "prometheus", pushgateways=targets) as prometheus:
            done, slack, receiver = run_example(tmp_path, f"http://127.0.0.1:{gateway.port}")
            # the run's metrics, pushed at its end, reach Prometheus through the Pushgateway
            prometheus.wait_for(
                'plait_task_runs_total{flow="alerts",task="fetch"}',
                {(("state", "Failed"),): 10.0, (("state", "Success"),): 40.0, (("state", "Mapped"),): 1.0},
                labels=["state"],
            )
            prometheus.wait_for('plait_flow_runs_total{flow="alerts"}', {(("state", "Failed"),): 1.0}, ["state"])

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


def run_example(tmp_path, pushgateway):
    config = tmp_path / "alerts.toml"
    config.write_text(
        f"""
[plugins.metrics]
pushgateway = "{pushgateway}"

[plugins.slack]
webhook_url_secret = "SLACK_WEBHOOK_URL"
template = "{{flow}} {{state}}: {{tasks}}"

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

    return done, slack, receiver
