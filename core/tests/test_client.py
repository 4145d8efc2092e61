"""plait.client against real sockets: retries with back-off on connection errors and 503, never on 4xx.

The servers are real: ``RecordingServer`` (a threaded HTTP server on 127.0.0.1) scripted to
answer 503 before 200, a raw socket server that drops the first connection, and a port where
nothing listens. (The client against a real plait-server is tested in server/tests.)
"""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from plait.client import Client
from plait.errors import ServerError, ServerUnavailableError

ANSWER = {"data": {"flow_run": {"id": "r1"}}}
QUERY = "query { flow_run(id: 1) { id } }"


def client(url: str, retries: int = 3) -> Client:
    return Client(url, "plait_test-key", retries=retries, backoff=0.01)


def test_503_is_retried_until_the_server_answers(recording_server, caplog):
    recording_server.route("/graphql", json=ANSWER)
    recording_server.fail_next(503, text="starting", count=2)
    with caplog.at_level(logging.INFO, logger="plait.client"):
        assert client(recording_server.url).graphql(QUERY) == ANSWER["data"]
    assert [r.answered for r in recording_server.requests] == [503, 503, 200]
    # Each try sent the same request, with the key.
    assert all(r.json["query"] == QUERY for r in recording_server.requests)
    assert all(r.headers["authorization"] == "Bearer plait_test-key" for r in recording_server.requests)
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and all("503" in m for m in retries)


def test_503_for_ever_gives_up_after_the_retries_with_a_clear_error(recording_server):
    recording_server.fail_next(503, count=100)
    with pytest.raises(ServerUnavailableError, match=r"unavailable \(503\)"):
        client(recording_server.url, retries=2).graphql(QUERY)
    assert len(recording_server.requests) == 3  # the first try and two retries


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 429])
def test_a_4xx_is_never_retried(recording_server, status):
    body = {"data": None, "errors": [{"message": "no", "extensions": {"code": "BAD_INPUT"}}]}
    recording_server.fail_next(status, json=body, count=5)
    with pytest.raises(ServerError) as raised:
        client(recording_server.url).graphql(QUERY)
    assert len(recording_server.requests) == 1
    assert raised.value.code == "BAD_INPUT"


def test_a_graphql_error_is_never_retried_and_keeps_its_code(recording_server):
    error = {"message": "The task run is at version 3", "extensions": {"code": "VERSION_CONFLICT", "version": 3}}
    recording_server.route("/graphql", json={"data": None, "errors": [error]})
    with pytest.raises(ServerError) as raised:
        client(recording_server.url).graphql(QUERY)
    assert len(recording_server.requests) == 1
    assert raised.value.code == "VERSION_CONFLICT"
    assert "version 3" in str(raised.value)


def test_a_500_is_not_retried(recording_server):
    recording_server.fail_next(500, json={"data": None, "errors": [{"message": "boom"}]}, count=5)
    with pytest.raises(ServerError):
        client(recording_server.url).graphql(QUERY)
    assert len(recording_server.requests) == 1


def test_nothing_listening_is_retried_then_reported(refused_url, caplog):
    with caplog.at_level(logging.INFO, logger="plait.client"), pytest.raises(ServerUnavailableError) as raised:
        client(refused_url, retries=3).graphql(QUERY)
    message = str(raised.value)
    assert refused_url in message and "after 4 tries" in message and "plait server start" in message
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 3


def test_a_dropped_connection_is_retried():
    """A server that closes the first connection without answering, then answers properly."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    connections = []

    def serve():
        for n in range(2):
            conn, _ = listener.accept()
            connections.append(n)
            if n == 0:
                conn.recv(65536)
                conn.close()  # no answer: the client sees the connection drop
                continue
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")).split(b":")[1])
            while len(body) < length:
                body += conn.recv(65536)
            payload = b'{"data": {"ok": true}}'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert client(f"http://127.0.0.1:{port}").graphql(QUERY) == {"ok": True}
    finally:
        thread.join(10)
        listener.close()
    assert connections == [0, 1]


def test_no_key_is_a_clear_error_before_any_request(recording_server):
    with pytest.raises(ServerError, match="No API key") as raised:
        Client(recording_server.url, "", retries=0).graphql(QUERY)
    assert raised.value.code == "UNAUTHENTICATED"
    assert recording_server.requests == []


def test_a_url_without_a_scheme_is_refused():
    with pytest.raises(ServerUnavailableError, match="must start with http"):
        Client("127.0.0.1:4200", "plait_x")


def test_the_key_never_appears_in_the_client_repr():
    assert "plait_secret" not in repr(Client("http://127.0.0.1:1", "plait_secret"))


def test_a_netrc_entry_for_the_server_never_replaces_the_key(recording_server, tmp_path, monkeypatch):
    # requests sends a ~/.netrc login as basic auth, over the Authorization header we set: a
    # netrc with a `default` entry (or one for the server's host) broke every call.
    netrc = tmp_path / "netrc"
    netrc.write_text("default login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    recording_server.route("/graphql", json=ANSWER)
    assert client(recording_server.url).graphql(QUERY) == ANSWER["data"]
    assert recording_server.requests[0].headers["authorization"] == "Bearer plait_test-key"


def test_the_proxy_environment_is_honoured(recording_server, monkeypatch):
    # The environment is read once, when the client is made (not at every call), and still
    # decides where requests go: here through the "proxy" (the recording server).
    monkeypatch.setenv("HTTP_PROXY", recording_server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    recording_server.fail_next(400, json={"data": None, "errors": [{"message": "no"}]})
    with pytest.raises(ServerError):
        client("http://plait-server.invalid:4200").graphql(QUERY)
    assert len(recording_server.requests) == 1
    assert recording_server.requests[0].headers["host"] == "plait-server.invalid:4200"


def test_task_run_outcomes_are_the_outcomes_the_generic_reader_makes():
    from plait.client import StateWriteOutcome, TaskRunState, _outcome, _task_run_outcomes

    sent = [TaskRunState("r1", "inc", 0, {"type": "Pending"}, map_index=i) for i in range(3)]
    answers = [
        {"index": 0, "ok": True, "id": "t0", "version": 1, "state": "Pending", "error": None},
        {
            "index": 1,
            "ok": False,
            "id": "t1",
            "version": 4,
            "state": "Success",
            "error": {"code": "INVALID_TRANSITION", "message": "finished", "rule": "finished_is_final"},
        },
        {
            "index": 2,
            "ok": False,
            "id": None,
            "version": None,
            "state": None,
            "error": {"code": "NOT_FOUND", "message": "no", "rule": None},
        },
    ]
    fast = _task_run_outcomes([dict(a) for a in answers], sent)
    slow = [_outcome(dict(a), task_slug=s.task_slug, map_index=s.map_index) for a, s in zip(answers, sent, strict=True)]
    assert fast == slow
    assert [hash(o) for o in fast] == [hash(o) for o in slow]
    assert fast[1].code == "INVALID_TRANSITION" and fast[1].rule == "finished_is_final" and fast[2].map_index == 2
    with pytest.raises(AttributeError):  # still frozen
        fast[0].ok = False
    assert all(type(o) is StateWriteOutcome for o in fast)
