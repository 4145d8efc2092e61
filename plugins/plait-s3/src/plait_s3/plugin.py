"""plait-s3's hook implementations (the ``plait`` entry point ``s3`` points here).

Importing this module is cheap: boto3 is imported only when a task runs or a result is used.
"""

from __future__ import annotations

from typing import Any

from plait import hookimpl


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
