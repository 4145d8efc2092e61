"""Alerts when the process that would have sent them is dead, end to end: a real Plait server
with plait-slack and plait-http configured, a real agent whose flow-run process is killed, a
late run, a lost agent, and the repository's local Slack and webhook servers."""

from __future__ import annotations

import os
import signal
import textwrap
import uuid

import pytest

pytest.importorskip("plait_server")
pytest.importorskip("plait_slack")
pytest.importorskip("plait_http")

from datetime import UTC, datetime, timedelta

from plait_http.testing import WebhookReceiver
from plait_server.testing import AgentProcess, ServerProcess, kill_group, run_processes, wait_until
from plait_slack.testing import FakeSlack


def test_a_killed_run_a_late_run_and_a_lost_agent_alert_through_slack_and_a_webhook(tmp_path):
    name = f"alerting_{uuid.uuid4().hex[:6]}"
    box = f"doomed-box-{uuid.uuid4().hex[:6]}"
    started = tmp_path / "started"
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            from plait import Flow, task

            @task
            def hang():
                Path("{started}").touch()
                time.sleep(3600)

            with Flow("{name}") as flow:
                hang()
            """
        )
    )
    with FakeSlack() as slack, WebhookReceiver("server-signing-key") as hook:
        (tmp_path / "config.toml").write_text(
            textwrap.dedent(
                f"""
                [plugins.slack]
                webhook_url = "{slack.webhook_url}"
                template = "{{state}} {{flow}}: {{message}}"

                [plugins.http.webhook]
                url = "{hook.url}/plait-events"
                signing_key = "server-signing-key"
                """
            )
        )
        server = ServerProcess(
            f"sqlite:///{tmp_path / 'server.db'}",
            tmp_path,
            settings={
                "heartbeat_interval": 0.5,
                "scheduler_interval": 0.2,
                "max_reschedules": 0,  # a run whose process dies fails at once: flow_run_crashed
                "late_after": 1.0,
                "agent_lost_after": 3.0,
            },
        ).start()
        agent = None
        try:
            from plait.cli.loading import load_flow
            from plait.registration import flow_metadata
            from plait.storage import FileStorage

            client = server.client()
            flow = client.register_flow(
                metadata=flow_metadata(load_flow(f"{path}:{name}")), storage=FileStorage(path, name).reference()
            )
            run = client.create_flow_run(flow_id=flow.id)
            late = client.create_flow_run(
                flow_id=flow.id,
                labels=["nobody-has-this"],
                scheduled_start_time=datetime.now(UTC) - timedelta(seconds=5),
            )
            agent = AgentProcess(server, tmp_path, name=box).start()
            wait_until(started.exists, timeout=60, what="the run to start")
            (pid,) = run_processes({run.id})
            os.kill(pid, signal.SIGKILL)  # the process that would have alerted is gone
            wait_until(lambda: client.flow_run(run.id).state == "Failed", timeout=60, what="the server to settle it")
            os.kill(agent.pid, signal.SIGKILL)  # and now the agent goes quiet
            agent.process.wait(10)

            def kinds() -> set[str]:
                return {d["event"] for d in hook.documents}

            wait_until(lambda: kinds() >= {"flow_run_crashed", "flow_run_late", "agent_lost"}, timeout=60)
            documents = {d["event"]: d for d in hook.documents}
            crashed = documents["flow_run_crashed"]
            assert (crashed["flow"], crashed["flow_run_id"], crashed["state"]) == (name, run.id, "Failed")
            assert "exited" in crashed["message"] and "killed by signal 9" in crashed["message"]
            assert late.id in {d["flow_run_id"] for d in hook.documents if d["event"] == "flow_run_late"}
            assert documents["agent_lost"]["agent"] == box
            assert all(hook.signatures_ok)
            assert sorted(d["event"] for d in hook.documents).count("flow_run_crashed") == 1  # once each
            wait_until(lambda: len(slack.texts()) >= 3, timeout=30, what="the Slack messages")
            texts = slack.texts()
            assert any(t.startswith(f"Failed {name}: Failed: its process exited") for t in texts), texts
            assert any(t.startswith(f"Lost agent {box}: Agent '{box}' has not been seen") for t in texts), texts
        finally:
            if agent is not None:
                agent.stop()
            for leftover in run_processes(agents={box}):
                kill_group(leftover)
            server.stop()
