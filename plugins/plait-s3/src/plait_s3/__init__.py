"""plait-s3: Amazon S3 and S3-compatible stores for Plait.

```python
from plait import Flow
from plait_s3 import S3Download, S3List, S3Upload

with Flow("copy-reports") as flow:
    keys = S3List(bucket="reports")(prefix="2024/")
    S3Upload(bucket="archive")(data="done", key="2024/_SUCCESS")
```

Tasks: ``S3Upload``, ``S3Download``, ``S3List``, ``S3Delete``, ``S3Copy``; results:
``S3Result`` (and any ``s3://`` URL); flow storage for ``plait register --storage s3://...``:
``S3Storage``; settings: ``S3Config`` and ``[plugins.s3]``; errors:
``S3Error`` and its subclasses. boto3 is imported only when something talks to S3.
"""

from __future__ import annotations

from plait_s3.client import S3Config, clear_clients, get_connection
from plait_s3.errors import (
    S3AccessDeniedError,
    S3BucketNotFoundError,
    S3ConfigError,
    S3CredentialsError,
    S3Error,
    S3KeyNotFoundError,
    S3ResultError,
)
from plait_s3.result import S3Result
from plait_s3.storage import S3Storage
from plait_s3.tasks import S3Copy, S3Delete, S3Download, S3List, S3Upload

__version__ = "0.1.0"

__all__ = [
    "S3AccessDeniedError",
    "S3BucketNotFoundError",
    "S3Config",
    "S3ConfigError",
    "S3Copy",
    "S3CredentialsError",
    "S3Delete",
    "S3Download",
    "S3Error",
    "S3KeyNotFoundError",
    "S3List",
    "S3Result",
    "S3ResultError",
    "S3Storage",
    "S3Upload",
    "__version__",
    "clear_clients",
    "get_connection",
]
