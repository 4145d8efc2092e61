"""HTTPRequest against a local RecordingServer: retries, timeouts, refusals, JSON and text."""

from __future__ import annotations

import base64
import threading

import pytest
from plait_http import HTTPConfigError, HTTPRequest, HTTPRequestError
from plait_http.session import RetryPolicy, get_session
from plait_http.testing import RecordingServer

from plait import Flow, task


def test_get_returns_json_and_sends_params_headers_and_auth(recording_server: RecordingServer):
    recording_server.route("/users/42", json={"id": 42, "name": "Ada"})
    get_user = HTTPRequest(
        recording_server.url + "/users/{user_id}",
        params={"expand": "teams"},
        headers={"X-Team": "data"},
        auth=("ada", "s3cret"),
    )

    assert get_user.run(url_fields={"user_id": 42}) == {"id": 42, "name": "Ada"}

    [request] = recording_server.requests
    assert (request.method, request.path) == ("GET", "/users/42?expand=teams")
    assert request.stable_headers() == {
        "x-team": "data",
        "authorization": "Basic " + base64.b64encode(b"ada:s3cret").decode(),
    }


def test_post_json_body(recording_server: RecordingServer):
    recording_server.route("/items", status=201, json={"created": True})
    create = HTTPRequest(recording_server.url + "/items", method="post")

    assert create.run(json={"name": "widget", "n": 3}) == {"created": True}

    [request] = recording_server.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"name": "widget", "n": 3}


def test_raw_body_and_text_answer(recording_server: RecordingServer):
    recording_server.route("/echo", text="plain words")
    send = HTTPRequest(recording_server.url + "/echo", method="PUT", headers={"Content-Type": "text/csv"})

    assert send.run(data=b"a,b\n1,2\n") == "plain words"
    assert recording_server.requests[0].body == b"a,b\n1,2\n"
    assert recording_server.requests[0].headers["content-type"] == "text/csv"


def test_response_modes(recording_server: RecordingServer):
    recording_server.route("/doc", text='{"a": 1}')
    url = recording_server.url + "/doc"
    assert HTTPRequest(url).run() == '{"a": 1}'  # text/plain: auto gives text
    assert HTTPRequest(url, response="json").run() == {"a": 1}
    assert HTTPRequest(url, response="bytes").run() == b'{"a": 1}'


def test_503_twice_then_success_is_retried(recording_server: RecordingServer):
    recording_server.route("/flaky", json={"ok": True})
    recording_server.fail_next(503, "busy", count=2)

    assert HTTPRequest(recording_server.url + "/flaky", retries=3, backoff_factor=0).run() == {"ok": True}
    assert [r.answered for r in recording_server.requests] == [503, 503, 200]


def test_retries_exhausted_fails_with_the_last_status(recording_server: RecordingServer):
    recording_server.fail_next(503, "still busy", count=3)
    with pytest.raises(HTTPRequestError, match="HTTP 503") as caught:
        HTTPRequest(recording_server.url + "/flaky", retries=2, backoff_factor=0).run()
    assert caught.value.status == 503
    assert caught.value.body == "still busy"
    assert len(recording_server.requests) == 3


def test_post_is_not_retried_on_5xx_unless_asked(recording_server: RecordingServer):
    recording_server.route("/orders", json={"id": 1})
    recording_server.fail_next(503, count=1)
    with pytest.raises(HTTPRequestError, match="HTTP 503"):
        HTTPRequest(recording_server.url + "/orders", method="POST", backoff_factor=0).run(json={})

    recording_server.fail_next(503, count=1)
    again = HTTPRequest(recording_server.url + "/orders", method="POST", backoff_factor=0, retry_methods=["POST"])
    assert again.run(json={}) == {"id": 1}


def test_4xx_fails_or_returns_the_body(recording_server: RecordingServer):
    recording_server.route("/missing", status=404, json={"error": "no such thing"})
    url = recording_server.url + "/missing"
    with pytest.raises(HTTPRequestError, match="HTTP 404"):
        HTTPRequest(url).run()
    assert HTTPRequest(url, raise_for_status=False).run() == {"error": "no such thing"}
    assert len(recording_server.requests) == 2  # 4xx is not retried


def test_timeout_fails_the_request(recording_server: RecordingServer):
    recording_server.route("/slow", json={})
    recording_server.hold()
    try:
        with pytest.raises(HTTPRequestError, match="timed out"):
            HTTPRequest(recording_server.url + "/slow", timeout=0.2, retries=0).run()
    finally:
        recording_server.release()


def test_connection_refused_fails_after_retries(refused_url: str):
    with pytest.raises(HTTPRequestError, match=r"could not connect \(3 attempt\(s\)\): Connection refused"):
        HTTPRequest(refused_url + "/x", retries=2, backoff_factor=0).run()


def test_a_failing_request_fails_only_its_task(refused_url: str, recording_server: RecordingServer):
    recording_server.route("/fine", json=[1, 2])
    down = HTTPRequest(refused_url + "/x", retries=0, name="down")
    fine = HTTPRequest(recording_server.url + "/fine", name="fine")

    @task
    def count(items: list) -> int:
        return len(items)

    with Flow("calls") as flow:
        failed = down()
        ok = count(fine())

    state = flow.run()
    assert state.result[failed].is_failed()
    assert isinstance(state.result[failed].result, HTTPRequestError)
    assert state.result[ok].result == 2


def test_secrets_in_the_query_are_not_in_the_error(refused_url: str):
    with pytest.raises(HTTPRequestError) as caught:
        HTTPRequest(refused_url + "/x?api_key=planted-key-123", retries=0).run()
    assert "planted-key-123" not in str(caught.value)


def test_one_session_per_process_and_policy_shared_by_threads():
    policy = RetryPolicy(retries=1)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_session(policy))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s is seen[0] for s in seen)
    assert get_session(RetryPolicy(retries=2)) is not seen[0]


def test_retry_policy_maps_to_urllib3():
    retry = RetryPolicy(retries=4, backoff_factor=0.25, status_forcelist=(502,), allowed_methods=("get",)).to_urllib3()
    assert (retry.total, retry.connect, retry.status, retry.backoff_factor) == (4, 4, 4, 0.25)
    assert retry.status_forcelist == (502,)
    assert retry.allowed_methods == frozenset({"GET"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "FETCH"}, "method 'FETCH' is not one of"),
        ({"timeout": 0}, "timeout must be seconds > 0"),
        ({"retries": -1}, "retries must be an int >= 0"),
        ({"response": "xml"}, "response must be one of"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(HTTPConfigError, match=message):
        HTTPRequest("http://127.0.0.1/x", **kwargs)


def test_no_url_and_bad_placeholder_are_clear_errors():
    with pytest.raises(HTTPConfigError, match="no URL"):
        HTTPRequest(name="call").run()
    with pytest.raises(HTTPConfigError, match="placeholder 'id'"):
        HTTPRequest("http://127.0.0.1/{id}").run(url_fields={"other": 1})


def test_mapped_requests_share_the_session_across_threads(recording_server: RecordingServer):
    for i in range(20):
        recording_server.route(f"/items/{i}", json={"item": i})
    fetch = HTTPRequest(recording_server.url + "/items/{i}", name="fetch")

    @task
    def fields(n: int) -> list[dict]:
        return [{"i": i} for i in range(n)]

    with Flow("many") as flow:
        items = fetch.map(url_fields=fields(20))

    state = flow.run(executor="threads")

    assert state.result[items].result == [{"item": i} for i in range(20)]
    assert sorted(r.path for r in recording_server.requests) == sorted(f"/items/{i}" for i in range(20))


def test_credentials_given_in_a_flow_are_not_in_the_serialized_flow():
    import json

    with Flow("api") as flow:
        HTTPRequest(name="call")(
            url="https://api.example.com/v1/items?access_token=query-tok-111&page=1",
            headers={"Authorization": "Bearer header-tok-222", "Accept": "application/json"},
            auth=("alice", "basic-pw-333"),
            json={"username": "alice", "password": "body-pw-444"},
        )
    data = flow.serialize()
    text = json.dumps(data)
    for planted in ("query-tok-111", "header-tok-222", "basic-pw-333", "body-pw-444"):
        assert planted not in text
    (entry,) = data["tasks"]
    assert entry["constants"] == {
        "url": "https://api.example.com/v1/items?access_token=********&page=1",
        "headers": {"Authorization": "****", "Accept": "application/json"},
        "auth": "****",
        "json": {"username": "alice", "password": "****"},
    }
