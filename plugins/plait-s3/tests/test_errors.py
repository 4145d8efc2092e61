"""Every error path: missing buckets and keys, access denied (a real 403 from moto's IAM),
missing credentials, unreachable endpoints and bad settings; credentials never in the text."""

from __future__ import annotations

import io
import logging
import traceback

import pytest
from conftest import ENV_KEY_ID, ENV_SECRET, reset_settings
from plait_s3 import (
    S3AccessDeniedError,
    S3BucketNotFoundError,
    S3Config,
    S3ConfigError,
    S3Copy,
    S3CredentialsError,
    S3Delete,
    S3Download,
    S3Error,
    S3KeyNotFoundError,
    S3List,
    S3Upload,
    get_connection,
)

from plait import Flow
from plait.errors import ConfigError


def _full_text(exc: BaseException) -> str:
    """Everything a user could see of an exception: message, repr, traceback with its causes."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


# --- missing buckets and keys ----------------------------------------------------------------

MISSING_BUCKET_CALLS = {
    "upload bytes": lambda b, tmp: S3Upload(bucket=b).run(data=b"x", key="k/1.txt"),
    "upload file": lambda b, tmp: S3Upload(bucket=b).run(path=tmp, key="k/1.txt"),
    "download bytes": lambda b, tmp: S3Download(bucket=b).run(key="k/1.txt"),
    "download file": lambda b, tmp: S3Download(bucket=b).run(key="k/1.txt", path=tmp.parent / "out"),
    "delete": lambda b, tmp: S3Delete(bucket=b).run(key="k/1.txt"),
    "copy": lambda b, tmp: S3Copy(bucket=b).run(source_key="k/1.txt", key="k/2.txt"),
}


@pytest.mark.parametrize("call", list(MISSING_BUCKET_CALLS), ids=list(MISSING_BUCKET_CALLS))
def test_a_missing_bucket_is_named_with_the_key(call, tmp_path):
    file = tmp_path / "f.txt"
    file.write_text("x")
    with pytest.raises(S3BucketNotFoundError) as info:
        MISSING_BUCKET_CALLS[call]("no-such-bucket-here", file)
    message = str(info.value)
    assert "S3 bucket 'no-such-bucket-here' does not exist" in message
    assert "s3://no-such-bucket-here/k/1.txt" in message
    assert "create it, or fix the bucket name" in message
    assert info.value.bucket == "no-such-bucket-here"


def test_listing_a_missing_bucket_names_it():
    with pytest.raises(S3BucketNotFoundError, match=r"S3 bucket 'absent-bucket' does not exist \(while listing"):
        S3List(bucket="absent-bucket").run(prefix="x/")


def test_a_missing_key_is_named_with_its_bucket(bucket):
    with pytest.raises(S3KeyNotFoundError) as info:
        S3Download(bucket=bucket).run(key="reports/2024.csv")
    assert str(info.value).startswith(f"S3 object s3://{bucket}/reports/2024.csv does not exist (while downloading)")
    assert (info.value.bucket, info.value.key) == (bucket, "reports/2024.csv")
    assert isinstance(info.value, LookupError)


def test_a_missing_download_to_a_file_is_a_missing_key_too(bucket, tmp_path):
    # download_file asks with HEAD, whose 404 has no error code: the bucket is checked to tell.
    with pytest.raises(S3KeyNotFoundError, match=rf"s3://{bucket}/nope.bin does not exist"):
        S3Download(bucket=bucket).run(key="nope.bin", path=tmp_path / "nope.bin")


def test_copy_of_a_missing_source_names_the_source(bucket):
    with pytest.raises(S3KeyNotFoundError) as info:
        S3Copy(bucket=bucket).run(source_key="from/here.txt", key="to/there.txt")
    assert (info.value.bucket, info.value.key) == (bucket, "from/here.txt")
    assert f"s3://{bucket}/from/here.txt does not exist" in str(info.value)


def test_copy_into_a_missing_destination_bucket_names_the_destination(bucket, s3):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    with pytest.raises(S3BucketNotFoundError) as info:
        S3Copy(source_bucket=bucket, bucket="missing-destination").run(source_key="src", key="dst")
    assert info.value.bucket == "missing-destination"
    assert "S3 bucket 'missing-destination' does not exist" in str(info.value)


def test_a_failing_task_in_a_flow_fails_with_the_bucket_and_key(bucket):
    with Flow("fetch") as flow:
        got = S3Download(bucket=bucket, name="get-report")(key="missing/report.csv")

    state = flow.run()

    assert state.is_failed()
    task_state = state.result[got]
    assert task_state.is_failed()
    assert isinstance(task_state.result, S3KeyNotFoundError)
    assert f"s3://{bucket}/missing/report.csv" in str(task_state.result)


# --- access denied: a real 403 from moto's IAM --------------------------------------------------


@pytest.fixture
def denied(auth_server, monkeypatch):
    """Run against the authenticating server with the IAM user that may do nothing."""
    monkeypatch.setenv("PLAIT__PLUGINS__S3__ENDPOINT_URL", auth_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth_server.secret)
    reset_settings()
    return auth_server


DENIED_CALLS = {
    "download": lambda a: S3Download(bucket=a.bucket).run(key=a.key),
    "upload": lambda a: S3Upload(bucket=a.bucket).run(data=b"x", key=a.key),
    "list": lambda a: S3List(bucket=a.bucket).run(),
    "delete": lambda a: S3Delete(bucket=a.bucket).run(key=a.key),
}


@pytest.mark.parametrize("call", list(DENIED_CALLS), ids=list(DENIED_CALLS))
def test_access_denied_names_the_credential_source_from_the_environment(denied, call):
    with pytest.raises(S3AccessDeniedError) as info:
        DENIED_CALLS[call](denied)
    message = str(info.value)
    assert f"Access denied to s3://{denied.bucket}" in message
    assert "(AccessDenied)" in message or "(403 Forbidden)" in message  # HEAD requests get a bare 403
    assert "the credentials came from env" in message
    assert info.value.credential_source == "env"
    text = _full_text(info.value)
    assert denied.secret not in text and denied.key_id not in text


def test_access_denied_names_a_profile_from_the_shared_credentials_file(denied, tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[reporting]\naws_access_key_id = {denied.key_id}\naws_secret_access_key = {denied.secret}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("PLAIT__PLUGINS__S3__PROFILE", "reporting")
    reset_settings()

    with pytest.raises(S3AccessDeniedError) as info:
        S3Download(bucket=denied.bucket).run(key=denied.key)

    assert "the credentials came from shared-credentials-file (profile 'reporting')" in str(info.value)
    text = _full_text(info.value)
    assert denied.secret not in text and denied.key_id not in text


def test_access_denied_names_the_plait_secrets_from_config(denied, monkeypatch, caplog):
    monkeypatch.setenv("REPORTING_KEY_ID", denied.key_id)
    monkeypatch.setenv("REPORTING_SECRET", denied.secret)
    monkeypatch.setenv("PLAIT__PLUGINS__S3__ACCESS_KEY_ID_SECRET", "REPORTING_KEY_ID")
    monkeypatch.setenv("PLAIT__PLUGINS__S3__SECRET_ACCESS_KEY_SECRET", "REPORTING_SECRET")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGBUTUNUSED00")  # the config's secrets win over env
    reset_settings()

    with pytest.raises(S3AccessDeniedError) as info:
        S3Download(bucket=denied.bucket).run(key=denied.key)

    assert "the credentials came from config [plugins.s3] (secrets REPORTING_KEY_ID, REPORTING_SECRET)" in str(
        info.value
    )
    text = _full_text(info.value)
    assert denied.secret not in text and denied.key_id not in text


def test_an_unknown_access_key_is_access_denied_too(denied, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-real-secret-value")
    reset_settings()
    with pytest.raises(S3AccessDeniedError, match=r"\(InvalidAccessKeyId\): the credentials came from env") as info:
        S3List(bucket=denied.bucket).run()
    assert "not-the-real-secret-value" not in _full_text(info.value)


def test_credentials_never_reach_logs_states_or_reprs_of_a_failed_flow(denied, caplog):
    caplog.set_level(logging.DEBUG, logger="plait")
    caplog.set_level(logging.INFO)
    download = S3Download(bucket=denied.bucket, name="secret-report")
    with Flow("leaky?") as flow:
        got = download(key=denied.key)

    state = flow.run()

    task_state = state.result[got]
    assert task_state.is_failed()
    assert isinstance(task_state.result, S3AccessDeniedError)
    seen = "\n".join(
        [
            caplog.text,
            *(r.getMessage() for r in caplog.records),
            str(task_state.message),
            repr(task_state),
            repr(download),
            repr(get_connection()),
            repr(get_connection().config),
            _full_text(task_state.result),
        ]
    )
    assert "credentials came from env" in seen
    for planted in (denied.secret, denied.key_id, ENV_SECRET, ENV_KEY_ID):
        assert planted not in seen


# --- credentials, endpoints and settings --------------------------------------------------------


def test_no_credentials_anywhere_says_where_to_put_them(bucket, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    reset_settings()
    with pytest.raises(S3CredentialsError) as info:
        S3Download(bucket=bucket).run(key="k")
    message = str(info.value)
    assert f"No AWS credentials for s3://{bucket}/k" in message
    assert "boto3's credential chain (none found)" in message
    assert "AWS_ACCESS_KEY_ID" in message and "[plugins.s3]" in message


def test_a_named_secret_that_is_not_set_is_a_credentials_error(bucket, monkeypatch):
    monkeypatch.setenv("PLAIT__PLUGINS__S3__ACCESS_KEY_ID_SECRET", "NOT_SET_KEY_ID")
    monkeypatch.setenv("PLAIT__PLUGINS__S3__SECRET_ACCESS_KEY_SECRET", "NOT_SET_SECRET")
    reset_settings()
    with pytest.raises(S3CredentialsError, match=r"access_key_id_secret names no secret that is set") as info:
        S3List(bucket=bucket).run()
    assert "NOT_SET_KEY_ID" not in str(info.value)  # the setting is named, never its value


def test_an_unreachable_endpoint_is_named(bucket, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("PLAIT__PLUGINS__S3__ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    reset_settings()
    with pytest.raises(S3Error, match=rf"Could not connect to the S3 endpoint http://127.0.0.1:{port} while listing"):
        S3List(bucket=bucket).run()


def test_an_unknown_profile_is_a_config_error(bucket, monkeypatch):
    with pytest.raises(S3ConfigError, match=r"AWS profile 'nobody' is not in ~/.aws/credentials"):
        S3List(bucket=bucket, config={"profile": "nobody"}).run()


def test_an_unknown_setting_in_plugins_s3_lists_the_known_ones(bucket, monkeypatch):
    monkeypatch.setenv("PLAIT__PLUGINS__S3__ENDPOINT", "http://example.com")
    reset_settings()
    with pytest.raises(S3ConfigError, match=r"config \[plugins.s3\]: unknown setting\(s\) endpoint; known settings:.*"):
        S3List(bucket=bucket).run()


def test_bad_settings_are_refused_with_the_fix():
    with pytest.raises(S3ConfigError, match=r"multipart_chunksize=1024 is below S3's minimum part size"):
        S3Config(multipart_chunksize=1024)
    with pytest.raises(S3ConfigError, match=r"access_key_id_secret and secret_access_key_secret go together"):
        S3Config(access_key_id_secret="ONLY_ONE")
    with pytest.raises(S3ConfigError, match=r"region must be a non-empty string, got 5"):
        S3Config(region=5)
    with pytest.raises(S3ConfigError, match=r"config must be an S3Config or a dict"):
        S3List(bucket="b", config="http://127.0.0.1:9000")


def test_an_invalid_bucket_name_is_a_config_error():
    with pytest.raises(S3ConfigError, match=r"Invalid S3 request while listing s3://bad bucket name"):
        S3List(bucket="bad bucket name").run()


def test_keys_found_by_boto3_are_masked_even_in_botocores_debug_logs(denied):
    """botocore's DEBUG logs carry the access key id (in the Authorization header); the plugin
    registers the keys it uses with Plait's masking, so a handler with SecretsFilter (every
    handler Plait attaches has one) prints ******** instead."""
    from plait.secrets import MASK, SecretsFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.addFilter(SecretsFilter())
    root, botocore_logger = logging.getLogger(), logging.getLogger("botocore")
    old_levels = root.level, botocore_logger.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    botocore_logger.setLevel(logging.DEBUG)
    try:
        with Flow("debug-logs") as flow:
            got = S3Download(bucket=denied.bucket, key=denied.key)()
        state = flow.run()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_levels[0])
        botocore_logger.setLevel(old_levels[1])

    assert state.result[got].is_failed()
    output = stream.getvalue()
    assert "Authorization" in output and "Credential=" + MASK in output  # botocore did log the header
    assert "the credentials came from env" in output  # the run logger's failure message
    assert denied.key_id not in output and denied.secret not in output


def test_any_other_s3_refusal_keeps_its_code_and_message(bucket, s3):
    s3.put_object(Bucket=bucket, Key="same.txt", Body=b"x")
    # S3 refuses to copy an object onto itself without changing anything.
    with pytest.raises(S3Error) as info:
        S3Copy(bucket=bucket).run(source_key="same.txt", key="same.txt")
    assert type(info.value) is S3Error
    message = str(info.value)
    assert f"S3 request failed while copying s3://{bucket}/same.txt to s3://{bucket}/same.txt" in message
    assert "InvalidRequest" in message


def test_a_setting_of_the_wrong_type_in_plugins_s3_is_named(bucket, monkeypatch):
    monkeypatch.setenv("PLAIT__PLUGINS__S3__MULTIPART_THRESHOLD", "big")
    reset_settings()
    # read as the declared type (an int): the message names the variable
    with pytest.raises(
        ConfigError,
        match=r"PLAIT__PLUGINS__S3__MULTIPART_THRESHOLD = 'big' sets plugins\.s3\.multipart_threshold, "
        r"which must be a whole number",
    ):
        S3List(bucket=bucket).run()
    monkeypatch.setenv("PLAIT__PLUGINS__S3__MULTIPART_THRESHOLD", "0")
    reset_settings()
    with pytest.raises(S3ConfigError, match=r"config \[plugins.s3\]: multipart_threshold must be a positive integer"):
        S3List(bucket=bucket).run()
