"""plait.agents without a server: how the agent's loop takes the server's answers. (Agents
against a real server and real flow-run processes are tested in plait-server's suite.)"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from plait.agents import Agent
from plait.errors import ServerError


class _Server:
    """A server whose claims fail the way we tell them to (a server bug cannot be caused for real)."""

    url = "http://127.0.0.1:1"
    timeout = 5.0

    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.claims = 0

    def register_agent(self, name, type, labels, max_runs):
        return SimpleNamespace(id="agent-1")

    def agent_heartbeat(self, agent_id, run_ids):
        return 30.0, []

    def claim_flow_runs(self, agent_id, limit):
        self.claims += 1
        answer = self.answers.pop(0) if self.answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer


class _Idle(Agent):
    type = "idle"

    def start_run(self, run):  # pragma: no cover - nothing is claimed here
        raise AssertionError("nothing to start")


def test_a_server_failure_does_not_stop_the_agent_and_is_logged_once(caplog):
    bug = ServerError("Internal server error (reference ab12 in the server's log)", "INTERNAL_SERVER_ERROR")
    server = _Server([bug, bug, bug, []])
    agent = _Idle(server)
    agent.register()
    with caplog.at_level(logging.INFO, logger="plait.agent"):
        for _ in range(4):
            assert agent.poll_once() == 0
    assert server.claims == 4  # it went on polling
    failures = [r for r in caplog.records if "the server failed a poll" in r.getMessage()]
    assert len(failures) == 1 and "INTERNAL_SERVER_ERROR" in failures[0].getMessage()
    assert any("answers polls again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("code", ["UNAUTHENTICATED", "FORBIDDEN"])
def test_a_refused_key_stops_the_agent(code):
    agent = _Idle(_Server([ServerError("Unknown or revoked API key", code)]))
    agent.register()
    with pytest.raises(ServerError, match="revoked"):
        agent.poll_once()
