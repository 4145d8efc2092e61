"""The S3 tasks inside real Plait flows, on each executor."""

from __future__ import annotations

import json

import pytest
from plait_s3 import S3Copy, S3Delete, S3Download, S3List, S3Upload

from plait import Flow, Parameter, task, unmapped


@task
def parse(raw: bytes) -> dict:
    return json.loads(raw)


@task
def summarize(records: list[dict]) -> str:
    return json.dumps({"count": len(records), "total": sum(r["amount"] for r in records)})


def _daily_flow() -> tuple[Flow, object]:
    """List a day's JSON files, download and parse each, write a summary next to them."""
    with Flow("daily-summary") as flow:
        bucket = Parameter("bucket", required=True)
        day = Parameter("day", required=True)
        keys = S3List(name="list")(bucket=bucket, prefix=day)
        raws = S3Download(name="download").map(bucket=unmapped(bucket), key=keys)
        summary = summarize(parse.map(raws))
        written = S3Upload(name="write-summary", key="summaries/latest.json")(data=summary, bucket=bucket)
    return flow, written


@pytest.mark.parametrize("executor", ["local", "threads", "processes"])
def test_list_download_summarize_upload(bucket, s3, executor):
    for i in range(12):
        s3.put_object(Bucket=bucket, Key=f"2024-05-01/{i:02d}.json", Body=json.dumps({"amount": i}).encode())
    s3.put_object(Bucket=bucket, Key="2024-05-02/00.json", Body=b'{"amount": 1000}')
    flow, written = _daily_flow()

    state = flow.run(parameters={"bucket": bucket, "day": "2024-05-01/"}, executor=executor)

    assert state.is_successful(), state
    assert state.result[written].result == f"s3://{bucket}/summaries/latest.json"
    body = s3.get_object(Bucket=bucket, Key="summaries/latest.json")["Body"].read()
    assert json.loads(body) == {"count": 12, "total": sum(range(12))}


def test_mapped_uploads_copies_and_a_delete(bucket, s3):
    names = [f"f{i}.txt" for i in range(20)]
    with Flow("shuffle") as flow:
        uploaded = S3Upload(bucket=bucket).map(data=names, key=[f"in/{n}" for n in names])
        copied = S3Copy(bucket=bucket).map(
            source_key=[f"in/{n}" for n in names], key=[f"out/{n}" for n in names], upstream_tasks=[uploaded]
        )
        leftovers = S3List(bucket=bucket, prefix="in/")(upstream_tasks=[copied])
        S3Delete(bucket=bucket)(keys=leftovers)

    state = flow.run(executor="threads")

    assert state.is_successful(), state
    assert S3List(bucket=bucket).run() == sorted(f"out/{n}" for n in names)
    assert s3.get_object(Bucket=bucket, Key="out/f7.txt")["Body"].read() == b"f7.txt"


def test_a_download_to_a_file_feeds_the_next_task(bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="data.csv", Body=b"a,b\n1,2\n3,4\n")

    @task
    def count_lines(path: str) -> int:
        with open(path) as fh:
            return sum(1 for _ in fh)

    with Flow("to-disk") as flow:
        n = count_lines(S3Download(bucket=bucket, key="data.csv")(path=str(tmp_path / "data.csv")))

    state = flow.run()
    assert state.result[n].result == 3
