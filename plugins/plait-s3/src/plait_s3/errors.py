"""The errors plait-s3 raises, and the translation of boto3's errors into them.

Every message names the bucket and key it was about and the fix. Access errors name the
*source* of the credentials (``env``, ``shared-credentials-file``, ``config [plugins.s3]``...),
never the credentials themselves.

```python
from plait_s3 import S3Download, S3KeyNotFoundError

try:
    S3Download(bucket="reports").run(key="2024/missing.csv")
except S3KeyNotFoundError as exc:
    print(exc.bucket, exc.key)   # reports 2024/missing.csv
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plait.errors import PlaitError, ResultError

if TYPE_CHECKING:
    from plait_s3.client import S3Connection

__all__ = [
    "S3AccessDeniedError",
    "S3BucketNotFoundError",
    "S3ConfigError",
    "S3CredentialsError",
    "S3Error",
    "S3KeyNotFoundError",
    "S3ResultError",
]


class S3Error(PlaitError, RuntimeError):
    """An S3 operation failed; ``bucket`` and ``key`` say on what (``key`` may be ``None``)."""

    def __init__(self, message: str, bucket: str | None = None, key: str | None = None) -> None:
        super().__init__(_mask(message))
        self.bucket = bucket
        self.key = key


class S3BucketNotFoundError(S3Error, LookupError):
    """The bucket does not exist (or the endpoint does not know it)."""


class S3KeyNotFoundError(S3Error, LookupError):
    """The bucket exists but holds no object under the key."""


class S3AccessDeniedError(S3Error, PermissionError):
    """S3 refused the request (403); ``credential_source`` says where the credentials came from."""

    def __init__(self, message: str, bucket: str | None = None, key: str | None = None, credential_source: str = ""):
        super().__init__(message, bucket, key)
        self.credential_source = credential_source


class S3CredentialsError(S3Error):
    """No credentials were found, or the named secrets holding them are not set."""


class S3ConfigError(S3Error, ValueError):
    """A task or ``[plugins.s3]`` setting has a bad value (no bucket, an unknown option...)."""


class S3ResultError(S3Error, ResultError):
    """An ``S3Result`` could not be read or written; the cause (``__cause__``) is the S3 error."""


# --- translation -----------------------------------------------------------------------------

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "InvalidToken",
        "ExpiredToken",
        "AccountProblem",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NotFound", "NoSuchKey", "NoSuchBucket"})


def translate(exc: BaseException, action: str, bucket: str | None, key: str | None, conn: S3Connection) -> S3Error:
    """The plait-s3 error for a boto3/botocore exception raised while doing ``action``.

    ``action`` is a phrase like ``"downloading"``; ``conn`` supplies the credential source and,
    for a bare ``404`` (HEAD requests carry no error code), a client to tell a missing bucket
    from a missing key.
    """
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
        PartialCredentialsError,
    )

    if isinstance(exc, S3Error):
        return exc
    where = _where(bucket, key)
    cause = _find(exc, ClientError)
    if cause is not None:
        error = cause.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and key is None):
            return _bucket_missing(action, bucket, key)
        if code == "NoSuchKey" or code in ("404", "NotFound"):
            if key is not None and not bucket_exists(conn, bucket):
                return _bucket_missing(action, bucket, key)
            return S3KeyNotFoundError(
                f"S3 object {where} does not exist (while {action}): check the key, or list the bucket "
                f"with S3List(bucket={bucket!r}, prefix=...) to see what is there",
                bucket,
                key,
            )
        if code in _ACCESS_CODES or status == 403:
            return S3AccessDeniedError(
                f"Access denied to {where} while {action} ({_label(code, status)}): the credentials came from "
                f"{conn.credential_source}; check that they are valid and allow this action on the bucket, "
                "or set other credentials (profile or access key secrets) in [plugins.s3]",
                bucket,
                key,
                credential_source=conn.credential_source,
            )
        message = error.get("Message") or str(cause)
        return S3Error(f"S3 request failed while {action} {where}: {code or status}: {message}", bucket, key)
    found = _find(exc, NoCredentialsError) or _find(exc, PartialCredentialsError)
    if found is not None:
        return S3CredentialsError(
            f"No AWS credentials for {where} ({conn.credential_source}): set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, a profile in ~/.aws/credentials, or profile / access_key_id_secret "
            "in [plugins.s3]",
            bucket,
            key,
        )
    found = _find(exc, EndpointConnectionError)
    if found is not None:
        return S3Error(
            f"Could not connect to the S3 endpoint {conn.endpoint_description} while {action} {where}: {found}; "
            "check endpoint_url / region in [plugins.s3] and that the service is running",
            bucket,
            key,
        )
    found = _find(exc, ParamValidationError)
    if found is not None:
        return S3ConfigError(f"Invalid S3 request while {action} {where}: {found}", bucket, key)
    return S3Error(f"S3 error while {action} {where}: {type(exc).__name__}: {exc}", bucket, key)


def _bucket_missing(action: str, bucket: str | None, key: str | None) -> S3BucketNotFoundError:
    return S3BucketNotFoundError(
        f"S3 bucket {bucket!r} does not exist (while {action} {_where(bucket, key)}): create it, or fix the "
        "bucket name (or endpoint_url / region in [plugins.s3] if it lives elsewhere)",
        bucket,
        key,
    )


def _label(code: str, status: Any) -> str:
    if code in ("", "403"):
        return "403 Forbidden"  # a HEAD request's refusal has no body, so no error code
    return code


def bucket_exists(conn: S3Connection, bucket: str | None) -> bool:
    """Whether ``bucket`` exists (an access error counts as existing: it is not a 404)."""
    from botocore.exceptions import ClientError

    try:
        conn.client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code not in _NOT_FOUND_CODES
    return True


def _where(bucket: str | None, key: str | None) -> str:
    if bucket is None:
        return "S3"
    return f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"


def _find(exc: BaseException, cls: type[BaseException]) -> Any:
    """``exc`` or the first exception of type ``cls`` in its cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, cls):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _mask(text: str) -> str:
    from plait.secrets import mask

    return mask(text)
