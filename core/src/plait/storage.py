"""Where an agent finds a registered flow's code: storage references.

Registration sends the server a *reference* to the flow's code, never the code: a path and a
flow name for a local file, a module path for an installed package, or a URL such as
``s3://bucket/flows/etl.py`` for a storage kind that a plugin offers through the
``plait_register_storage`` hook. An agent (on the machine that has the code) turns the
reference back into a ``Storage`` and loads the flow::

    from plait.storage import storage_for, storage_from_reference

    storage = storage_for("flows/etl.py", "etl")          # FileStorage (the default)
    storage.reference()       # {"type": "file", "path": "/home/me/flows/etl.py", "flow": "etl"}
    storage_from_reference(storage.reference()).load_flow()   # the Flow

``storage_for(path, flow, location="module:pkg.flows")`` picks ``ModuleStorage``; another
``location`` is looked up by its URL scheme among the registered storage kinds.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from plait.errors import StorageError

if TYPE_CHECKING:
    from plait.flow import Flow

__all__ = ["FileStorage", "ModuleStorage", "Storage", "available_storage", "storage_for", "storage_from_reference"]


class Storage:
    """A kind of place flow code lives. Subclasses set ``type`` and implement the methods.

    A plugin's storage (say ``S3Storage`` with ``type = "s3"``) copies the flow file to its
    location in ``from_location`` (at registration) and fetches it in ``load_flow`` (where the
    agent runs). A reference must be plain JSON and hold no secret: credentials come from the
    environment where the code runs.
    """

    type: ClassVar[str] = ""

    def reference(self) -> dict[str, Any]:
        """The JSON the server stores: ``{"type": self.type, ...}``."""
        raise NotImplementedError

    def load_flow(self) -> Flow:
        """The flow this storage points at (``StorageError`` if it cannot be loaded)."""
        raise NotImplementedError

    @classmethod
    def from_reference(cls, reference: dict[str, Any]) -> Storage:
        """The storage a ``reference()`` describes."""
        raise NotImplementedError

    @classmethod
    def from_location(cls, location: str, flow_file: Path, flow_name: str) -> Storage:
        """The storage for ``plait register FILE --storage LOCATION`` (may copy the file there)."""
        raise NotImplementedError


class FileStorage(Storage):
    """A flow in a Python file on the machine where the agent runs (the default)."""

    type = "file"

    def __init__(self, path: str | Path, flow: str) -> None:
        self.path = str(Path(path).expanduser().resolve())
        self.flow = flow

    def reference(self) -> dict[str, Any]:
        return {"type": self.type, "path": self.path, "flow": self.flow}

    def load_flow(self) -> Flow:
        from plait.cli.loading import load_flow

        if not Path(self.path).is_file():
            raise StorageError(f"Flow file {self.path} does not exist on this machine (storage of flow {self.flow!r})")
        try:
            return load_flow(f"{self.path}:{self.flow}")
        except Exception as exc:  # click errors included: this runs outside the CLI too
            raise StorageError(f"Cannot load flow {self.flow!r} from {self.path}: {_message(exc)}") from None

    @classmethod
    def from_reference(cls, reference: dict[str, Any]) -> FileStorage:
        return cls(_need(reference, "path"), _need(reference, "flow"))

    @classmethod
    def from_location(cls, location: str, flow_file: Path, flow_name: str) -> FileStorage:
        return cls(flow_file, flow_name)


class ModuleStorage(Storage):
    """A flow in an importable module (an installed package): ``module:pkg.flows[:attribute]``."""

    type = "module"

    def __init__(self, module: str, flow: str) -> None:
        self.module = module
        self.flow = flow

    def reference(self) -> dict[str, Any]:
        return {"type": self.type, "module": self.module, "flow": self.flow}

    def load_flow(self) -> Flow:
        from plait.flow import Flow

        try:
            module = importlib.import_module(self.module)
        except Exception as exc:
            raise StorageError(
                f"Cannot import module {self.module!r} for flow {self.flow!r}: {_message(exc)}"
            ) from None
        found = getattr(module, self.flow, None)
        if not isinstance(found, Flow):
            found = next((v for v in vars(module).values() if isinstance(v, Flow) and v.name == self.flow), None)
        if found is None:
            raise StorageError(f"Module {self.module!r} has no flow {self.flow!r}")
        return found

    @classmethod
    def from_reference(cls, reference: dict[str, Any]) -> ModuleStorage:
        return cls(_need(reference, "module"), _need(reference, "flow"))

    @classmethod
    def from_location(cls, location: str, flow_file: Path, flow_name: str) -> ModuleStorage:
        module = location.removeprefix("module:")
        if not module or not all(part.isidentifier() for part in module.split(".")):
            raise StorageError(f"Storage {location!r}: expected module:package.module (an importable name)")
        return cls(module, flow_name)


def available_storage() -> dict[str, type[Storage]]:
    """``{type: StorageClass}``: the built-in ``file`` and ``module`` and every plugin's."""
    from plait.hooks.manager import get_hooks

    return get_hooks().register_storage()


def storage_for(flow_file: str | Path, flow_name: str, location: str | None = None) -> Storage:
    """The storage for registering ``flow_name`` from ``flow_file``; ``location`` picks another kind.

    ``None`` or a plain path: ``FileStorage``; ``module:pkg.mod``: ``ModuleStorage``; a URL
    (``s3://bucket/prefix``): the storage kind registered for its scheme.
    """
    kinds = available_storage()
    if location is None:
        kind = "file"
    elif location.startswith("module:"):
        kind = "module"
    else:
        kind = urlsplit(location).scheme or "file"
    cls = kinds.get(kind)
    if cls is None:
        raise StorageError(
            f"No storage for {location!r}: known kinds are {', '.join(sorted(kinds))} "
            "(a plugin adds more through plait_register_storage, e.g. plait-s3 for s3://)"
        )
    return cls.from_location(location or str(flow_file), Path(flow_file), flow_name)


def storage_from_reference(reference: dict[str, Any]) -> Storage:
    """The ``Storage`` a server-side reference describes (``StorageError`` if its kind is unknown)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("type"), str):
        raise StorageError(f"Not a storage reference: {reference!r:.100}")
    kinds = available_storage()
    cls = kinds.get(reference["type"])
    if cls is None:
        raise StorageError(
            f"Storage kind {reference['type']!r} is not installed here (known: {', '.join(sorted(kinds))}); "
            "install the plugin that provides it"
        )
    return cls.from_reference(reference)


def _need(reference: dict[str, Any], key: str) -> str:
    value = reference.get(key)
    if not isinstance(value, str) or not value:
        raise StorageError(f"Storage reference {reference!r:.100} has no {key!r}")
    return value


def _message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
