"""Settings and clients: one client per process per setting, made lazily, shared by threads."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import reset_settings
from plait_s3 import S3Config, S3ConfigError, S3CredentialsError, S3List, S3Upload, get_connection
from plait_s3.client import plugin_settings


def test_one_connection_per_setting_shared_by_threads(bucket):
    with ThreadPoolExecutor(max_workers=8) as pool:
        connections = list(pool.map(lambda _: get_connection(), range(32)))
    assert len({id(c) for c in connections}) == 1
    assert connections[0] is get_connection(S3Config())  # no settings given = the same settings

    other = get_connection(S3Config(region="eu-west-1"))
    assert other is not connections[0]
    assert other.client.meta.region_name == "eu-west-1"
    assert get_connection(S3Config(region="eu-west-1")) is other


def test_tasks_with_the_same_settings_share_one_client(bucket):
    first, second = S3Upload(bucket=bucket), S3List(bucket=bucket, config={"region": "us-east-1"})
    first.run(data=b"x", key="k")
    assert second.run() == ["k"]
    assert first._connection() is S3Upload(bucket=bucket)._connection()
    assert second._connection() is get_connection(S3Config(region="us-east-1"))


def test_concurrent_uploads_from_threads_through_one_client(bucket, s3):
    upload = S3Upload(bucket=bucket)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: upload.run(data=f"v{i}", key=f"t/{i:03d}"), range(64)))
    assert S3List(bucket=bucket, prefix="t/").run() == [f"t/{i:03d}" for i in range(64)]


def _child_connection_pid(queue):
    queue.put((os.getpid(), get_connection().pid))


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_a_forked_child_makes_its_own_client(bucket):
    parent = get_connection()
    assert parent.pid == os.getpid()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_connection_pid, args=(queue,))
    child.start()
    child_pid, connection_pid = queue.get(timeout=60)
    child.join(timeout=60)
    assert child_pid != os.getpid()
    assert connection_pid == child_pid  # not the parent's client, inherited through fork


def test_settings_come_from_plugins_s3_and_task_settings_win(monkeypatch, moto_server):
    monkeypatch.setenv("PLAIT__PLUGINS__S3__REGION", "eu-central-1")
    monkeypatch.setenv("PLAIT__PLUGINS__S3__MULTIPART_THRESHOLD", "6291456")
    reset_settings()

    section = plugin_settings()
    assert (section.region, section.endpoint_url, section.multipart_threshold) == (
        "eu-central-1",
        moto_server.endpoint,
        6291456,
    )
    conn = get_connection(S3Config(region="ap-south-1"))
    assert conn.config.region == "ap-south-1"  # the task's own setting wins
    assert conn.config.endpoint_url == moto_server.endpoint  # the rest comes from [plugins.s3]
    assert conn.transfer_config.multipart_threshold == 6291456
    assert conn.config.origin == "S3Config over config [plugins.s3]"


def test_repr_shows_where_the_credentials_came_from_not_what_they_are():
    conn = get_connection()
    assert repr(conn) == f"<S3Connection endpoint={conn.config.endpoint_url!r} credentials from env>"


def test_importing_the_plugin_and_building_tasks_does_not_import_boto3():
    code = (
        "import sys\n"
        "import plait_s3.plugin as plugin\n"
        "from plait_s3 import S3Upload, S3Result\n"
        "plugin.plait_register_tasks(); plugin.plait_register_result_types()\n"
        "S3Upload(bucket='b', key='k'); S3Result.from_url('s3://b/{task_name}.pkl')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 's3transfer'))\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("field", ["access_key_id_secret", "secret_access_key_secret"])
def test_a_key_pasted_into_a_secret_setting_is_named_never_shown(field, monkeypatch):
    """``*_secret`` settings hold the names of secrets; a key pasted there by mistake is not echoed."""
    pasted = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("PLAIT_S3_TEST_ID", "AKIAPLAITTESTKEYID00")
    monkeypatch.setenv("PLAIT_S3_TEST_KEY", "plait-test-secret-access-key-000")
    names = {"access_key_id_secret": "PLAIT_S3_TEST_ID", "secret_access_key_secret": "PLAIT_S3_TEST_KEY"}
    names[field] = pasted
    with pytest.raises(S3CredentialsError) as info:
        get_connection(S3Config(**names))
    message = str(info.value)
    assert field in message and "not shown" in message
    assert pasted not in message
    with pytest.raises(S3ConfigError) as info:
        S3Config(**{**names, field: 12345678})
    assert field in str(info.value) and "12345678" not in str(info.value)
