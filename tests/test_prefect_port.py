"""docs/coming-from-prefect.md's worked port (examples/prefect_port.py) runs: mapping, retries, a
schedule, a Slack state handler against the repository's local Slack server and S3 results on a
moto server over HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("plait_s3", reason="plait-s3 is not installed (make test installs it)")
pytest.importorskip("plait_slack", reason="plait-slack is not installed (make test installs it)")

from plait_s3.testing import moto_s3_server
from plait_slack.testing import FakeSlack

from plait.cli.loading import load_flow
from plait.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "prefect_port.py"
DOC = ROOT / "docs" / "coming-from-prefect.md"


@pytest.fixture
def services(tmp_path, monkeypatch):
    import boto3

    creds = {"AWS_ACCESS_KEY_ID": "port-key", "AWS_SECRET_ACCESS_KEY": "port-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "moto").mkdir()
    with moto_s3_server(tmp_path / "moto") as endpoint, FakeSlack() as slack:
        monkeypatch.setenv("PLAIT__PLUGINS__S3__ENDPOINT_URL", endpoint)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="sales-results")
        yield s3, slack


def test_the_doc_shows_the_example_as_it_is():
    blocks = re.findall(r"```py\n(.*?)```", DOC.read_text(), re.S)
    assert EXAMPLE.read_text() in blocks


def test_ported_flow_maps_retries_checkpoints_to_s3_and_alerts_slack(services):
    s3, slack = services
    flow = load_flow(str(EXAMPLE))
    assert [e.start_time.isoformat() for e in flow.schedule.next(1, after=_london(2026, 3, 1, 7))] == [
        "2026-03-02T06:00:00+00:00"
    ]
    with pytest.raises(ParameterError, match="required parameter 'day'"):
        flow.run(run_on_schedule=False)

    state = flow.run(parameters={"day": "2026-03-01"}, run_on_schedule=False)
    assert state.is_successful(), state
    by_name = {t.name: s for t, s in state.result.items()}
    assert by_name["report"].result == 3 * (12.5 + 10.0 + 8.0)
    assert [s.name for s in by_name["fetch"].map_states] == ["Success", "Success", "Success"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sales-results")["Contents"]]
    assert sum(1 for k in keys if "/fetch" in k) == 3  # every child checkpointed in S3
    assert slack.texts() == []

    state = flow.run(parameters={"day": "2026-03-02", "minimum": 17.0}, run_on_schedule=False)
    assert state.is_failed()
    checks = {t.name: s for t, s in state.result.items()}["check"].map_states
    assert [s.name for s in checks] == ["Failed", "Success", "Success"]  # apac, eu, us
    slack.wait_for(1)
    assert any("apac sold only 16.00 on 2026-03-02" in t for t in slack.texts()), slack.texts()
    assert slack.webhook_path not in str(state.result)


def _london(*args):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo("Europe/London"))
