"""plait_metrics/testing.py: the service helpers other end-to-end tests reuse."""

from __future__ import annotations

import pytest
from plait_metrics.testing import ServiceError, find_binary, run_prometheus, run_pushgateway, wait_until


def test_a_missing_program_is_none_and_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing installed here
    assert find_binary("prometheus-pushgateway") is None
    missing = "prometheus-pushgateway is not installed: make services-prometheus"
    with pytest.raises(ServiceError, match=missing), run_pushgateway(tmp_path):
        pass
    with pytest.raises(ServiceError, match="prometheus is not installed"), run_prometheus(tmp_path):
        pass


def test_wait_until_names_what_it_waited_for():
    with pytest.raises(ServiceError, match=r"timed out after 0.2 s waiting for the moon; last result: False"):
        wait_until(lambda: False, 0.2, "the moon")


def test_prometheus_answers_queries(prometheus):
    assert prometheus.values("vector(3)", []) == {(): 3.0}
    with pytest.raises(ValueError, match="Prometheus refused 'sum\\('"):
        prometheus.query("sum(")


def test_a_service_that_exits_at_once_is_reported_with_its_log(tmp_path):
    if find_binary("prometheus") is None:
        pytest.skip("prometheus is not installed: run `make services-prometheus`")
    with pytest.raises(ServiceError, match="prometheus exited"), run_prometheus(tmp_path, scrape_interval="bad"):
        pass
