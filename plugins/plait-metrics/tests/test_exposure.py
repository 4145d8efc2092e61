"""/metrics scraped for real, pushes to a real Pushgateway, and both seen by a real Prometheus."""

from __future__ import annotations

import base64
import logging
import os
import socket
import subprocess
import sys
import threading

import plait_metrics
import pytest
from plait_metrics.testing import free_port, http_get
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import URIPattern

from plait import Flow, task


@task
def extract():
    return [1, 2, 3]


@task
def double(x):
    return 2 * x


@task
def load(ys, fail):
    if fail:
        raise ValueError("the warehouse is down")
    return sum(ys)


def etl_flow(name: str, fail: bool = False) -> Flow:
    with Flow(name) as flow:
        load(double.map(extract()), fail)
    return flow


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted label pairs (without le): value}`` of the samples called ``name``."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


# --- /metrics ----------------------------------------------------------------------------------


def test_metrics_endpoint_serves_the_runs_in_prometheus_text_format():
    runtime = plait_metrics.start({"port": 0})
    assert runtime is not None and runtime.port
    assert runtime.server.server_address[0] == "127.0.0.1"  # not reachable from other hosts by default

    etl_flow("scraped").run()
    text = http_get(f"http://127.0.0.1:{runtime.port}/metrics").decode()

    assert samples(text, "plait_task_runs_total") == {
        (("flow", "scraped"), ("state", "Success"), ("task", "extract")): 1.0,
        (("flow", "scraped"), ("state", "Success"), ("task", "double")): 3.0,
        (("flow", "scraped"), ("state", "Mapped"), ("task", "double")): 1.0,
        (("flow", "scraped"), ("state", "Success"), ("task", "load")): 1.0,
    }
    assert samples(text, "plait_flow_runs_total") == {(("flow", "scraped"), ("state", "Success")): 1.0}
    assert samples(text, "plait_tasks_running") == {
        (("flow", "scraped"), ("task", "extract")): 0.0,
        (("flow", "scraped"), ("task", "double")): 0.0,
        (("flow", "scraped"), ("task", "load")): 0.0,
    }
    counts = samples(text, "plait_task_run_duration_seconds_count")
    assert counts[(("flow", "scraped"), ("task", "double"))] == 3.0
    # the registry is the plugin's own: no process or platform collectors
    assert "process_cpu_seconds_total" not in text and "python_info" not in text


def test_the_address_is_configurable():
    runtime = plait_metrics.start({"port": 0, "addr": "0.0.0.0"})
    assert runtime is not None
    assert runtime.server.server_address[0] == "0.0.0.0"


def test_a_taken_port_is_logged_and_the_flow_runs(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="plait.plugins.metrics"):
            runtime = plait_metrics.start({"port": port})
            state = etl_flow("no-endpoint").run()
    assert state.is_successful()
    assert runtime is not None and runtime.server is None
    assert f"plait-metrics: cannot serve /metrics on 127.0.0.1:{port}" in caplog.text
    metrics = plait_metrics.get_metrics()
    assert metrics.registry.get_sample_value("plait_flow_runs_total", {"flow": "no-endpoint", "state": "Success"}) == 1


# --- the Pushgateway ---------------------------------------------------------------------------


def test_each_flow_run_pushes_its_own_group(pushgateway):
    plait_metrics.start({"pushgateway": pushgateway.url, "job": "batch", "grouping_key": {"instance": "ci"}})
    etl_flow("pushed-a").run()
    etl_flow("pushed-b", fail=True).run()

    text = http_get(f"{pushgateway.url}/metrics").decode()
    flows = {k: v for k, v in samples(text, "plait_flow_runs_total").items() if ("instance", "ci") in k}
    assert flows == {
        (("flow", "pushed-a"), ("instance", "ci"), ("job", "batch"), ("state", "Success")): 1.0,
        (("flow", "pushed-b"), ("instance", "ci"), ("job", "batch"), ("state", "Failed")): 1.0,
    }
    loads = {
        k: v
        for k, v in samples(text, "plait_task_runs_total").items()
        if ("task", "load") in k and ("instance", "ci") in k
    }
    assert loads == {
        (("flow", "pushed-a"), ("instance", "ci"), ("job", "batch"), ("state", "Success"), ("task", "load")): 1.0,
        (("flow", "pushed-b"), ("instance", "ci"), ("job", "batch"), ("state", "Failed"), ("task", "load")): 1.0,
    }


def test_a_failed_run_keeps_the_last_success_time_in_the_gateway(pushgateway):
    # Two processes in a row: the first succeeds, the second fails. Each starts from zero.
    settings = {"pushgateway": pushgateway.url, "grouping_key": {"instance": "keep"}}
    plait_metrics.start(settings)
    etl_flow("nightly").run()
    success = plait_metrics.get_metrics().registry.get_sample_value(
        "plait_flow_last_success_timestamp_seconds", {"flow": "nightly"}
    )
    plait_metrics.start(settings)  # a fresh registry, as in a new process
    etl_flow("nightly", fail=True).run()

    text = http_get(f"{pushgateway.url}/metrics").decode()
    key = (("flow", "nightly"), ("instance", "keep"), ("job", "plait"))
    assert samples(text, "plait_flow_last_success_timestamp_seconds")[key] == success
    assert key in samples(text, "plait_flow_last_failure_timestamp_seconds")
    # counters are the last process's own
    runs = {k: v for k, v in samples(text, "plait_flow_runs_total").items() if k[:3] == key}
    assert runs == {(*key, ("state", "Failed")): 1.0}


def test_a_closed_pushgateway_port_never_fails_the_flow(caplog):
    closed = free_port()  # nothing listens there
    plait_metrics.start({"pushgateway": f"http://127.0.0.1:{closed}", "push_timeout": 5})
    with caplog.at_level(logging.WARNING, logger="plait.plugins.metrics"):
        ok = etl_flow("unpushed").run()
        bad = etl_flow("unpushed", fail=True).run()
    assert ok.is_successful() and bad.is_failed()
    messages = [r.getMessage() for r in caplog.records if r.name == "plait.plugins.metrics"]
    assert len(messages) == 2
    assert all(
        m.startswith(
            f"plait-metrics: could not push the metrics of flow 'unpushed' to the Pushgateway at "
            f"http://127.0.0.1:{closed}"
        )
        and "the flow run is not affected" in m
        for m in messages
    ), messages
    assert "Connection refused" in messages[0] or "ConnectionRefused" in messages[0]


def test_a_pushgateway_that_never_answers_is_given_up_after_push_timeout(caplog):
    # A socket that accepts connections (the kernel's backlog does) but never reads or answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        plait_metrics.start({"pushgateway": f"http://127.0.0.1:{port}", "push_timeout": 0.5})
        with caplog.at_level(logging.WARNING, logger="plait.plugins.metrics"):
            state = etl_flow("stalled").run()
    assert state.is_successful()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "plait.plugins.metrics"]
    assert "could not push the metrics of flow 'stalled'" in message
    assert "push_timeout = 0.5 s" in message


# --- Prometheus ----------------------------------------------------------------------------------


def test_prometheus_sees_pushed_and_scraped_runs(prometheus, pushgateway, endpoint_port):
    runtime = plait_metrics.start(
        {"port": endpoint_port, "pushgateway": pushgateway.url, "grouping_key": {"instance": "prom-test"}}
    )
    assert runtime is not None and runtime.port == endpoint_port
    etl_flow("observed").run()
    etl_flow("observed", fail=True).run()

    # through the Pushgateway (job "plait", kept by honor_labels)
    prometheus.wait_for(
        'plait_task_runs_total{job="plait", flow="observed", instance="prom-test"}',
        {
            (("task", "extract"), ("state", "Success")): 2.0,
            (("task", "double"), ("state", "Success")): 6.0,
            (("task", "double"), ("state", "Mapped")): 2.0,
            (("task", "load"), ("state", "Success")): 1.0,
            (("task", "load"), ("state", "Failed")): 1.0,
        },
        labels=["task", "state"],
    )
    # scraped from the plugin's /metrics endpoint
    prometheus.wait_for(
        'plait_flow_runs_total{job="plait-endpoint", flow="observed"}',
        {(("state", "Success"),): 1.0, (("state", "Failed"),): 1.0},
        labels=["state"],
    )
    prometheus.wait_for(
        'sum by (task) (plait_task_run_duration_seconds_count{job="plait-endpoint", flow="observed"})',
        {(("task", "extract"),): 2.0, (("task", "double"),): 6.0, (("task", "load"),): 2.0},
        labels=["task"],
    )
    prometheus.wait_for(
        'plait_tasks_running{job="plait-endpoint", flow="observed"}',
        {(("task", "extract"),): 0.0, (("task", "double"),): 0.0, (("task", "load"),): 0.0},
        labels=["task"],
    )


def test_the_running_gauge_is_visible_while_a_task_runs(prometheus, endpoint_port):
    plait_metrics.start({"port": endpoint_port})
    started, release = threading.Event(), threading.Event()

    @task
    def slow():
        started.set()
        release.wait(120)

    with Flow("long") as flow:
        slow()
    runner = threading.Thread(target=flow.run)
    runner.start()
    try:
        assert started.wait(30)
        prometheus.wait_for(
            'plait_tasks_running{job="plait-endpoint", flow="long"}', {(("task", "slow"),): 1.0}, labels=["task"]
        )
    finally:
        release.set()
        runner.join()
    prometheus.wait_for(
        'plait_tasks_running{job="plait-endpoint", flow="long"}', {(("task", "slow"),): 0.0}, labels=["task"]
    )


@pytest.mark.parametrize("query", ["up{job='pushgateway'}", "up{job='plait-endpoint'}"])
def test_prometheus_scrapes_both_targets(prometheus, endpoint_port, query):
    plait_metrics.start({"port": endpoint_port})
    prometheus.wait_for(query, {(): 1.0}, labels=[])


# --- a real short-lived process --------------------------------------------------------------------

SHORT_LIVED = """
from plait import Flow, task

@task
def extract():
    return [1, 2]

@task
def load(xs):
    raise ValueError("down")

with Flow("cron-job") as flow:
    load(extract())

state = flow.run()
print("FLOW", state.name)
"""


def test_a_short_lived_flow_run_process_pushes_before_it_exits(pushgateway, tmp_path):
    # The installed plugin, found through its entry point, configured by environment variables.
    script = tmp_path / "job.py"
    script.write_text(SHORT_LIVED)
    config = tmp_path / "config.toml"
    config.write_text("")
    env = {
        **os.environ,
        "PLAIT_CONFIG": str(config),
        "PLAIT_LOAD_PLUGINS": "metrics",
        "PLAIT__PLUGINS__METRICS__PUSHGATEWAY": pushgateway.url,
        "PLAIT__PLUGINS__METRICS__GROUPING_KEY": '{ instance = "subprocess" }',
    }
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "FLOW Failed" in done.stdout
    assert "plait-metrics" not in done.stderr  # no warning: the push worked

    text = http_get(f"{pushgateway.url}/metrics").decode()
    key = (("flow", "cron-job"), ("instance", "subprocess"), ("job", "plait"))
    runs = {k: v for k, v in samples(text, "plait_task_runs_total").items() if k[:3] == key}
    assert runs == {
        (*key, ("state", "Success"), ("task", "extract")): 1.0,
        (*key, ("state", "Failed"), ("task", "load")): 1.0,
    }
    assert samples(text, "plait_flow_runs_total")[(*key, ("state", "Failed"))] == 1.0


# --- a Pushgateway behind HTTP basic auth ------------------------------------------------------------


PUSH_AUTH = "Basic " + base64.b64encode(b"ci:s3cret-pass").decode()


@pytest.fixture
def auth_gateway(httpserver):
    """A push endpoint (pytest-httpserver) that answers 200 to a push with the right basic auth, 401 otherwise."""
    httpserver.expect_request(method="POST", uri=_ANY_PATH, headers={"Authorization": PUSH_AUTH}).respond_with_data("")
    httpserver.no_handler_status_code = 401
    return httpserver


def address(gateway):
    """The gateway's base URL (no trailing slash), for the ``pushgateway`` setting."""
    return f"http://{gateway.host}:{gateway.port}"


def pushes(gateway):
    """(method, path, Authorization) of every request the gateway received."""
    return [(request.method, request.path, request.headers.get("Authorization")) for request, _ in gateway.log]


class _AnyPath(URIPattern):
    def match(self, uri: str) -> bool:
        return True


_ANY_PATH = _AnyPath()


def test_basic_auth_with_the_password_from_a_plait_secret(auth_gateway, monkeypatch, caplog):
    monkeypatch.setenv("PUSHGATEWAY_PASSWORD", "s3cret-pass")
    plait_metrics.start(
        {"pushgateway": address(auth_gateway), "push_username": "ci", "push_password_secret": "PUSHGATEWAY_PASSWORD"}
    )
    with caplog.at_level(logging.WARNING, logger="plait.plugins.metrics"):
        assert etl_flow("guarded").run().is_successful()
    assert pushes(auth_gateway) == [("POST", "/metrics/job/plait/flow/guarded", PUSH_AUTH)]
    assert not [r for r in caplog.records if r.name == "plait.plugins.metrics"]


def test_a_refused_push_is_logged_without_the_password(auth_gateway, monkeypatch, caplog):
    monkeypatch.setenv("PUSHGATEWAY_PASSWORD", "wrong-password")
    plait_metrics.start(
        {"pushgateway": address(auth_gateway), "push_username": "ci", "push_password_secret": "PUSHGATEWAY_PASSWORD"}
    )
    with caplog.at_level(logging.WARNING, logger="plait.plugins.metrics"):
        assert etl_flow("guarded").run().is_successful()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "plait.plugins.metrics"]
    assert "could not push the metrics of flow 'guarded'" in message and "401" in message
    assert "wrong-password" not in caplog.text


@pytest.mark.parametrize("value", ["NO_SUCH_PUSH_SECRET", "the-Password-itself!"])
def test_a_missing_password_secret_is_logged_by_key_never_by_value(auth_gateway, monkeypatch, caplog, value):
    """The setting holds a secret's name; when it names nothing, the log says which setting is
    wrong but not its value, which may be the password pasted by mistake."""
    monkeypatch.delenv("NO_SUCH_PUSH_SECRET", raising=False)
    plait_metrics.start({"pushgateway": address(auth_gateway), "push_username": "ci", "push_password_secret": value})
    with caplog.at_level(logging.WARNING, logger="plait.plugins.metrics"):
        assert etl_flow("guarded").run().is_successful()
    (message,) = [r.getMessage() for r in caplog.records if r.name == "plait.plugins.metrics"]
    assert "push_password_secret names no secret that is set" in message
    assert value not in caplog.text
    assert pushes(auth_gateway) == []
