"""Fixtures: real moto S3 servers, each its own process listening on 127.0.0.1.

``moto_server`` is the session's main server (no authentication). ``auth_server`` is a second
one, started only by the tests that need it, with moto's IAM authentication switched on after
its setup so that an IAM user without permissions gets a real ``403 AccessDenied``.

Every test runs with its own AWS configuration: dummy keys in the environment, empty
``~/.aws`` files and an empty Plait config file, so nothing from the machine leaks in; the
plugin finds the server through ``PLAIT__PLUGINS__S3__ENDPOINT_URL``.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import plait_s3
import pytest
from plait_s3.testing import MotoServerError, start_moto_server, stop_moto_server

REGION = "us-east-1"
#: The dummy keys every test runs with (moto accepts any keys while authentication is off).
ENV_KEY_ID = "AKIAPLAITTESTENVKEY1"
ENV_SECRET = "plait-env-secret-8f3c2a1b9d"


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen | None  # None: a ThreadedMotoServer in this process


def _start_moto(log_dir: Path, env: dict[str, str] | None = None) -> MotoServer:
    try:
        process, endpoint = start_moto_server(log_dir, env)
    except MotoServerError as exc:  # the one reason to skip: the service cannot run here
        pytest.skip(str(exc))
    return MotoServer(endpoint, process)


def _stop(server: MotoServer) -> None:
    if server.process is not None:
        stop_moto_server(server.process)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    # A process of its own, not moto's ThreadedMotoServer: the memory tests measure this process's
    # peak with tracemalloc, which would count the objects moto keeps if it ran here. (Tests that
    # measure nothing, like the S3-to-SQL example's, use plait_s3.testing.threaded_moto_s3_server.)
    server = _start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    _stop(server)


@pytest.fixture(autouse=True)
def aws_env(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An isolated AWS and Plait configuration pointing at the session's moto server."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "PLAIT__PLUGINS__S3__")):
            monkeypatch.delenv(name)
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    plait_config = tmp_path / "plait-config.toml"
    plait_config.write_text("")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PLAIT_CONFIG", str(plait_config))
    monkeypatch.setenv("PLAIT__PLUGINS__S3__ENDPOINT_URL", moto_server.endpoint)
    reset_settings()
    yield
    reset_settings()


def reset_settings() -> None:
    """Make the plugin read the environment and config again (new clients, new config)."""
    from plait.config import reset_config

    reset_config()
    plait_s3.clear_clients()


@pytest.fixture
def plait_plugin():
    """The plugin under test, for plait.testing's fixtures (plait_hooks, plait_run)."""
    from plait_s3 import plugin

    return plugin


@pytest.fixture
def s3(moto_server: MotoServer):
    """A plain boto3 client on the moto server, for setting up and checking what tasks did."""
    import boto3

    return boto3.client("s3", endpoint_url=moto_server.endpoint, region_name=REGION)


@pytest.fixture
def bucket(s3) -> str:
    """A new, empty bucket for one test."""
    name = f"plait-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


# --- a second server with IAM authentication on -------------------------------------------------


@dataclass
class AuthServer:
    endpoint: str
    bucket: str
    key: str
    #: an IAM user's keys: valid, but the user has no permission on anything
    key_id: str
    secret: str


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """A moto server where an IAM user without permissions gets real 403 AccessDenied answers.

    Setup runs while authentication is off (moto's default); then ``/moto-api/reset-auth``
    sets ``INITIAL_NO_AUTH_ACTION_COUNT`` to 0, so every later request is checked against IAM.
    """
    import boto3

    server = _start_moto(tmp_path_factory.mktemp("moto-auth"))
    session = boto3.session.Session(aws_access_key_id="setup", aws_secret_access_key="setup", region_name=REGION)
    admin = session.client("s3", endpoint_url=server.endpoint)
    iam = session.client("iam", endpoint_url=server.endpoint)
    bucket, key = "locked-bucket", "private/report.csv"
    admin.create_bucket(Bucket=bucket)
    admin.put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")
    iam.create_user(UserName="no-permissions")
    access = iam.create_access_key(UserName="no-permissions")["AccessKey"]
    request = urllib.request.Request(
        f"{server.endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    yield AuthServer(server.endpoint, bucket, key, access["AccessKeyId"], access["SecretAccessKey"])
    _stop(server)
