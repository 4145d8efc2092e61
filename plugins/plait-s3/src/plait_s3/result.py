"""``S3Result``: task results, checkpoints and targets stored as S3 objects.

With the plugin installed, any ``s3://`` URL names one, so no code is needed::

    from plait import Flow, task

    @task(result="s3://my-bucket/{flow_name}/{task_name}.pkl", checkpoint=True)
    def extract():
        return [1, 2, 3]

    @task(result="s3://my-bucket/cache", target="{task_name}/{today}.json")
    def daily():              # runs once a day; later runs read the stored value
        return {"rows": 42}

Or build one to pick the serializer, a key prefix or the endpoint::

    from plait_s3 import S3Result

    S3Result(bucket="my-bucket", prefix="runs", location="{flow_name}/{task_name}.json",
             serializer="json", config={"endpoint_url": "http://127.0.0.1:9000"})
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from plait.results import Location, Result, Serializer
from plait_s3.client import S3Config, S3Connection, as_config, get_connection
from plait_s3.errors import S3ConfigError, S3Error, S3KeyNotFoundError, S3ResultError, translate

__all__ = ["S3Result"]


class S3Result(Result):
    """Results as objects in an S3 bucket.

    Args:
        bucket: the bucket.
        location: the key template (see ``plait.results.Result``); default
            ``"{flow_name}/{flow_run_id}/{task_slug}{map_suffix}.<ext>"``.
        serializer: ``"pickle"`` (default), ``"json"``, or a ``Serializer``.
        prefix: put every key under this prefix (``"runs"`` -> ``runs/<location>``).
        config: an ``S3Config`` or dict; unset fields come from ``[plugins.s3]``.

    ``from_url("s3://bucket/prefix/{task_name}.json")`` splits a URL the same way: the bucket,
    then the folders before the first ``{...}`` part as the prefix, then the template; a
    ``.json`` template uses the JSON serializer.

    Failures raise ``S3ResultError`` (a ``plait.errors.ResultError``) naming the bucket and key;
    its ``__cause__`` is the precise error (``S3KeyNotFoundError``, ``S3AccessDeniedError``...).
    """

    def __init__(
        self,
        bucket: str,
        location: Location | None = None,
        serializer: str | Serializer = "pickle",
        prefix: str = "",
        config: S3Config | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(location=location, serializer=serializer)
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise S3ConfigError(f"S3Result: bucket must be a bucket name like 'my-bucket', got {bucket!r}")
        if not isinstance(prefix, str):
            raise S3ConfigError(f"S3Result: prefix must be a string, got {prefix!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.config = as_config(config, owner="S3Result")

    @classmethod
    def from_url(cls, url: str) -> S3Result:
        """An ``S3Result`` from ``s3://bucket[/prefix][/template]``."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "s3" or not parts.netloc:
            raise S3ConfigError(f"S3Result: {url!r} is not an S3 URL; write it as s3://bucket/prefix/{{task_name}}.pkl")
        if parts.query or parts.fragment:
            raise S3ConfigError(f"S3Result: {url!r} has a query or fragment (?, #), which S3 URLs do not take")
        segments = [s for s in parts.path.split("/") if s]
        split = next((i for i, s in enumerate(segments) if "{" in s), None)
        if split is None:
            return cls(bucket=parts.netloc, prefix="/".join(segments))
        location = "/".join(segments[split:])
        serializer = "json" if location.endswith(".json") else "pickle"
        return cls(bucket=parts.netloc, prefix="/".join(segments[:split]), location=location, serializer=serializer)

    # -- storage --------------------------------------------------------------------------------

    def key(self, location: str) -> str:
        """The object key of a resolved location (with the prefix)."""
        location = location.lstrip("/")
        return f"{self.prefix}/{location}" if self.prefix else location

    def uri(self, location: str) -> str:
        return f"s3://{self.bucket}/{self.key(location)}"

    def write_bytes(self, location: str, data: bytes) -> None:
        key = self.key(location)
        conn = self._connection()
        try:
            conn.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as exc:
            raise self._failure(exc, "writing a result to", key, conn)

    def read_bytes(self, location: str) -> bytes:
        key = self.key(location)
        conn = self._connection()
        try:
            return conn.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            raise self._failure(exc, "reading a result from", key, conn)

    def location_exists(self, location: str) -> bool:
        key = self.key(location)
        conn = self._connection()
        try:
            conn.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            error = translate(exc, "checking for a result at", self.bucket, key, conn)
            if type(error) is S3KeyNotFoundError:
                return False
            raise S3ResultError(str(error), self.bucket, key) from error
        return True

    # -- helpers --------------------------------------------------------------------------------

    def _connection(self) -> S3Connection:
        return get_connection(self.config)

    def _failure(self, exc: BaseException, action: str, key: str, conn: S3Connection) -> S3ResultError:
        error: S3Error = translate(exc, action, self.bucket, key, conn)
        if error is not exc:
            error.__cause__ = exc
        result_error = S3ResultError(str(error), self.bucket, key)
        result_error.__cause__ = error
        return result_error

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Result) and (
            self.bucket,
            self.prefix,
            self.location,
            self.serializer,
            self.config,
        ) == (other.bucket, other.prefix, other.location, other.serializer, other.config)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"<S3Result {where} location={self.location!r}>"
