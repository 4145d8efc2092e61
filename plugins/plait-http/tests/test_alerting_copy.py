"""plait_http.alerting is the same module as plait_slack.alerting (each plugin carries a copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "src" / "plait_http" / "alerting.py"
SLACK = Path(__file__).resolve().parents[2] / "plait-slack" / "src" / "plait_slack" / "alerting.py"


@pytest.mark.skipif(not SLACK.is_file(), reason="plait-slack's source is not next to this checkout")
def test_the_two_copies_match_but_for_names():
    def normalised(path: Path) -> str:
        text = path.read_text()
        text = text.replace("``webhook_notifier`` and the global ``[plugins.http.webhook]`` hook", "NOTIFIER")
        text = text.replace("``slack_notifier`` and the global ``[plugins.slack]`` hook", "NOTIFIER")
        return text.replace("plait_http", "PKG").replace("plait_slack", "PKG")

    assert normalised(HERE) == normalised(SLACK)
