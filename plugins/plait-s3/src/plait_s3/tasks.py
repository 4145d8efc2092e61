"""S3 tasks: upload, download, list, delete and copy objects.

Each task takes ``bucket`` and ``key`` when it is built, when it is called in a flow, or both
(values given to the call win; ``run()`` takes what to act on first and ``bucket`` last, so
``S3Download(bucket="b")("2024/a.csv")`` works), and ``config=`` (an ``S3Config`` or a dict) to choose the
endpoint, region, profile or credentials; unset settings come from ``[plugins.s3]``::

    from plait import Flow, Parameter
    from plait_s3 import S3Download, S3List, S3Upload

    upload = S3Upload(bucket="raw")
    with Flow("backup") as flow:
        day = Parameter("day")
        keys = S3List(bucket="raw")(prefix=day)
        upload(path="/var/log/app.log", key="logs/app.log")

Nothing here imports boto3 until a task runs, so listing the plugin's tasks stays cheap.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from plait.tasks import Task
from plait_s3.client import S3Config, S3Connection, as_config, get_connection
from plait_s3.errors import S3BucketNotFoundError, S3ConfigError, S3Error, S3KeyNotFoundError, bucket_exists, translate

__all__ = ["S3Copy", "S3Delete", "S3Download", "S3List", "S3Upload"]

#: ``delete_objects`` takes at most this many keys per request.
DELETE_BATCH = 1000


class _S3Task(Task):
    """Shared parts: bucket/key defaults, settings and error translation."""

    def __init__(
        self,
        bucket: str | None = None,
        key: str | None = None,
        config: S3Config | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket = _checked_name(self.name, "bucket", bucket)
        self.key = _checked_name(self.name, "key", key)
        self.config = as_config(config, owner=f"{type(self).__name__} {self.name!r}")

    def _connection(self) -> S3Connection:
        return get_connection(self.config)

    def _bucket(self, bucket: str | None) -> str:
        value = _checked_name(self.name, "bucket", bucket) or self.bucket
        if value is None:
            raise S3ConfigError(
                f"{type(self).__name__} {self.name!r} has no bucket: pass {type(self).__name__}(bucket=...) "
                "or call the task with bucket="
            )
        return value

    def _key(self, key: str | None) -> str:
        value = _checked_name(self.name, "key", key) or self.key
        if value is None:
            raise S3ConfigError(
                f"{type(self).__name__} {self.name!r} has no key: pass {type(self).__name__}(key=...) "
                "or call the task with key="
            )
        return value

    def _error(self, exc: BaseException, action: str, bucket: str | None, key: str | None) -> S3Error:
        return translate(exc, action, bucket, key, self._connection())


class S3Upload(_S3Task):
    """Upload bytes, text or a local file to s3://bucket/key; returns the object's URL.

    Files are streamed from disk: anything larger than the multipart threshold
    (``[plugins.s3] multipart_threshold``, boto3's default 8 MiB) goes up in parts, several at
    a time, and is never read whole into memory. Text is encoded as UTF-8.

    Args:
        bucket: the default bucket.
        key: the default key.
        config: an ``S3Config`` or dict (endpoint, region, profile, multipart sizes).
        extra_args: boto3 upload arguments, e.g. ``{"ContentType": "text/csv"}``.
        **kwargs: the usual ``Task`` options (``name``, ``max_retries``...).

    ```python
    upload = S3Upload(bucket="reports", extra_args={"ContentType": "text/csv"})
    with Flow("publish") as flow:
        upload(path="out/summary.csv", key="2024/summary.csv")   # "s3://reports/2024/summary.csv"
        upload(data="hello", key="hello.txt")
    ```
    """

    def __init__(
        self,
        bucket: str | None = None,
        key: str | None = None,
        config: S3Config | dict[str, Any] | None = None,
        extra_args: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bucket=bucket, key=key, config=config, **kwargs)
        self.extra_args = dict(extra_args or {})

    def run(  # type: ignore[override]
        self,
        data: bytes | str | None = None,
        key: str | None = None,
        path: str | os.PathLike[str] | None = None,
        bucket: str | None = None,
    ) -> str:
        """Upload ``data`` (bytes or text) or the file at ``path`` (exactly one of them)."""
        if isinstance(data, os.PathLike):
            data, path = None, data
        if (data is None) == (path is None):
            raise S3ConfigError(
                f"S3Upload {self.name!r}: give exactly one of data= (bytes or text) or path= (a local file)"
            )
        bucket, key = self._bucket(bucket), self._key(key)
        if path is not None and not Path(path).is_file():
            raise S3ConfigError(f"S3Upload {self.name!r}: the file {str(path)!r} does not exist", bucket, key)
        if isinstance(data, str):
            data = data.encode("utf-8")
        if path is None and not isinstance(data, (bytes, bytearray, memoryview)):
            raise S3ConfigError(
                f"S3Upload {self.name!r}: data must be bytes or text, got {type(data).__name__}; "
                "pass a local file with path=",
                bucket,
                key,
            )
        conn = self._connection()
        extra = self.extra_args or None
        try:
            if path is not None:
                conn.client.upload_file(os.fspath(path), bucket, key, ExtraArgs=extra, Config=conn.transfer_config)
            elif len(data) < conn.transfer_config.multipart_threshold:
                # One request, without the transfer manager's threads: the common small case.
                conn.client.put_object(Bucket=bucket, Key=key, Body=bytes(data), **(extra or {}))
            else:
                conn.client.upload_fileobj(io.BytesIO(data), bucket, key, ExtraArgs=extra, Config=conn.transfer_config)
        except Exception as exc:
            raise self._error(exc, "uploading", bucket, key) from exc
        return f"s3://{bucket}/{key}"


class S3Download(_S3Task):
    """Download s3://bucket/key: returns its bytes, or writes it to a file and returns the path.

    A download to a file goes to a temporary name next to it and is renamed when complete,
    so a reader never sees half a file; large objects come down in parts.

    ```python
    fetch = S3Download(bucket="reports")
    with Flow("report") as flow:
        raw = fetch(key="2024/summary.csv")                        # bytes
        fetch(key="2024/big.parquet", path="/tmp/big.parquet")     # "/tmp/big.parquet"
    ```
    """

    def run(  # type: ignore[override]
        self, key: str | None = None, path: str | os.PathLike[str] | None = None, bucket: str | None = None
    ) -> bytes | str:
        """Fetch the object; into memory unless ``path`` is given."""
        bucket, key = self._bucket(bucket), self._key(key)
        conn = self._connection()
        try:
            if path is None:
                data = _get_small(conn, bucket, key)
                if data is None:
                    buffer = io.BytesIO()
                    conn.client.download_fileobj(bucket, key, buffer, Config=conn.transfer_config)
                    data = buffer.getvalue()
                return data
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    small = _get_small(conn, bucket, key, out)
                if small is None:
                    conn.client.download_file(bucket, key, tmp, Config=conn.transfer_config)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return str(target)
        except Exception as exc:
            raise self._error(exc, "downloading", bucket, key) from exc


class S3List(_S3Task):
    """List keys in a bucket, following every page (S3 returns at most 1,000 keys per page).

    Args:
        bucket: the default bucket.
        prefix: the default prefix (``""``: the whole bucket).
        delimiter: group keys on this character (usually ``"/"``): the result then holds the
            keys directly under ``prefix`` and the "folders" below it (common prefixes, which
            end with the delimiter), like ``ls``.
        page_size: keys per request (at most 1,000).
        config: an ``S3Config`` or dict.

    Returns the keys, sorted.

    ```python
    with Flow("inventory") as flow:
        keys = S3List(bucket="raw", delimiter="/")(prefix="2024/")   # ["2024/01/", "2024/readme.txt"]
    ```
    """

    def __init__(
        self,
        bucket: str | None = None,
        prefix: str = "",
        delimiter: str | None = None,
        page_size: int | None = None,
        config: S3Config | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bucket=bucket, config=config, **kwargs)
        if page_size is not None and (not isinstance(page_size, int) or not 1 <= page_size <= 1000):
            raise S3ConfigError(f"S3List {self.name!r}: page_size must be between 1 and 1000, got {page_size!r}")
        self.prefix = prefix
        self.delimiter = delimiter
        self.page_size = page_size

    def run(  # type: ignore[override]
        self, prefix: str | None = None, delimiter: str | None = None, bucket: str | None = None
    ) -> list[str]:
        """List ``bucket`` under ``prefix`` (both default to the task's own)."""
        bucket = self._bucket(bucket)
        prefix = self.prefix if prefix is None else prefix
        delimiter = self.delimiter if delimiter is None else delimiter
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            request["Delimiter"] = delimiter
        pagination = {"PageSize": self.page_size} if self.page_size else {}
        conn = self._connection()
        found: list[str] = []
        try:
            for page in conn.client.get_paginator("list_objects_v2").paginate(**request, PaginationConfig=pagination):
                found.extend(item["Key"] for item in page.get("Contents", ()))
                found.extend(item["Prefix"] for item in page.get("CommonPrefixes", ()))
        except Exception as exc:
            raise self._error(exc, "listing", bucket, None) from exc
        found.sort()
        return found


class S3Delete(_S3Task):
    """Delete one key or many; returns the deleted keys.

    Deleting a key that does not exist succeeds, as in S3, unless ``missing_ok=False``: then
    a missing key is an ``S3KeyNotFoundError`` (and nothing is deleted).

    ```python
    with Flow("cleanup") as flow:
        old = S3List(bucket="tmp")(prefix="scratch/")
        S3Delete(bucket="tmp")(keys=old)
    ```
    """

    def __init__(
        self,
        bucket: str | None = None,
        key: str | None = None,
        missing_ok: bool = True,
        config: S3Config | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bucket=bucket, key=key, config=config, **kwargs)
        self.missing_ok = missing_ok

    def run(  # type: ignore[override]
        self, key: str | None = None, keys: Iterable[str] | None = None, bucket: str | None = None
    ) -> list[str]:
        """Delete ``key``, or every key of ``keys`` (in batches of 1,000)."""
        bucket = self._bucket(bucket)
        if keys is not None:
            if key is not None or isinstance(keys, str):
                raise S3ConfigError(
                    f"S3Delete {self.name!r}: keys= takes a list of keys; pass one key with key=", bucket
                )
            targets = [_checked_name(self.name, "key", k) for k in keys]
        else:
            targets = [self._key(key)]
        conn = self._connection()
        client = conn.client
        current: str | None = None
        try:
            if not self.missing_ok:
                for current in targets:
                    client.head_object(Bucket=bucket, Key=current)
            current = None
            for start in range(0, len(targets), DELETE_BATCH):
                batch = targets[start : start + DELETE_BATCH]
                response = client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
                errors = response.get("Errors") or []
                if errors:
                    raise _delete_failure(errors, len(batch))
        except Exception as exc:
            if isinstance(exc, _KeyFailure):
                current = exc.key
            elif current is None and len(targets) == 1:
                current = targets[0]
            error = self._error(exc, "deleting", bucket, current)
            if isinstance(error, S3KeyNotFoundError):
                error = S3KeyNotFoundError(
                    f"{error} (S3Delete {self.name!r} has missing_ok=False, so nothing was deleted)", bucket, current
                )
            raise error from exc
        return targets


class S3Copy(_S3Task):
    """Copy s3://source_bucket/source_key to s3://bucket/key inside S3; returns the new object's URL.

    The copy happens inside S3 (the data does not pass through this machine); objects larger
    than the multipart threshold are copied in parts. ``source_bucket`` defaults to ``bucket``.

    ```python
    archive = S3Copy(source_bucket="raw", bucket="archive")
    with Flow("archive") as flow:
        archive(source_key="2024/01/data.csv", key="2024/01/data.csv")
    ```
    """

    def __init__(
        self,
        source_bucket: str | None = None,
        source_key: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        config: S3Config | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(bucket=bucket, key=key, config=config, **kwargs)
        self.source_bucket = _checked_name(self.name, "source_bucket", source_bucket)
        self.source_key = _checked_name(self.name, "source_key", source_key)

    def run(  # type: ignore[override]
        self,
        source_key: str | None = None,
        key: str | None = None,
        source_bucket: str | None = None,
        bucket: str | None = None,
    ) -> str:
        """Copy the source object to the destination (each part defaults to the task's own)."""
        bucket, key = self._bucket(bucket), self._key(key)
        source_bucket = _checked_name(self.name, "source_bucket", source_bucket) or self.source_bucket or bucket
        source_key = _checked_name(self.name, "source_key", source_key) or self.source_key
        if source_key is None:
            raise S3ConfigError(
                f"S3Copy {self.name!r} has no source key: pass S3Copy(source_key=...) or call the task with source_key="
            )
        conn = self._connection()
        try:
            conn.client.copy({"Bucket": source_bucket, "Key": source_key}, bucket, key, Config=conn.transfer_config)
        except Exception as exc:
            action = f"copying s3://{source_bucket}/{source_key} to s3://{bucket}/{key}"
            error = translate(exc, action, source_bucket, source_key, conn)
            # NoSuchBucket does not say which side is missing: when the source exists, it is the destination.
            if isinstance(error, S3BucketNotFoundError) and bucket_exists(conn, source_bucket):
                error = translate(exc, action, bucket, None, conn)
            raise error from exc
        return f"s3://{bucket}/{key}"


def _get_small(conn: S3Connection, bucket: str, key: str, out: Any = None) -> bytes | None:
    """The object in one GET when it is below the multipart threshold; ``None`` when it is not.

    Small objects (the common case) cost one request. boto3's transfer manager would first ask
    for the size (a HEAD) and then GET it, twice the requests. A larger object is left for the
    transfer manager, which fetches its parts side by side; this GET's body is closed unread.
    With ``out`` the bytes are written there (and ``b""`` returned) instead of kept in memory.
    """
    response = conn.client.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    length = response.get("ContentLength")
    if length is None or length >= conn.transfer_config.multipart_threshold:
        body.close()
        return None
    with body:
        if out is None:
            return body.read()
        for chunk in body.iter_chunks(1024 * 1024):
            out.write(chunk)
    return b""


def _delete_failure(errors: list[dict[str, Any]], batch: int) -> Exception:
    """A ``ClientError`` for the first key ``delete_objects`` could not delete, to translate as usual."""
    from botocore.exceptions import ClientError

    first = errors[0]
    message = f"{len(errors)} of {batch} keys were not deleted; first: {first.get('Message')}"
    return _KeyFailure(
        first.get("Key"), ClientError({"Error": {"Code": first.get("Code"), "Message": message}}, "DeleteObjects")
    )


class _KeyFailure(Exception):
    def __init__(self, key: str | None, cause: Exception) -> None:
        super().__init__(str(cause))
        self.key = key
        self.__cause__ = cause


def _checked_name(task_name: str, what: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise S3ConfigError(f"S3 task {task_name!r}: {what} must be a non-empty string, got {value!r}")
    return value
