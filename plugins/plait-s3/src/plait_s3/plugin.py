"""plait-s3's hook implementations (the ``plait`` entry point ``s3`` points here).

Importing this module is cheap: boto3 is imported only when a task runs or a result is used.
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl
from plait.settings import Setting, Settings


def _at_least(minimum: int, unit: str = "") -> Any:
    return lambda value: None if value >= minimum else f"must be at least {minimum}{unit}"


def _pairs(values: Any) -> str | None:
    if (values.get("access_key_id_secret") is None) != (values.get("secret_access_key_secret") is None):
        return "access_key_id_secret and secret_access_key_secret go together: set both or neither"
    return None


#: ``[plugins.s3]``: every key is optional; without them boto3's own chain finds credentials.
SETTINGS = Settings(
    "plugins.s3",
    Setting("profile", str, help="a profile of ~/.aws/credentials / ~/.aws/config"),
    Setting("region", str, help="the AWS region, e.g. eu-west-1"),
    Setting("endpoint_url", str, help="an S3-compatible endpoint (MinIO, Ceph, moto...)"),
    Setting("access_key_id_secret", str, help="name of the plait secret holding the access key id"),
    Setting("secret_access_key_secret", str, help="name of the plait secret holding the secret access key"),
    Setting("session_token_secret", str, help="name of the plait secret holding a session token"),
    Setting("multipart_threshold", int, help="bytes; larger transfers go in parts", check=_at_least(1)),
    Setting(
        "multipart_chunksize", int, help="bytes per part", check=_at_least(5 * 1024 * 1024, " (5 MiB, S3's minimum)")
    ),
    Setting("max_concurrency", int, help="threads per transfer", check=_at_least(1)),
    check=_pairs,
    help="S3 tasks and s3:// results",
)


@hookimpl
def plait_register_settings() -> Settings:
    """``[plugins.s3]``, declared (see ``plait.settings``)."""
    return SETTINGS


@hookimpl
def plait_register_tasks() -> list[Any]:
    """The S3 tasks, for ``plait tasks`` and look-ups by name."""
    from plait_s3.tasks import S3Copy, S3Delete, S3Download, S3List, S3Upload

    return [S3Upload, S3Download, S3List, S3Delete, S3Copy]


@hookimpl
def plait_register_result_types() -> dict[str, Any]:
    """``s3://bucket/...`` results, checkpoints and targets."""
    from plait_s3.result import S3Result

    return {"s3": S3Result}


@hookimpl
def plait_register_storage() -> dict[str, Any]:
    """``s3://bucket/folder`` as a place for registered flows' code (``plait register --storage``)."""
    from plait_s3.storage import S3Storage

    return {"s3": S3Storage}
