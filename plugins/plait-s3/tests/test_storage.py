"""S3Storage against the moto server: upload at registration, load where the flow runs."""

from __future__ import annotations

import pytest
from plait_s3 import S3Storage

from plait.errors import StorageError
from plait.storage import available_storage, storage_for, storage_from_reference

FLOW = """
from plait import Flow, Parameter, task

@task
def double(x):
    return 2 * x

with Flow({name!r}) as flow:
    double(Parameter("n", default=21))
"""


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "etl.py"
    path.write_text(FLOW.format(name="etl"))
    return path


def test_the_hook_registers_s3_as_a_storage_kind(plait_hooks):
    assert available_storage()["s3"] is S3Storage


def test_a_folder_location_uploads_the_file_under_its_name_and_loads_it_back(s3, bucket, flow_file):
    storage = storage_for(flow_file, "etl", f"s3://{bucket}/deploy/flows/")
    assert isinstance(storage, S3Storage)
    reference = storage.reference()
    assert reference["bucket"] == bucket and reference["key"] == "deploy/flows/etl.py"
    assert reference["url"] == f"s3://{bucket}/deploy/flows/etl.py" and reference["flow"] == "etl"
    assert s3.get_object(Bucket=bucket, Key="deploy/flows/etl.py")["Body"].read() == flow_file.read_bytes()
    # The reference is what the server stores: plain JSON, no code, no credentials.
    assert set(reference) == {"type", "bucket", "key", "flow", "url", "sha256"}
    flow_file.unlink()  # the agent's machine does not have the file
    flow = storage_from_reference(reference).load_flow()
    state = flow.run()
    assert flow.name == "etl" and state.is_successful()
    assert [s.result for s in state.result.values() if s.result == 42] == [42]


def test_a_py_location_is_the_exact_key(s3, bucket, flow_file):
    storage = storage_for(flow_file, "etl", f"s3://{bucket}/releases/etl-v2.py")
    assert storage.key == "releases/etl-v2.py"
    assert s3.head_object(Bucket=bucket, Key="releases/etl-v2.py")["ContentLength"] == flow_file.stat().st_size


def test_a_changed_file_is_refused(s3, bucket, flow_file):
    reference = storage_for(flow_file, "etl", f"s3://{bucket}").reference()
    s3.put_object(Bucket=bucket, Key="etl.py", Body=FLOW.format(name="etl").replace("2 * x", "3 * x").encode())
    with pytest.raises(StorageError, match="changed since flow 'etl' was registered"):
        storage_from_reference(reference).load_flow()


def test_a_versioned_bucket_loads_the_registered_version(s3, bucket, flow_file):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    reference = storage_for(flow_file, "etl", f"s3://{bucket}/flows").reference()
    assert reference["version_id"]
    s3.put_object(Bucket=bucket, Key="flows/etl.py", Body=b"raise RuntimeError('a newer upload')\n")
    flow = storage_from_reference(reference).load_flow()
    assert flow.run(parameters={"n": 5}).is_successful()


def test_a_missing_bucket_is_a_clear_storage_error(flow_file):
    with pytest.raises(StorageError, match="no-such-bucket-plait") as raised:
        storage_for(flow_file, "etl", "s3://no-such-bucket-plait/flows")
    assert "does not exist" in str(raised.value)


def test_a_missing_object_is_a_clear_storage_error(bucket):
    storage = S3Storage(bucket, "flows/gone.py", "etl")
    with pytest.raises(StorageError, match=rf"s3://{bucket}/flows/gone.py does not exist"):
        storage.load_flow()


def test_a_flow_not_in_the_file_names_the_file(bucket, flow_file):
    reference = storage_for(flow_file, "etl", f"s3://{bucket}").reference()
    reference["flow"] = "other"
    with pytest.raises(StorageError, match=rf"Cannot load flow 'other' from s3://{bucket}/etl.py"):
        storage_from_reference(reference).load_flow()


@pytest.mark.parametrize(
    ("location", "message"),
    [("s3://", "expected s3://bucket/folder"), ("s3://b/f?x=1", "no query"), ("s3:///flows", "expected s3://bucket")],
)
def test_bad_locations_are_refused(flow_file, location, message):
    with pytest.raises(StorageError, match=message):
        storage_for(flow_file, "etl", location)


@pytest.mark.parametrize("reference", [{"type": "s3", "key": "a.py", "flow": "f"}, {"type": "s3", "bucket": "b"}])
def test_incomplete_references_are_refused(reference):
    with pytest.raises(StorageError, match="has no"):
        storage_from_reference(reference)
