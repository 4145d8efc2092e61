"""Finding installed plugins (entry points of the group ``plait``) without paying for it twice.

Scanning every installed distribution's metadata needs ``importlib.metadata`` (which imports
``email``, ``zipfile``, ``csv``, ``pathlib``...) and reads a file per distribution: most of the
cost of a process's first flow run. So the result of a scan is kept in a small JSON file per
Python environment, with a fingerprint of the installed distributions. A later process whose
fingerprint matches reads the file instead of scanning; any difference, an unreadable file or
a cached entry point whose top-level module is gone means a fresh scan.

The fingerprint is the list of ``*.dist-info`` folders (names and times) of every ``sys.path``
entry: listing a few folders costs well under a millisecond, against tens of milliseconds for
importing ``importlib.metadata`` and reading every distribution's metadata.

The file is ``$XDG_CACHE_HOME/plait`` (default ``~/.cache/plait``) ``/entry-points-<env>.json``;
``PLAIT_PLUGIN_CACHE=0`` turns the cache off (every process scans), and a cache folder that
cannot be written is simply not used.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from typing import Any, NamedTuple

__all__ = ["InstalledEntryPoint", "cache_file", "installed_entry_points", "load_entry_point"]

#: Bumped when the cache file's layout changes.
_FORMAT = 1


class InstalledEntryPoint(NamedTuple):
    """One entry point: ``name = value`` (``"module:attr"``) of ``distribution`` ``version``."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def installed_entry_points(group: str = "plait", use_cache: bool | None = None) -> list[InstalledEntryPoint]:
    """The entry points of ``group`` in this environment, from the cache when it is still true."""
    if use_cache is None:
        use_cache = os.environ.get("PLAIT_PLUGIN_CACHE", "1").strip().lower() not in {"0", "false", "no", "off"}
    if not use_cache:
        return _scan(group)
    fingerprint = _fingerprint()
    path = cache_file()
    cached = _read(path, fingerprint, group)
    if cached is not None and not _stale(cached):
        return cached
    found = _scan(group)
    _write(path, fingerprint, group, found)
    return found


def forget_cache() -> None:
    """Delete this environment's cache file (the next process scans again)."""
    try:
        os.unlink(cache_file())
    except OSError:
        pass


def load_entry_point(ep: InstalledEntryPoint) -> Any:
    """Import what ``ep.value`` names (``"package.module"`` or ``"package.module:attr.attr"``)."""
    import importlib

    module_name, _, attrs = ep.value.partition(":")
    obj: Any = importlib.import_module(module_name.strip())
    for attr in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, attr)
    return obj


def cache_file() -> str:
    """This environment's cache file (a path; ``pathlib`` is not imported for it)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    env = f"{zlib.crc32(f'{sys.prefix}|{sys.version}'.encode()):08x}"
    return os.path.join(base, "plait", f"entry-points-{env}.json")


def _fingerprint() -> list[list[Any]]:
    """What the installed distributions are: per ``sys.path`` entry, the names and times of its
    ``*.dist-info`` / ``*.egg-info`` folders (an install, an upgrade, a reinstall or an uninstall
    changes them; other files in the folder, like a script's own, do not)."""
    out: list[list[Any]] = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                infos = sorted(
                    [e.name, e.stat().st_mtime_ns] for e in it if e.name.endswith((".dist-info", ".egg-info"))
                )
        except NotADirectoryError:  # a zip file on sys.path
            try:
                infos = [["<file>", os.stat(entry).st_mtime_ns]]
            except OSError:
                infos = []
        except OSError:
            infos = []
        if infos:
            out.append([entry, infos])
    return out


def _stale(entry_points: list[InstalledEntryPoint]) -> bool:
    """Whether a cached entry point names a top-level module that is no longer there (an
    uninstall the folder times did not show). Looking a top-level module up imports nothing."""
    import importlib.util

    for ep in entry_points:
        top = ep.value.partition(":")[0].strip().split(".")[0]
        try:
            if importlib.util.find_spec(top) is None:
                return True
        except (ImportError, ValueError):
            return True
    return False


def _scan(group: str) -> list[InstalledEntryPoint]:
    import importlib.metadata

    found = []
    for ep in importlib.metadata.entry_points(group=group):
        dist = ep.dist
        found.append(
            InstalledEntryPoint(
                ep.name,
                ep.value,
                dist.metadata["Name"] if dist is not None else None,
                dist.version if dist is not None else None,
            )
        )
    return found


def _read(path: str, fingerprint: list[list[Any]], group: str) -> list[InstalledEntryPoint] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("fingerprint") != fingerprint:
        return None
    groups = data.get("groups")
    if not isinstance(groups, dict) or group not in groups:
        return None
    try:
        return [InstalledEntryPoint(*row) for row in groups[group]]
    except TypeError:
        return None


def _write(path: str, fingerprint: list[list[Any]], group: str, found: list[InstalledEntryPoint]) -> None:
    data = {
        "format": _FORMAT,
        "python": sys.version,
        "prefix": sys.prefix,
        "fingerprint": fingerprint,
        "groups": {group: [[e.name, e.value, e.distribution, e.version] for e in found]},
    }
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: every process scans, as without the cache
