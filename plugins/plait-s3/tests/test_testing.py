"""plait_s3.testing: the moto server other packages' tests can start."""

from __future__ import annotations

import urllib.error
import urllib.request

import boto3
import pytest
from plait_s3.testing import moto_s3_server, threaded_moto_s3_server


def test_moto_s3_server_serves_s3_for_the_block_and_stops(tmp_path):
    with moto_s3_server(log_dir=tmp_path) as endpoint:
        assert endpoint.startswith("http://127.0.0.1:")
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        )
        client.create_bucket(Bucket="probe")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["probe"]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5)


def test_threaded_moto_s3_server_serves_s3_from_a_thread_and_stops():
    with threaded_moto_s3_server() as endpoint:
        assert endpoint.startswith("http://127.0.0.1:")
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
        )
        client.create_bucket(Bucket="threaded-probe")
        assert "threaded-probe" in [b["Name"] for b in client.list_buckets()["Buckets"]]
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5)
