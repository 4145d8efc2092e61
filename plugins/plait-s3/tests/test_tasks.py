"""The S3 tasks against a real moto S3 server (see conftest.py)."""

from __future__ import annotations

import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from plait_s3 import (
    S3Config,
    S3ConfigError,
    S3Copy,
    S3Delete,
    S3Download,
    S3KeyNotFoundError,
    S3List,
    S3Upload,
    get_connection,
)

MiB = 1024 * 1024
SMALL_PARTS = {"multipart_threshold": 5 * MiB, "multipart_chunksize": 5 * MiB}


def _write_random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(os.urandom(MiB))
    return path


# --- S3Upload --------------------------------------------------------------------------------


def test_upload_bytes_and_text(bucket, s3):
    upload = S3Upload(bucket=bucket)

    assert upload.run(data=b"\x00\x01raw", key="raw.bin") == f"s3://{bucket}/raw.bin"
    assert upload.run(data="h\u00e9llo", key="text.txt") == f"s3://{bucket}/text.txt"

    assert s3.get_object(Bucket=bucket, Key="raw.bin")["Body"].read() == b"\x00\x01raw"
    assert s3.get_object(Bucket=bucket, Key="text.txt")["Body"].read() == "h\u00e9llo".encode()


def test_upload_a_file_by_path_or_pathlike(bucket, s3, tmp_path):
    file = tmp_path / "rows.csv"
    file.write_text("a,b\n1,2\n")
    upload = S3Upload(bucket=bucket, extra_args={"ContentType": "text/csv"})

    upload.run(path=str(file), key="by-str.csv")
    upload.run(data=file, key="by-pathlike.csv")  # a PathLike given as data is a file, not text

    for key in ("by-str.csv", "by-pathlike.csv"):
        obj = s3.get_object(Bucket=bucket, Key=key)
        assert obj["Body"].read() == b"a,b\n1,2\n"
        assert obj["ContentType"] == "text/csv"


def test_large_file_goes_up_in_parts_without_being_read_into_memory(bucket, s3, tmp_path):
    size = 20 * MiB
    file = _write_random_file(tmp_path / "big.bin", size)
    # Two parts in flight at a time: each holds about 1-2 MiB of buffers (botocore reads the
    # body in 1 MiB blocks to sign and checksum it), so memory is bounded by the concurrency,
    # not by the file's size.
    upload = S3Upload(bucket=bucket, key="big.bin", config={**SMALL_PARTS, "max_concurrency": 2})
    # Make the client first: loading botocore's service models takes more memory than the upload.
    upload.run(data=b"warm-up", key="warm-up")

    tracemalloc.start()
    try:
        upload.run(path=file)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == size
    # A multipart object's ETag is "<md5 of the part md5s>-<number of parts>": 4 parts of 5 MiB.
    assert head["ETag"].strip('"').endswith("-4")
    print(f"upload of a {size / MiB:.0f} MiB file: peak traced memory {peak / MiB:.1f} MiB")
    assert peak < size / 2, f"peak memory {peak} bytes: the {size}-byte file was read into memory"
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == file.read_bytes()


def test_small_upload_below_the_threshold_is_a_single_part(bucket, s3):
    S3Upload(bucket=bucket, config=SMALL_PARTS).run(data=b"x" * 1000, key="small")
    assert "-" not in s3.head_object(Bucket=bucket, Key="small")["ETag"]


def test_upload_needs_exactly_one_of_data_or_path(bucket):
    upload = S3Upload(bucket=bucket, key="k", name="put")
    with pytest.raises(S3ConfigError, match=r"S3Upload 'put': give exactly one of data= .* or path="):
        upload.run()
    with pytest.raises(S3ConfigError, match="exactly one"):
        upload.run(data=b"x", path="/etc/hostname")


def test_upload_of_a_missing_file_names_it(bucket, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(S3ConfigError, match=f"the file '{missing}' does not exist"):
        S3Upload(bucket=bucket, key="k").run(path=missing)


def test_upload_refuses_data_that_is_not_bytes_or_text(bucket):
    with pytest.raises(S3ConfigError, match="data must be bytes or text, got dict"):
        S3Upload(bucket=bucket, key="k").run(data={"a": 1})


# --- bucket and key: construction or run time -------------------------------------------------


def test_run_time_bucket_and_key_override_the_constructor(bucket, s3):
    other = f"{bucket}-other"
    s3.create_bucket(Bucket=other)
    upload = S3Upload(bucket=bucket, key="default.txt")

    upload.run(data="one")
    upload.run(data="two", key="override.txt")
    upload.run(data="three", bucket=other)

    assert s3.get_object(Bucket=bucket, Key="default.txt")["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="override.txt")["Body"].read() == b"two"
    assert s3.get_object(Bucket=other, Key="default.txt")["Body"].read() == b"three"


@pytest.mark.parametrize("make", [S3Upload, S3Download, S3List, S3Delete, S3Copy])
def test_a_task_without_a_bucket_says_how_to_give_one(make):
    task = make(name="nowhere")
    kwargs = {"data": b"x"} if make is S3Upload else {}
    with pytest.raises(S3ConfigError, match=rf"{make.__name__} 'nowhere' has no bucket: pass {make.__name__}\(bucket"):
        task.run(**kwargs)


def test_a_task_without_a_key_says_how_to_give_one(bucket):
    with pytest.raises(S3ConfigError, match=r"S3Download 'get' has no key: pass S3Download\(key=...\) or call"):
        S3Download(bucket=bucket, name="get").run()


def test_bad_bucket_values_are_refused_at_construction():
    with pytest.raises(S3ConfigError, match=r"bucket must be a non-empty string, got 42"):
        S3List(bucket=42)
    with pytest.raises(S3ConfigError, match=r"page_size must be between 1 and 1000, got 5000"):
        S3List(bucket="b", page_size=5000)


# --- S3Download ------------------------------------------------------------------------------


def test_download_to_bytes(bucket, s3):
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"content")
    assert S3Download(bucket=bucket, key="a/b.txt").run() == b"content"


def test_download_to_a_file_creates_folders_and_leaves_no_partial_file(bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="data.bin", Body=b"0123456789" * 1000)
    target = tmp_path / "deep" / "dir" / "data.bin"

    assert S3Download(bucket=bucket).run(key="data.bin", path=target) == str(target)

    assert target.read_bytes() == b"0123456789" * 1000
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.bin"]


def test_a_failed_download_to_a_file_leaves_nothing_behind(bucket, tmp_path):
    folder = tmp_path / "downloads"
    with pytest.raises(S3KeyNotFoundError):
        S3Download(bucket=bucket).run(key="missing", path=folder / "out.bin")
    assert list(folder.iterdir()) == []


def test_large_download_to_a_file_round_trips(bucket, tmp_path):
    source = _write_random_file(tmp_path / "src.bin", 11 * MiB)
    S3Upload(bucket=bucket, config=SMALL_PARTS).run(path=source, key="large")
    out = S3Download(bucket=bucket, config=SMALL_PARTS).run(key="large", path=tmp_path / "copy.bin")
    assert Path(out).read_bytes() == source.read_bytes()


def _requests(seen: list[str], config: dict | None = None):
    """Count the HTTP requests the plugin's shared client sends (boto3's own event hook)."""

    def on_send(request, **_kwargs):
        seen.append(request.method)

    get_connection(S3Config(**config) if config else None).client.meta.events.register("before-send.s3", on_send)
    return on_send


def test_a_small_object_is_one_request(bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="small", Body=b"x" * 2048)
    seen: list[str] = []
    _requests(seen)
    assert S3Download(bucket=bucket).run(key="small") == b"x" * 2048
    assert seen == ["GET"]  # not a HEAD for the size, then a GET
    seen.clear()
    out = S3Download(bucket=bucket).run(key="small", path=tmp_path / "small.bin")
    assert Path(out).read_bytes() == b"x" * 2048 and seen == ["GET"]


def test_an_empty_object_downloads(bucket, s3, tmp_path):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert S3Download(bucket=bucket).run(key="empty") == b""
    assert Path(S3Download(bucket=bucket).run(key="empty", path=tmp_path / "e")).read_bytes() == b""


def test_an_object_over_the_threshold_comes_down_in_parts(bucket, tmp_path):
    source = _write_random_file(tmp_path / "src.bin", 11 * MiB)
    S3Upload(bucket=bucket, config=SMALL_PARTS).run(path=source, key="large")
    seen: list[str] = []
    _requests(seen, SMALL_PARTS)
    assert S3Download(bucket=bucket, config=SMALL_PARTS).run(key="large") == source.read_bytes()
    # the first GET only learns the size (its body is left unread); then the parts, side by side
    assert seen.count("GET") >= 1 + 3


# --- S3List ----------------------------------------------------------------------------------

MANY = 2500


@pytest.fixture(scope="session")
def many_keys_bucket(moto_server):
    """A bucket with 2,500 keys (more than two full pages of 1,000), filled once per session."""
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=moto_server.endpoint, region_name="us-east-1", aws_access_key_id="x" * 16,
        aws_secret_access_key="y" * 16,
    )  # fmt: skip
    name = "plait-many-keys"
    s3.create_bucket(Bucket=name)
    keys = [f"items/{i:05d}.json" for i in range(MANY)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=name, Key=k, Body=b"{}"), keys))
    return name, keys


def _count_list_requests(calls: list[int]):
    def on_call(**_kwargs):
        calls.append(1)

    get_connection().client.meta.events.register("before-call.s3.ListObjectsV2", on_call)
    return on_call


def test_list_follows_pagination_past_1000_keys(many_keys_bucket):
    name, keys = many_keys_bucket
    calls: list[int] = []
    _count_list_requests(calls)

    assert S3List(bucket=name).run() == keys
    assert len(calls) == 3  # S3 pages hold at most 1,000 keys: 1000 + 1000 + 500


def test_list_with_a_small_page_size_still_returns_everything(many_keys_bucket):
    name, keys = many_keys_bucket
    calls: list[int] = []
    _count_list_requests(calls)

    listed = S3List(bucket=name, prefix="items/01", page_size=70).run()

    assert listed == [k for k in keys if k.startswith("items/01")]
    assert len(listed) == 1000
    assert len(calls) == 15  # ceil(1000 / 70)


def test_list_with_a_prefix_and_a_delimiter_shows_one_level(bucket, s3):
    for key in ("2024/01/a.csv", "2024/01/b.csv", "2024/02/c.csv", "2024/readme.txt", "2025/x.csv", "top.txt"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    listing = S3List(bucket=bucket, delimiter="/")

    assert listing.run() == ["2024/", "2025/", "top.txt"]
    assert listing.run(prefix="2024/") == ["2024/01/", "2024/02/", "2024/readme.txt"]
    assert S3List(bucket=bucket, prefix="2024/0").run() == ["2024/01/a.csv", "2024/01/b.csv", "2024/02/c.csv"]


def test_list_of_an_empty_bucket_is_empty(bucket):
    assert S3List(bucket=bucket).run() == []


# --- S3Delete --------------------------------------------------------------------------------


def test_delete_one_key(bucket, s3):
    s3.put_object(Bucket=bucket, Key="gone", Body=b"")
    s3.put_object(Bucket=bucket, Key="kept", Body=b"")

    assert S3Delete(bucket=bucket, key="gone").run() == ["gone"]

    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["kept"]


def test_delete_many_keys_in_batches_of_1000(bucket, s3):
    keys = [f"k{i:04d}" for i in range(1203)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b""), keys))
    s3.put_object(Bucket=bucket, Key="survivor", Body=b"")

    assert S3Delete(bucket=bucket).run(keys=keys) == keys

    assert S3List(bucket=bucket).run() == ["survivor"]


def test_deleting_a_missing_key_succeeds_unless_missing_ok_is_false(bucket, s3):
    s3.put_object(Bucket=bucket, Key="present", Body=b"")
    assert S3Delete(bucket=bucket).run(key="never-existed") == ["never-existed"]

    strict = S3Delete(bucket=bucket, missing_ok=False, name="strict")
    with pytest.raises(S3KeyNotFoundError, match=r"s3://.*/absent does not exist.*missing_ok=False") as info:
        strict.run(keys=["present", "absent"])

    assert (info.value.bucket, info.value.key) == (bucket, "absent")
    assert S3List(bucket=bucket).run() == ["present"]  # nothing was deleted


def test_delete_refuses_a_string_as_keys(bucket):
    with pytest.raises(S3ConfigError, match="keys= takes a list of keys"):
        S3Delete(bucket=bucket).run(keys="abc")


# --- S3Copy ----------------------------------------------------------------------------------


def test_copy_within_a_bucket_and_across_buckets(bucket, s3):
    other = f"{bucket}-dst"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=bucket, Key="src.txt", Body=b"payload")

    assert S3Copy(bucket=bucket).run(source_key="src.txt", key="dup.txt") == f"s3://{bucket}/dup.txt"
    archive = S3Copy(source_bucket=bucket, bucket=other)
    assert archive.run(source_key="src.txt", key="archived/src.txt") == f"s3://{other}/archived/src.txt"

    assert s3.get_object(Bucket=bucket, Key="dup.txt")["Body"].read() == b"payload"
    assert s3.get_object(Bucket=other, Key="archived/src.txt")["Body"].read() == b"payload"
    assert s3.get_object(Bucket=bucket, Key="src.txt")["Body"].read() == b"payload"  # a copy, not a move


def test_large_copy_is_done_in_parts(bucket, s3, tmp_path):
    source = _write_random_file(tmp_path / "src.bin", 11 * MiB)
    s3.upload_file(str(source), bucket, "big-src")
    S3Copy(bucket=bucket, config=SMALL_PARTS).run(source_key="big-src", key="big-dst")
    head = s3.head_object(Bucket=bucket, Key="big-dst")
    assert head["ContentLength"] == 11 * MiB
    assert head["ETag"].strip('"').endswith("-3")


def test_copy_without_a_source_key_says_how_to_give_one(bucket):
    with pytest.raises(S3ConfigError, match=r"S3Copy 'cp' has no source key: pass S3Copy\(source_key=...\)"):
        S3Copy(bucket=bucket, key="dst", name="cp").run()


def test_positional_arguments_name_what_to_act_on_first(bucket, s3):
    s3.put_object(Bucket=bucket, Key="docs/a.txt", Body=b"A")
    assert S3Download(bucket=bucket).run("docs/a.txt") == b"A"
    assert S3List(bucket=bucket).run("docs/") == ["docs/a.txt"]
    assert S3Delete(bucket=bucket).run("docs/a.txt") == ["docs/a.txt"]
    assert S3Upload(bucket=bucket).run(b"B", "docs/b.txt") == f"s3://{bucket}/docs/b.txt"


def test_in_memory_data_over_the_threshold_goes_up_in_parts_too(bucket, s3):
    data = os.urandom(11 * MiB)
    S3Upload(bucket=bucket, config=SMALL_PARTS).run(data=data, key="from-memory")
    head = s3.head_object(Bucket=bucket, Key="from-memory")
    assert head["ETag"].strip('"').endswith("-3")
    assert s3.get_object(Bucket=bucket, Key="from-memory")["Body"].read() == data


def test_dummy_test_keys_are_not_masked_but_real_length_keys_are(monkeypatch):
    from conftest import reset_settings

    from plait.secrets import mask

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    reset_settings()
    get_connection()
    assert mask("flow testing-daily") == "flow testing-daily"

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLENGTHKEY123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-forty-character-secret-access-key-0000")
    reset_settings()
    get_connection()
    assert mask("id AKIAREALLENGTHKEY123 / a-forty-character-secret-access-key-0000") == "id ******** / ********"
