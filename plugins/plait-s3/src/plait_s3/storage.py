"""``S3Storage``: registered flows whose code lives in an S3 bucket (``plait register --storage s3://...``).

With plait-s3 installed, ``s3://`` is a storage kind (through ``plait_register_storage``)::

    $ plait register flows/etl.py --storage s3://my-bucket/flows
    Flow 'etl' (default): version 1, registered. id 6f0c...

registration uploads ``flows/etl.py`` to ``s3://my-bucket/flows/etl.py`` and sends the server
only a reference: the bucket, the key, the flow's name and the file's sha256 (and the object's
version id when the bucket keeps versions). Where the flow runs (an agent's machine), the
reference gives the code back::

    from plait.storage import storage_from_reference

    flow = storage_from_reference(reference).load_flow()   # downloads, checks, loads

``load_flow`` refuses a file whose sha256 is not the one registered (someone overwrote the
object): the code that runs is the code that was registered. A location ending in ``.py`` is the
object's exact key; any other is a folder the file is put in under its own name. The server
never sees the code or any credential: S3 settings come from ``[plugins.s3]`` and boto3's chain
where the code runs (see ``plait_s3.client``).
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from plait.errors import StorageError
from plait.storage import Storage
from plait_s3.client import get_connection
from plait_s3.errors import translate

if TYPE_CHECKING:
    from plait.flow import Flow

__all__ = ["S3Storage"]

_downloads: Path | None = None
_downloads_lock = threading.Lock()


class S3Storage(Storage):
    """A flow file stored as an S3 object.

    Args:
        bucket: the bucket.
        key: the object's key (``flows/etl.py``).
        flow: the flow's name in that file.
        sha256: the file's sha256 when it was registered; ``load_flow`` checks it.
        version_id: the object's version (buckets with versioning): that version is loaded.
    """

    type = "s3"

    def __init__(
        self, bucket: str, key: str, flow: str, sha256: str | None = None, version_id: str | None = None
    ) -> None:
        if not bucket or "/" in bucket:
            raise StorageError(f"S3 storage: {bucket!r} is not a bucket name")
        if not key or not key.endswith(".py"):
            raise StorageError(f"S3 storage: the key must name a .py file, got {key!r}")
        self.bucket = bucket
        self.key = key
        self.flow = flow
        self.sha256 = sha256
        self.version_id = version_id

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r}, flow={self.flow!r})"

    def reference(self) -> dict[str, Any]:
        reference = {"type": self.type, "bucket": self.bucket, "key": self.key, "flow": self.flow, "url": self.url}
        if self.sha256:
            reference["sha256"] = self.sha256
        if self.version_id:
            reference["version_id"] = self.version_id
        return reference

    @classmethod
    def from_reference(cls, reference: dict[str, Any]) -> S3Storage:
        for name in ("bucket", "key", "flow"):
            if not isinstance(reference.get(name), str) or not reference[name]:
                raise StorageError(f"S3 storage reference {reference!r:.200} has no {name!r}")
        bucket, key, flow = reference["bucket"], reference["key"], reference["flow"]
        return cls(bucket, key, flow, reference.get("sha256"), reference.get("version_id"))

    @classmethod
    def from_location(cls, location: str, flow_file: Path, flow_name: str) -> S3Storage:
        """Upload ``flow_file`` to ``location`` (``s3://bucket/folder`` or ``s3://bucket/key.py``)."""
        parts = urlsplit(location)
        if parts.scheme.lower() != "s3" or not parts.netloc:
            raise StorageError(f"Storage {location!r}: expected s3://bucket/folder or s3://bucket/folder/file.py")
        if parts.query or parts.fragment:
            raise StorageError(f"Storage {location!r}: an S3 location takes no query or fragment (?, #)")
        folder = parts.path.strip("/")
        if folder.endswith(".py"):
            key = folder
        else:
            key = f"{folder}/{flow_file.name}" if folder else flow_file.name
        try:
            body = Path(flow_file).read_bytes()
        except OSError as exc:
            raise StorageError(f"Cannot read flow file {flow_file}: {exc}") from None
        storage = cls(parts.netloc, key, flow_name, hashlib.sha256(body).hexdigest())
        conn = get_connection()
        try:
            answer = conn.client.put_object(Bucket=storage.bucket, Key=key, Body=body, ContentType="text/x-python")
        except Exception as exc:
            raise StorageError(str(translate(exc, "uploading the flow file to", storage.bucket, key, conn))) from exc
        storage.version_id = answer.get("VersionId") or None
        return storage

    def load_flow(self) -> Flow:
        """Download the file (this version), check its sha256 and load the flow from it."""
        from plait.cli.loading import load_flow

        conn = get_connection()
        extra = {"VersionId": self.version_id} if self.version_id else {}
        try:
            body = conn.client.get_object(Bucket=self.bucket, Key=self.key, **extra)["Body"].read()
        except Exception as exc:
            error = translate(exc, "downloading the flow file from", self.bucket, self.key, conn)
            raise StorageError(f"Cannot load flow {self.flow!r}: {error}") from exc
        digest = hashlib.sha256(body).hexdigest()
        if self.sha256 and digest != self.sha256:
            raise StorageError(
                f"Flow file {self.url} changed since flow {self.flow!r} was registered (sha256 {digest[:12]}..., "
                f"registered {self.sha256[:12]}...); register the flow again to run the new code"
            )
        # Kept for the life of the process: workers and pickling may import the module again.
        path = _download_folder() / digest[:16] / Path(self.key).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        try:
            return load_flow(f"{path}:{self.flow}")
        except Exception as exc:  # click's usage errors included: this runs outside the CLI too
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise StorageError(f"Cannot load flow {self.flow!r} from {self.url}: {message}") from None


def _download_folder() -> Path:
    global _downloads
    with _downloads_lock:
        if _downloads is None:
            _downloads = Path(tempfile.mkdtemp(prefix="plait-s3-flows-"))
            atexit.register(shutil.rmtree, _downloads, True)
        return _downloads
