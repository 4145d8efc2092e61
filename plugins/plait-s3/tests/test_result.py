"""S3Result: round trips, existence, URLs, errors, and checkpoints and targets in real flows."""

from __future__ import annotations

import json
import pickle

import pytest
from plait_s3 import (
    S3AccessDeniedError,
    S3BucketNotFoundError,
    S3ConfigError,
    S3KeyNotFoundError,
    S3Result,
    S3ResultError,
)

from plait import Flow, task
from plait.errors import ResultError
from plait.results import Result
from plait.states import Cached

# --- the class on its own ------------------------------------------------------------------------


def test_is_a_core_result():
    assert issubclass(S3Result, Result)
    assert issubclass(S3ResultError, ResultError)


def test_pickle_round_trip(bucket, s3):
    result = S3Result(bucket=bucket, location="{flow_name}/{task_name}.pkl")

    stored = result.write({"rows": [1, 2, 3]}, flow_name="etl", task_name="extract")

    assert stored.location == "etl/extract.pkl"
    assert stored.value == {"rows": [1, 2, 3]}
    assert result.location == "{flow_name}/{task_name}.pkl"  # the template is kept
    raw = s3.get_object(Bucket=bucket, Key="etl/extract.pkl")["Body"].read()
    assert pickle.loads(raw) == {"rows": [1, 2, 3]}
    assert result.read("etl/extract.pkl").value == {"rows": [1, 2, 3]}


def test_json_round_trip_under_a_prefix(bucket, s3):
    result = S3Result(bucket=bucket, prefix="runs/", location="{name}.json", serializer="json")

    result.write([1, "two", None], name="values")

    raw = s3.get_object(Bucket=bucket, Key="runs/values.json")["Body"].read()
    assert json.loads(raw) == [1, "two", None]
    assert result.read("values.json").value == [1, "two", None]
    assert result.uri("values.json") == f"s3://{bucket}/runs/values.json"


def test_exists(bucket):
    result = S3Result(bucket=bucket, location="{k}.pkl")
    assert not result.exists(k="a")
    result.write(1, k="a")
    assert result.exists(k="a")
    assert result.exists("a.pkl")


def test_bytes_level_interface(bucket):
    result = S3Result(bucket=bucket)
    result.write_bytes("x/y.bin", b"\x00\xff")
    assert result.location_exists("x/y.bin")
    assert result.read_bytes("x/y.bin") == b"\x00\xff"


@pytest.mark.parametrize(
    ("url", "bucket", "prefix", "location", "serializer"),
    [
        ("s3://data/{flow_name}/{task_name}.pkl", "data", "", "{flow_name}/{task_name}.pkl", "PickleSerializer"),
        ("s3://data/runs/daily/{task_name}.json", "data", "runs/daily", "{task_name}.json", "JSONSerializer"),
        ("s3://data/results", "data", "results", None, "PickleSerializer"),
        ("s3://data", "data", "", None, "PickleSerializer"),
        ("S3://data/{task_name}", "data", "", "{task_name}", "PickleSerializer"),
    ],
)
def test_from_url(url, bucket, prefix, location, serializer):
    result = S3Result.from_url(url)
    assert (result.bucket, result.prefix, result.location) == (bucket, prefix, location)
    assert type(result.serializer).__name__ == serializer


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3:///no-bucket/{x}", "is not an S3 URL"),
        ("http://data/{x}", "is not an S3 URL"),
        ("s3://data/{x}?versionId=1", "has a query or fragment"),
    ],
)
def test_from_url_refuses_bad_urls(url, message):
    with pytest.raises(S3ConfigError, match=message):
        S3Result.from_url(url)


def test_bad_bucket_is_refused():
    with pytest.raises(S3ConfigError, match=r"bucket must be a bucket name like 'my-bucket', got 'a/b'"):
        S3Result(bucket="a/b")


def test_equality_and_repr():
    a = S3Result(bucket="b", prefix="p", location="{x}.pkl", config={"region": "eu-west-1"})
    assert a == S3Result.from_url("s3://b/p/{x}.pkl").copy(config=a.config)
    assert a != S3Result(bucket="b", prefix="p", location="{x}.json", serializer="json")
    assert repr(a) == "<S3Result s3://b/p location='{x}.pkl'>"


def test_pickles_without_a_client(bucket):
    result = S3Result(bucket=bucket, location="{x}.pkl")
    result.write(5, x="five")  # makes and caches a client in this process
    copy = pickle.loads(pickle.dumps(result))
    assert copy == result
    assert copy.read("five.pkl").value == 5


# --- errors --------------------------------------------------------------------------------------


def test_reading_a_missing_result_names_the_bucket_and_key(bucket):
    with pytest.raises(S3ResultError) as info:
        S3Result(bucket=bucket, prefix="runs").read("etl/missing.pkl")
    assert isinstance(info.value, ResultError)
    assert isinstance(info.value.__cause__, S3KeyNotFoundError)
    assert f"s3://{bucket}/runs/etl/missing.pkl does not exist (while reading a result from)" in str(info.value)


def test_writing_to_a_missing_bucket_names_it():
    with pytest.raises(S3ResultError, match=r"S3 bucket 'no-results-bucket' does not exist") as info:
        S3Result(bucket="no-results-bucket").write(1, flow_name="f", flow_run_id="r", task_slug="t", map_suffix="")
    assert isinstance(info.value.__cause__, S3BucketNotFoundError)


def test_exists_on_a_missing_bucket_is_an_error_not_false():
    with pytest.raises(S3ResultError, match=r"S3 bucket 'no-results-bucket' does not exist"):
        S3Result(bucket="no-results-bucket").exists("x.pkl")


def test_access_denied_on_a_result_names_the_credential_source(auth_server, monkeypatch):
    from conftest import reset_settings

    monkeypatch.setenv("PLAIT__PLUGINS__S3__ENDPOINT_URL", auth_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth_server.secret)
    reset_settings()
    result = S3Result(bucket=auth_server.bucket)

    for attempt in (lambda: result.exists(auth_server.key), lambda: result.read(auth_server.key)):
        with pytest.raises(S3ResultError, match="the credentials came from env") as info:
            attempt()
        assert isinstance(info.value.__cause__, S3AccessDeniedError)
        assert auth_server.secret not in str(info.value)


# --- in flows ------------------------------------------------------------------------------------


def test_checkpoint_writes_each_result_to_s3(bucket, s3):
    result = S3Result(bucket=bucket, location="{flow_name}/{task_name}.json", serializer="json")

    @task(checkpoint=True, result=result)
    def extract():
        return [1, 2, 3]

    @task(checkpoint=True, result=result)
    def total(values):
        return sum(values)

    with Flow("sums") as flow:
        t = total(extract())

    state = flow.run()

    assert state.is_successful()
    assert state.result[t].result == 6
    assert json.loads(s3.get_object(Bucket=bucket, Key="sums/extract.json")["Body"].read()) == [1, 2, 3]
    assert json.loads(s3.get_object(Bucket=bucket, Key="sums/total.json")["Body"].read()) == 6


def test_an_s3_target_skips_the_work_on_the_second_run(bucket, s3):
    executions = []

    @task(result=S3Result(bucket=bucket, prefix="targets"), target="{flow_name}/{task_name}.pkl")
    def expensive(n):
        executions.append(n)
        return n * 10

    @task
    def plus_one(value):
        return value + 1

    with Flow("daily") as flow:
        e = expensive(4)
        p = plus_one(e)

    first = flow.run()
    assert first.is_successful() and first.result[p].result == 41
    assert executions == [4]
    assert pickle.loads(s3.get_object(Bucket=bucket, Key="targets/daily/expensive.pkl")["Body"].read()) == 40

    second = flow.run()

    assert executions == [4]  # the work did not run again
    assert isinstance(second.result[e], Cached)
    assert second.result[e].result == 40
    assert second.result[p].result == 41

    s3.delete_object(Bucket=bucket, Key="targets/daily/expensive.pkl")
    flow.run()
    assert executions == [4, 4]  # the target is gone: the work runs again


def test_mapped_targets_are_one_object_per_child(bucket, s3):
    executions = []

    @task(result=S3Result(bucket=bucket), target="squares/{x}.pkl")
    def square(x):
        executions.append(x)
        return x * x

    with Flow("squares") as flow:
        s = square.map([1, 2, 3])

    flow.run()
    s3.delete_object(Bucket=bucket, Key="squares/2.pkl")
    state = flow.run()

    assert executions == [1, 2, 3, 2]
    assert [c.name for c in state.result[s].map_states] == ["Cached", "Success", "Cached"]
    assert state.result[s].result == [1, 4, 9]


def test_a_target_that_cannot_be_checked_fails_the_task_with_the_reason():
    @task(result=S3Result(bucket="missing-target-bucket"), target="{task_name}.pkl")
    def work():
        raise AssertionError("must not run")

    with Flow("no-bucket") as flow:
        w = work()

    state = flow.run()

    assert state.result[w].is_failed()
    assert "S3 bucket 'missing-target-bucket' does not exist" in state.result[w].message


# --- through the plugin registry: result="s3://..." ----------------------------------------------


def test_a_result_url_checkpoints_with_no_extra_code(bucket, s3):
    @task(result=f"s3://{bucket}/{{flow_name}}/{{task_name}}.pkl", checkpoint=True)
    def extract():
        return {"a": 1}

    with Flow("by-url") as flow:
        extract()

    assert flow.run().is_successful()
    assert isinstance(extract.result, S3Result)
    assert pickle.loads(s3.get_object(Bucket=bucket, Key="by-url/extract.pkl")["Body"].read()) == {"a": 1}


def test_a_result_url_target_skips_the_work_on_the_second_run(bucket):
    executions = []

    @task(result=f"s3://{bucket}/cache", target="{task_name}/{today}.pkl")
    def daily():
        executions.append(1)
        return {"rows": 42}

    with Flow("by-url-target") as flow:
        d = daily()

    flow.run()
    second = flow.run()

    assert executions == [1]
    assert second.result[d].is_cached() and second.result[d].result == {"rows": 42}
