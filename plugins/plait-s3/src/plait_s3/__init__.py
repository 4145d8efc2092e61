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

import importlib
from typing import Any

# Plait imports plait_s3.plugin (and so this package) in every process where the plugin is
# installed: these names are imported on first use, so merely having it installed costs little.
_LAZY = {
    "S3Config": "plait_s3.client",
    "clear_clients": "plait_s3.client",
    "get_connection": "plait_s3.client",
    "S3AccessDeniedError": "plait_s3.errors",
    "S3BucketNotFoundError": "plait_s3.errors",
    "S3ConfigError": "plait_s3.errors",
    "S3CredentialsError": "plait_s3.errors",
    "S3Error": "plait_s3.errors",
    "S3KeyNotFoundError": "plait_s3.errors",
    "S3ResultError": "plait_s3.errors",
    "S3Result": "plait_s3.result",
    "S3Storage": "plait_s3.storage",
    "S3Copy": "plait_s3.tasks",
    "S3Delete": "plait_s3.tasks",
    "S3Download": "plait_s3.tasks",
    "S3List": "plait_s3.tasks",
    "S3Upload": "plait_s3.tasks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'plait_s3' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
