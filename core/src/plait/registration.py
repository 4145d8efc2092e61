"""What registration sends to a Plait server: a flow's *metadata*, never its code or data.

``flow_metadata(flow)`` builds on ``flow.serialize()`` and removes what must not leave the
user's machine:

- **constants**: values written into the flow's code (``add(x, 42)``) are data; the metadata
  lists which inputs of a task are constants (``"constant_inputs": ["y"]``), never the values;
- **secret parameters** (``Parameter(name, secret=True)``): the default is dropped and the
  parameter is marked ``"secret": true``.

What stays: tasks (slug, name, type, options such as tags, retries and triggers by name),
edges, parameters (with their defaults, unless secret), reference tasks and the schedule. The
server stores it, shows it, and fingerprints it: ``flow_fingerprint(metadata)`` is the same for
the same flow structure, so registering an unchanged flow is a no-op and an agent can check
that the code it loads is the version that was registered::

    from plait.registration import flow_fingerprint, flow_metadata

    metadata = flow_metadata(flow)
    flow_fingerprint(metadata)   # 'c0ffee...' (sha256 hex)
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.flow import Flow

__all__ = ["METADATA_FORMAT", "flow_fingerprint", "flow_metadata", "sanitize_metadata"]

#: Bumped when the metadata's shape changes, so a server can tell old clients apart.
METADATA_FORMAT = 1

#: What a secret parameter's default is replaced by, wherever it would appear.
_MASK = "****"


def flow_metadata(flow: Flow) -> dict[str, Any]:
    """The flow's metadata for registration: ``flow.serialize()`` without constant values or secrets."""
    data = flow.serialize()
    secret = {p.name for p in flow.parameters() if getattr(p, "secret", False)}
    for entry in data.get("parameters", []):
        if entry.get("name") in secret:
            entry["secret"] = True
    data["format"] = METADATA_FORMAT
    return sanitize_metadata(data)


def sanitize_metadata(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a serialized flow) with constant values and secret parameters' defaults removed.

    Idempotent, and safe on metadata from any client: the server applies it to everything it
    receives, so a value that should not be stored is not, whoever sent it.
    """
    secret = {
        p.get("name")
        for p in data.get("parameters") or []
        if isinstance(p, dict) and (p.get("secret") or p.get("default") == _MASK)
    }
    for entry in data.get("parameters") or []:
        if isinstance(entry, dict) and entry.get("name") in secret:
            entry["secret"] = True
            entry.pop("default", None)
    for task in data.get("tasks") or []:
        if not isinstance(task, dict):
            continue
        constants = task.pop("constants", None)
        if isinstance(constants, dict) and constants:
            task["constant_inputs"] = sorted(str(k) for k in constants)
        options = task.get("options")
        if isinstance(options, dict) and task.get("slug") in secret:
            options.pop("default", None)
            options["secret"] = True
    return data


def flow_fingerprint(metadata: dict[str, Any]) -> str:
    """sha256 (hex) of the metadata's canonical JSON: equal for the same flow structure.

    A flow file is imported under a module name made from its path (``plait_flow_<hash>``, see
    ``plait.cli.loading``), and that name is in its tasks' ``function`` and ``type``: it is left
    out, so the same file loaded from another path (a download from ``s3://``, an agent's copy)
    has the same fingerprint.
    """
    text = _FILE_MODULE.sub("<flow file>.", canonical_json(metadata))
    return hashlib.sha256(text.encode()).hexdigest()


_FILE_MODULE = re.compile(r"\bplait_flow_[0-9a-f]{12}\.")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
