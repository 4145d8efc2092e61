"""Writing the client settings (``[server] url`` and ``api_key``) into the user's Plait config.

On its first start the server creates an admin key and stores it here, so that ``plait
register`` and ``plait flow-run ...`` on this machine work without typing it. The file is
edited in place (other sections are kept as they are) and left readable by its owner only.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from plait.config import config_path, reset_config

__all__ = ["save_client_settings"]

_HEADER = re.compile(r"^\s*\[\s*server\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


def save_client_settings(url: str, api_key: str, path: Path | None = None) -> Path:
    """Set ``[server] api_key`` (and ``url`` when none is set) in the config file; mode 0600.

    Returns the file's path. Raises ``OSError`` when it cannot be written, and ``ValueError``
    when the file defines its ``server`` table in a way this cannot edit safely (dotted keys
    or an inline table); the caller then tells the user what to add.
    """
    path = path or config_path()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    current = tomllib.loads(text) if text.strip() else {}
    server = current.get("server", {})
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    wanted = {"api_key": api_key}
    if "url" not in server:
        wanted["url"] = url
    if header is None:
        if "server" in current:
            raise ValueError(f"{path} defines [server] without a [server] header")
        block = ["[server]", *(f"{k} = {_quote(v)}" for k, v in sorted(wanted.items(), reverse=True))]
        lines = [*lines, *([""] if lines and lines[-1].strip() else []), *block]
    else:
        end = next((i for i in range(header + 1, len(lines)) if _ANY_HEADER.match(lines[i])), len(lines))
        for key, value in wanted.items():
            pattern = re.compile(rf"^\s*{key}\s*=")
            at = next((i for i in range(header + 1, end) if pattern.match(lines[i])), None)
            if at is None:
                lines.insert(header + 1, f"{key} = {_quote(value)}")
                end += 1
            else:
                lines[at] = f"{key} = {_quote(value)}"
    new_text = "\n".join(lines) + "\n"
    check = tomllib.loads(new_text).get("server", {})
    if check.get("api_key") != api_key:
        raise ValueError(f"could not place api_key in {path}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".plait-tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(new_text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    reset_config()
    return path


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
