"""Results: where task values are stored between runs.

A ``Result`` knows how to ``write`` a value to a *location*, ``read`` it back and tell whether
a location ``exists``. Locations are templates filled from the run context, so one result
object serves every task run::

    from plait import Flow, task
    from plait.results import LocalResult

    @task(checkpoint=True, result=LocalResult(dir="/data/results",
                                               location="{flow_name}/{today}/{task_name}.pkl"))
    def extract():
        return [1, 2, 3]

Template keys are the run context (``flow_name``, ``flow_run_id``, ``date``, ``today``,
``parameters``, anything given to ``flow.run(context=...)``), the task's keys (``task_name``,
``task_slug``, ``task_full_name``, ``map_index``, ``task_run_count``), ``map_suffix`` (``""``
for a task that is not mapped, ``"-3"`` for child 3) and the task's inputs by name. A location
may also be a function ``fn(**context) -> str``.

Values are turned into bytes by a *serializer*: ``"pickle"`` (the default) or ``"json"``;
``register_serializer`` adds more. Results are also named by URL (``Task(result=...)`` and
``Flow(result=...)`` accept one): a bare path or ``file:///...`` is a ``LocalResult``, any
other scheme (``s3://bucket/prefix/{task_name}.pkl``) is looked up in the result types that
installed plugins register (``result_types()``).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plait.errors import ResultError, ResultLocationError, UnknownResultTypeError

__all__ = [
    "JSONSerializer",
    "LocalResult",
    "PickleSerializer",
    "Result",
    "Serializer",
    "format_location",
    "get_serializer",
    "register_serializer",
    "resolve_result",
    "result_types",
]

Location = str | Callable[..., str]


# --- serializers ---------------------------------------------------------------------------


class Serializer:
    """Turns values into bytes and back. Subclass it and ``register_serializer`` the class."""

    #: file extension used in default locations
    extension = "bin"

    def serialize(self, value: Any) -> bytes:
        raise NotImplementedError

    def deserialize(self, data: bytes) -> Any:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleSerializer(Serializer):
    """Any picklable Python value (the default)."""

    extension = "pkl"

    def serialize(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def deserialize(self, data: bytes) -> Any:
        return pickle.loads(data)


class JSONSerializer(Serializer):
    """JSON values (dicts, lists, strings, numbers, booleans, ``None``); readable by other tools."""

    extension = "json"

    def serialize(self, value: Any) -> bytes:
        return json.dumps(value).encode("utf-8")

    def deserialize(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


_SERIALIZERS: dict[str, type[Serializer] | Serializer] = {"pickle": PickleSerializer, "json": JSONSerializer}


def register_serializer(name: str, serializer: type[Serializer] | Serializer) -> None:
    """Make ``serializer`` available as ``Result(serializer=name)``.

    ```python
    class CSVSerializer(Serializer):
        extension = "csv"
        def serialize(self, rows): ...
        def deserialize(self, data): ...

    register_serializer("csv", CSVSerializer)
    LocalResult(dir="out", serializer="csv")
    ```
    """
    if not (
        isinstance(serializer, Serializer) or (isinstance(serializer, type) and issubclass(serializer, Serializer))
    ):
        raise TypeError(
            f"register_serializer({name!r}, ...): expected a Serializer class or instance, got {serializer!r}"
        )
    _SERIALIZERS[name] = serializer


def get_serializer(spec: str | Serializer | type[Serializer]) -> Serializer:
    """A serializer instance from a registered name, a class or an instance."""
    if isinstance(spec, Serializer):
        return spec
    if isinstance(spec, type) and issubclass(spec, Serializer):
        return spec()
    if isinstance(spec, str):
        found = _SERIALIZERS.get(spec)
        if found is None:
            raise ResultError(
                f"Unknown serializer {spec!r}; known serializers: {', '.join(sorted(_SERIALIZERS))} "
                "(add one with plait.results.register_serializer)"
            )
        return found if isinstance(found, Serializer) else found()
    raise TypeError(f"serializer must be a name, a Serializer class or instance, got {spec!r}")


# --- the Result interface --------------------------------------------------------------------


class Result:
    """Base class of result backends: a location template, a serializer, and maybe a value.

    Backends implement three storage methods on resolved locations: ``write_bytes(location,
    data)``, ``read_bytes(location) -> bytes`` and ``location_exists(location) -> bool``, and
    ``from_url(url)`` when they are named by URL scheme. Everything else is shared.

    Args:
        location: a template (``"{flow_name}/{task_name}.pkl"``) or ``fn(**context) -> str``;
            ``None`` uses ``"{flow_name}/{flow_run_id}/{task_slug}{map_suffix}.<ext>"``.
        serializer: ``"pickle"``, ``"json"``, a registered name or a ``Serializer``.

    ``write()`` and ``read()`` return a new ``Result`` holding ``value`` and the resolved
    ``location``; the configured one is never changed, so one object serves every run.
    """

    def __init__(self, location: Location | None = None, serializer: str | Serializer = "pickle") -> None:
        if location is not None and not isinstance(location, str) and not callable(location):
            raise TypeError(
                f"{type(self).__name__}: location must be a template string or a function, got {location!r}"
            )
        self.location = location
        self.serializer = get_serializer(serializer)
        self.value: Any = None

    # -- what backends implement ---------------------------------------------------------------

    def write_bytes(self, location: str, data: bytes) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement write_bytes()")

    def read_bytes(self, location: str) -> bytes:
        raise NotImplementedError(f"{type(self).__name__} does not implement read_bytes()")

    def location_exists(self, location: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not implement location_exists()")

    @classmethod
    def from_url(cls, url: str) -> Result:
        """Build a result from a URL like ``scheme://bucket/prefix/{task_name}.pkl``."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from a URL ({url!r})")

    def uri(self, location: str) -> str:
        """The full address of a resolved location, for messages (``LocalResult``: the path)."""
        return location

    # -- the shared interface -------------------------------------------------------------------

    def format(self, **context: Any) -> str:
        """This result's location filled from ``context`` (default template when none is set)."""
        template = self.location if self.location is not None else self.default_location()
        return format_location(template, context, owner=type(self).__name__)

    def default_location(self) -> str:
        return "{flow_name}/{flow_run_id}/{task_slug}{map_suffix}." + self.serializer.extension

    def write(self, value: Any, **context: Any) -> Result:
        """Serialize and store ``value`` at the location filled from ``context``.

        Outside a flow run, pass the template's keys; inside one, the run context fills them::

            stored = LocalResult(dir="out", location="{name}.json", serializer="json").write([1, 2], name="nums")
            stored.location  # "nums.json"
        """
        if not context:
            context = _current_context()
        location = self.format(**context)
        data = self.serializer.serialize(value)
        self.write_bytes(location, data)
        return self._with(value, location)

    def read(self, location: str) -> Result:
        """Read the value stored at ``location`` (a resolved location, not a template)."""
        data = self.read_bytes(location)
        return self._with(self.serializer.deserialize(data), location)

    def exists(self, location: str | None = None, **context: Any) -> bool:
        """Whether a value is stored at ``location`` (a template filled from ``context``, or
        this result's own location when ``None``)."""
        if location is None:
            location = self.format(**(context or _current_context()))
        elif context:
            location = format_location(location, context, owner=type(self).__name__)
        return self.location_exists(location)

    def copy(self, **changes: Any) -> Result:
        """A shallow copy with ``changes`` set as attributes (``location=``, ``serializer=``)."""
        new = copy.copy(self)
        for key, value in changes.items():
            if key == "serializer":
                value = get_serializer(value)
            setattr(new, key, value)
        return new

    def _with(self, value: Any, location: str) -> Result:
        new = copy.copy(self)
        new.value = value
        new.location = location
        return new

    def __repr__(self) -> str:
        return f"<{type(self).__name__} location={self.location!r}>"


class LocalResult(Result):
    """Results as files under a directory.

    Args:
        dir: the base directory (created when needed); default: ``$PLAIT__RESULTS__DIR`` or
            ``~/.plait/results``. Relative locations are under it; absolute ones are used as-is.
        location: see ``Result``.
        serializer: see ``Result``.

    ```python
    result = LocalResult(dir="results", location="{task_name}/{today}.json", serializer="json")
    ```

    Files are written to a temporary name and renamed, so a reader never sees half a file.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        location: Location | None = None,
        serializer: str | Serializer = "pickle",
    ) -> None:
        super().__init__(location=location, serializer=serializer)
        if dir is None:
            dir = os.environ.get("PLAIT__RESULTS__DIR") or "~/.plait/results"
        self.dir = Path(dir).expanduser()

    @classmethod
    def from_url(cls, url: str) -> LocalResult:
        """``file:///abs/dir``, ``file:///abs/dir/{task_name}.json`` or a bare path.

        The part before the first ``{...}`` segment is the directory; the rest is the location
        template; a ``.json`` location uses the JSON serializer.
        """
        path = url[len("file://") :] if url.startswith("file://") else url
        parts = Path(path).parts
        split = next((i for i, part in enumerate(parts) if "{" in part), None)
        if split is None:
            return cls(dir=path)
        location = "/".join(parts[split:])
        serializer = "json" if location.endswith(".json") else "pickle"
        return cls(dir=Path(*parts[:split]) if split else ".", location=location, serializer=serializer)

    def path(self, location: str) -> Path:
        return self.dir / location

    def uri(self, location: str) -> str:
        return str(self.path(location))

    def write_bytes(self, location: str, data: bytes) -> None:
        path = self.path(location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            import tempfile  # here, not at import: the first flow run of a process stays cheap

            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                with _suppress_os_error():
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise ResultError(f"Could not write result to {path}: {exc.strerror or exc}") from exc

    def read_bytes(self, location: str) -> bytes:
        path = self.path(location)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ResultError(f"Could not read result from {path}: {exc.strerror or exc}") from exc

    def location_exists(self, location: str) -> bool:
        return self.path(location).is_file()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalResult) and (self.dir, self.location, self.serializer) == (
            other.dir,
            other.location,
            other.serializer,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<LocalResult dir={str(self.dir)!r} location={self.location!r}>"


# --- resolving results named by URL --------------------------------------------------------


def result_types() -> dict[str, type[Result]]:
    """Result classes by URL scheme (``{"file": LocalResult, "s3": ...}``).

    They come from the plugin registry: the core's built-in plugin offers ``file``, and
    installed plugins add theirs through ``plait_register_result_types()``.
    """
    from plait.hooks.manager import get_hooks

    return get_hooks().register_result_types()


_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def resolve_result(spec: Result | str | os.PathLike[str] | None) -> Result | None:
    """A ``Result`` from what ``Task(result=...)``/``Flow(result=...)`` accept.

    ``Result`` instances are returned as-is; ``"file:///..."`` and bare paths become a
    ``LocalResult``; ``"scheme://..."`` goes to the class registered for ``scheme``.

    ```python
    resolve_result("/data/results")                     # LocalResult(dir="/data/results")
    resolve_result("file:///data/{task_name}.json")     # JSON files under /data
    resolve_result("s3://bucket/{flow_name}/{task_name}.pkl")   # needs the plait-s3 plugin
    ```
    """
    if spec is None or isinstance(spec, Result):
        return spec
    if isinstance(spec, os.PathLike):
        return LocalResult(dir=spec)
    if not isinstance(spec, str):
        raise TypeError(f"result must be a Result, a URL or a path, got {type(spec).__name__}: {spec!r}")
    match = _URL.match(spec)
    if match is None:
        return LocalResult.from_url(spec)
    scheme = match.group("scheme").lower()
    known = result_types()
    cls = known.get(scheme)
    if cls is None:
        raise UnknownResultTypeError(
            f"No result type handles the URL scheme {scheme!r} (in {spec!r}): install the plugin that "
            f"provides it (for example `pip install plait-{scheme}`); known schemes: {', '.join(sorted(known))}"
        )
    return cls.from_url(spec)


# --- location templates --------------------------------------------------------------------


def format_location(template: Location, context: dict[str, Any], owner: str = "Result") -> str:
    """Fill ``template`` from ``context``, with a clear error naming a missing key."""
    if callable(template):
        location = template(**context)
        if not isinstance(location, str):
            raise ResultLocationError(
                f"{owner} location function {template!r} returned {type(location).__name__}, not a string"
            )
        return location
    try:
        return template.format_map(context)
    except KeyError as exc:
        key = exc.args[0]
        available = ", ".join(sorted(k for k in context if isinstance(k, str) and not k.startswith("_")))
        raise ResultLocationError(
            f"{owner} location {template!r} uses {{{key}}}, which the run context does not have. "
            f"Available keys: {available}. Pass it with flow.run(context={{{key!r}: ...}}) or change the template."
        ) from None
    except (IndexError, ValueError, AttributeError) as exc:
        raise ResultLocationError(f"{owner} location {template!r} is not a valid template: {exc}") from None


def _current_context() -> dict[str, Any]:
    from plait import context

    ctx = context.to_dict()
    index = ctx.get("map_index")
    ctx.setdefault("map_suffix", "" if index is None else f"-{index}")
    return ctx


class _suppress_os_error:  # noqa: N801
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, *rest: object) -> bool:
        return exc_type is not None and issubclass(exc_type, OSError)
