"""The states of flow runs and task runs.

A run moves through states; each state is a small immutable-by-convention object with a
``message``, a ``result`` and a ``timestamp``. The hierarchy decides what a state means::

    State
    ├── Pending ── Scheduled ── Retrying, Resume, Paused
    │         └── Submitted
    ├── Running ── Cancelling
    └── Finished
        ├── Success ── Cached, Mapped, Skipped
        ├── Failed ── TriggerFailed, TimedOut, ValidationFailed
        ├── Looped
        └── Cancelled

Ask a state what it means with ``is_successful()``, ``is_failed()``, ``is_finished()``,
``is_skipped()`` (and friends) rather than comparing classes: a ``Skipped`` task is
successful, a ``TimedOut`` task has failed.

States compare by value, as Prefect 1's do: two states are equal when they are of the same
class with the same ``result`` (a ``Mapped`` state: the same children); the ``message`` and the
``timestamp`` describe the state and are not compared. ``State.children()`` and
``State.parents()`` walk the hierarchy, as in Prefect 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from plait.secrets import _values as _secret_values
from plait.secrets import mask

__all__ = [
    "Cached",
    "Cancelled",
    "Cancelling",
    "Failed",
    "Finished",
    "Looped",
    "Mapped",
    "Paused",
    "Pending",
    "Resume",
    "Retrying",
    "Running",
    "Scheduled",
    "Skipped",
    "State",
    "Submitted",
    "Success",
    "TimedOut",
    "TriggerFailed",
    "ValidationFailed",
    "gather_results",
    "read_only",
    "remote_state",
    "result_ref",
]

_UNREAD: Any = object()  # a Mapped state's result list, not built yet


class State:
    """Base class of every state.

    Args:
        message: a human-readable reason, shown in logs and summaries.
        result: the task's return value for successful states, the exception for failures,
            the ``{task: State}`` mapping for a flow run.
    """

    __slots__ = ("message", "result", "timestamp")

    # Class-level answers keep the per-task checks to one attribute load.
    _finished = False
    _successful = False
    _failed = False
    _skipped = False
    _pending = False
    _running = False

    def __init__(self, message: str | None = None, result: Any = None) -> None:
        # Every state message is made here, so this is where secrets are masked (registered
        # values and URL passwords, see plait.secrets): a handler's, a trigger's or a loop's
        # exception text included. The test costs one comparison for a state without a message
        # (most: Pending(), Running()) and a few loads when nothing is registered.
        if message is not None and message.__class__ is str and (_secret_values or "://" in message):
            message = mask(message)
        self.message = message
        self.result = result
        self.timestamp = time.time()

    def is_pending(self) -> bool:
        """Not yet started: ``Pending``, ``Scheduled``, ``Retrying``, ``Paused``."""
        return self._pending

    def is_running(self) -> bool:
        return self._running

    def is_finished(self) -> bool:
        """A final state: nothing more will happen to this run."""
        return self._finished

    def is_successful(self) -> bool:
        """``Success`` and its kinds (``Cached``, ``Skipped``, a ``Mapped`` whose children all succeeded)."""
        return self._successful

    def is_failed(self) -> bool:
        """``Failed`` and its kinds (``TriggerFailed``, ``TimedOut``, a ``Mapped`` with a failed child)."""
        return self._failed

    def is_skipped(self) -> bool:
        return self._skipped

    def is_scheduled(self) -> bool:
        return isinstance(self, Scheduled)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_paused(self) -> bool:
        return isinstance(self, Paused)

    def is_looped(self) -> bool:
        return isinstance(self, Looped)

    def __eq__(self, other: object) -> bool:
        # By value (Prefect 1's rule): same class and result; the message and the timestamp
        # only describe the state.
        if not isinstance(other, State):
            return NotImplemented
        if _kind(type(self)) is not _kind(type(other)):
            return False
        return _same_value(self._comparable_result(), other._comparable_result())

    __hash__ = object.__hash__  # states stay usable as dict keys and in sets, by identity

    def _comparable_result(self) -> Any:
        return self.result

    @property
    def name(self) -> str:
        """The state's class name, e.g. ``"Success"``."""
        return type(self).__name__

    @property
    def datetime(self) -> datetime:
        """``timestamp`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, tz=UTC)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view of the state (the result is described, not serialized)."""
        return {
            "type": self.name,
            "message": self.message,
            "timestamp": self.timestamp,
            "result_type": None if self.result is None else type(self.result).__name__,
        }

    @classmethod
    def children(cls, include_self: bool = False, names_only: bool = False) -> list[Any]:
        """Every state class below this one (``Success.children()``: ``Cached``, ``Mapped``, ``Skipped``)."""
        found: list[type[State]] = [cls] if include_self else []
        todo = list(cls.__subclasses__())
        while todo:
            sub = todo.pop(0)
            if sub in _remote_types or sub in _read_only_types or sub in found:
                continue  # the same-named copies plait.states makes for remote and read-only states
            found.append(sub)
            todo.extend(sub.__subclasses__())
        return [c.__name__ for c in found] if names_only else found

    @classmethod
    def parents(cls, include_self: bool = False, names_only: bool = False) -> list[Any]:
        """Every state class above this one, up to ``State`` (``TimedOut.parents()``: ``Failed``, ...)."""
        found = [c for c in cls.__mro__ if issubclass(c, State) and (include_self or c is not cls)]
        return [c.__name__ for c in found] if names_only else found

    def __repr__(self) -> str:
        if self.message:  # Prefect 1's form: <Success: "Task run succeeded.">
            return f'<{self.name}: "{self.message}">'
        return f"<{self.name}>"


class Pending(State):
    """Waiting to run."""

    __slots__ = ()
    _pending = True


class Scheduled(Pending):
    """Waiting for ``start_time`` (an aware ``datetime``; when none is given, now)."""

    __slots__ = ("start_time",)

    def __init__(self, message: str | None = None, result: Any = None, start_time: datetime | None = None) -> None:
        super().__init__(message, result)
        self.start_time = start_time if start_time is not None else datetime.now(UTC)


class Paused(Scheduled):
    """Stopped until someone resumes it (``signals.PAUSE``, ``manual_only`` trigger).

    ``start_time``, when given, is when it may go on by itself (``None``, the default: only when
    resumed), as in Prefect 1.
    """

    __slots__ = ()

    def __init__(self, message: str | None = None, result: Any = None, start_time: datetime | None = None) -> None:
        State.__init__(self, message, result)
        self.start_time = start_time


class Retrying(Scheduled):
    """Failed with retries left; will run again at ``start_time``. ``run_count`` attempts so far.

    A task that failed in the middle of a ``signals.LOOP`` keeps its place: ``loop_count`` and
    ``loop_result`` are the iteration it had reached and that iteration's payload, and the
    retry starts from there (so the work of earlier iterations is not repeated).
    """

    __slots__ = ("loop_count", "loop_result", "run_count")

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        start_time: datetime | None = None,
        run_count: int | None = None,
        loop_count: int | None = None,
        loop_result: Any = None,
    ) -> None:
        super().__init__(message, result, start_time)
        # the attempts so far; made inside a task run (a RETRY signal), that run's count
        self.run_count = run_count if run_count is not None else _context_value("task_run_count", 1)
        self.loop_count = loop_count
        self.loop_result = loop_result


class Resume(Scheduled):
    """Let a paused task through: given in ``flow.run(task_states={task: Resume()})``, the task
    runs with ``plait.context.resume`` set, so a ``manual_only`` trigger or ``pause_task()`` passes.
    """

    __slots__ = ()


class Running(State):
    """Running now."""

    __slots__ = ()
    _running = True


# --- states of runs handed to a Plait server (plait-server's state machine) ---------------------


class Submitted(Pending):
    """Claimed by an agent, which is starting the flow run's process (a Plait server's state)."""

    __slots__ = ()


class Cancelling(Running):
    """Asked to stop: the run ends ``Cancelled`` at its next task boundary (a Plait server's state)."""

    __slots__ = ()


class Finished(State):
    """Base of every final state."""

    __slots__ = ()
    _finished = True


class Success(Finished):
    """Finished without error; ``result`` is the return value.

    ``result_location`` is where the result was stored (a checkpoint or target, as its result
    type's URI), when it was: read it with ``getattr(state, "result_location", None)``, since a
    result that was not stored leaves it unset (so plain task runs pay nothing for it).
    """

    __slots__ = ("result_location",)
    _successful = True


class Cached(Success):
    """Not run: the result came from a cache or an existing target.

    What the cache validators (``plait.cache_validators``) compare against:

    Args:
        cached_inputs: the inputs of the run that produced the result.
        cached_parameters: the flow parameters of that run.
        cached_result_expiration: when the cached result stops being valid (an aware
            ``datetime``, or ``None`` for never).
        result_location: where the result was read from (a target or a cache entry), if anywhere.
    """

    __slots__ = ("cached_inputs", "cached_parameters", "cached_result_expiration")

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        cached_inputs: dict[str, Any] | None = None,
        cached_parameters: dict[str, Any] | None = None,
        cached_result_expiration: datetime | None = None,
        result_location: str | None = None,
    ) -> None:
        super().__init__(message, result)
        self.cached_inputs = cached_inputs
        self.cached_parameters = cached_parameters
        self.cached_result_expiration = cached_result_expiration
        self.result_location = result_location

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        expiration = self.cached_result_expiration
        data["cached_result_expiration"] = None if expiration is None else expiration.isoformat()
        data["result_location"] = self.result_location
        return data


class Skipped(Success):
    """Not run on purpose (``signals.SKIP``, or an upstream task was skipped)."""

    __slots__ = ()
    _skipped = True


class Mapped(Success):
    """A mapped task: one child state per item in ``map_states``.

    ``result`` is the list of the children's results (a skipped child's is its ``SKIP``). A
    ``Mapped`` state is successful only when every child is, and failed when any child failed.
    """

    __slots__ = ("_n_map_states", "_results", "map_states")

    def __init__(
        self,
        message: str | None = None,
        map_states: list[State] | None = None,
        *,
        result: Any = _UNREAD,
        n_map_states: int | None = None,
    ) -> None:
        super().__init__(message, result)
        self.map_states: list[State] = map_states if map_states is not None else []
        self._n_map_states = n_map_states

    @property
    def n_map_states(self) -> int:
        """How many children the mapped task has (``len(map_states)`` unless given, as Prefect 1's)."""
        n = self._n_map_states
        return n if n is not None else len(self.map_states)

    @property
    def result(self) -> list[Any]:  # type: ignore[override]
        # Built on first read, so children whose results live on a cluster are fetched only
        # when somebody wants them, and then in one go (see ``gather_results``).
        results = self._results
        if results is _UNREAD:
            results = self._results = gather_results(self.map_states)
        return results

    @result.setter
    def result(self, value: Any) -> None:
        self._results = value

    def is_successful(self) -> bool:
        return all(s.is_successful() for s in self.map_states)

    def is_failed(self) -> bool:
        return any(s.is_failed() for s in self.map_states)

    def is_skipped(self) -> bool:
        return bool(self.map_states) and all(s.is_skipped() for s in self.map_states)

    def _comparable_result(self) -> Any:
        return self.map_states

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["map_states"] = [s.to_dict() for s in self.map_states]
        return data


class Failed(Finished):
    """Finished with an error: ``result`` is the exception, ``traceback`` its formatted text."""

    __slots__ = ("traceback",)
    _failed = True

    def __init__(self, message: str | None = None, result: Any = None, traceback: str | None = None) -> None:
        super().__init__(message, result)
        if traceback.__class__ is str and (_secret_values or "://" in traceback):
            traceback = mask(traceback)
        self.traceback = traceback

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["traceback"] = self.traceback
        return data


class TriggerFailed(Failed):
    """Not run: the task's trigger did not pass (by default, an upstream task failed)."""

    __slots__ = ()


class TimedOut(Failed):
    """Ran longer than the task's ``timeout``."""

    __slots__ = ()


class ValidationFailed(Failed):
    """The task's result did not pass a check (``signals.VALIDATIONFAIL``), as in Prefect 1."""

    __slots__ = ()


class Looped(Finished):
    """One iteration of a looping task ended (``signals.LOOP``); the next one starts at once.

    State handlers see it between iterations; ``loop_count`` is the iteration that ended and
    ``result`` the payload it passed on (``plait.context.task_loop_result`` of the next one).
    """

    __slots__ = ("loop_count",)

    def __init__(self, message: str | None = None, result: Any = None, loop_count: int | None = None) -> None:
        super().__init__(message, result)
        self.loop_count = loop_count if loop_count is not None else _context_value("task_loop_count", 1)


class Cancelled(Finished):
    """Stopped from outside (Ctrl-C, a cancelled flow run)."""

    __slots__ = ()
    _failed = True


def _kind(cls: type) -> type:
    # a remote state (see remote_state) is of the same kind as the plain state it copies
    return cls.__bases__[0] if cls in _remote_types else cls


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays, whose == is elementwise: unequal unless the same object
        return False


def remask(state: State) -> State:
    """Mask ``state``'s message and traceback again, with the secrets known now; returns ``state``.

    For states made where some secrets were not known (a worker process, a Dask worker): the
    driver masks them again when they arrive.
    """
    state.message = mask(state.message)
    if isinstance(state, Failed):
        state.traceback = mask(state.traceback)
    return state


#: State classes by name, for signals and deserialization.
STATES_BY_NAME: dict[str, type[State]] = {
    cls.__name__: cls
    for cls in (
        State,
        Pending,
        Paused,
        Scheduled,
        Retrying,
        Resume,
        Running,
        Submitted,
        Cancelling,
        Finished,
        Looped,
        Success,
        Cached,
        Skipped,
        Mapped,
        Failed,
        TriggerFailed,
        TimedOut,
        ValidationFailed,
        Cancelled,
    )
}


def _context_value(key: str, default: Any) -> Any:
    """A key of the run context (a state made inside a task run takes the run's counts from it)."""
    from plait import context

    value = context.get(key)
    return default if value is None else value


# --- results kept elsewhere ------------------------------------------------------------------
#
# An executor that runs task runs on other machines (a cluster) can leave a successful run's
# result where it was computed: it hands the runner a *remote state*, a copy of the state whose
# ``result`` is fetched from the executor the first time somebody reads it. The runner passes
# ``result_ref(state)`` (the executor's handle, not the value) to downstream task runs on that
# executor, which resolves it where the downstream run happens. See docs/architecture.md.


class ResultSource:
    """Where remote states fetch their results from (implemented by an executor).

    ``fetch(refs)`` returns the values behind ``refs`` (handles this source gave to
    ``remote_state``), in the same order; it is called with many refs at once when it can be.
    """

    def fetch(self, refs: list[Any]) -> list[Any]:
        raise NotImplementedError


_RESULT_SLOT = State.__dict__["result"]  # the plain slot under the remote states' property
_remote_classes: dict[type[State], type[State]] = {}


def remote_state(state: State, source: ResultSource, ref: Any) -> State:
    """A copy of ``state`` whose ``result`` is the value behind ``ref`` in ``source``, fetched on first read.

    The copy is an instance of a subclass of ``type(state)`` with the same name, so
    ``isinstance`` checks, ``state.name`` and ``repr`` are unchanged; it pickles as a plain
    state holding the (fetched) result.

    ```python
    state = remote_state(Success("done"), my_executor, ("batch-17", 3))
    state.result  # my_executor.fetch([("batch-17", 3)])[0], fetched once
    ```
    """
    cls = _remote_classes.get(type(state))
    if cls is None:
        cls = _remote_classes[type(state)] = _make_remote_class(type(state))
    copy = cls.__new__(cls)
    for name in _slot_names(type(state)):
        if name != "result" and hasattr(state, name):
            setattr(copy, name, getattr(state, name))
    _RESULT_SLOT.__set__(copy, None)
    copy._source = source  # type: ignore[attr-defined]
    copy._ref = ref  # type: ignore[attr-defined]
    return copy


def is_remote(state: State) -> bool:
    """Whether ``state``'s result is held by an executor and not fetched yet."""
    return type(state) in _remote_types and state._source is not None  # type: ignore[attr-defined]


def result_ref(state: State) -> Any:
    """What to hand an executor that keeps results, in place of ``state.result``.

    The executor's own handle for a remote state; for a ``Mapped`` state the list of its
    children's refs; otherwise the result itself. Never fetches anything.
    """
    if type(state) in _remote_types:
        ref = state._ref  # type: ignore[attr-defined]
        return ref if ref is not None else state.result
    if isinstance(state, Mapped) and state._results is _UNREAD:
        return [result_ref(s) for s in state.map_states]
    return state.result


def gather_results(states: list[State]) -> list[Any]:
    """``[s.result for s in states]``, fetching the remote ones with one ``fetch`` per source.

    A skipped child gives the ``SKIP`` signal that skipped it, as in Prefect 1.
    """
    pending: dict[int, tuple[ResultSource, list[State]]] = {}
    for s in states:
        if type(s) in _remote_types and s._source is not None:  # type: ignore[attr-defined]
            source = s._source  # type: ignore[attr-defined]
            pending.setdefault(id(source), (source, []))[1].append(s)
    for source, remote in pending.values():
        values = source.fetch([s._ref for s in remote])  # type: ignore[attr-defined]
        for s, value in zip(remote, values, strict=True):
            _RESULT_SLOT.__set__(s, value)
            s._source = None  # type: ignore[attr-defined]
    # a skipped child's result is the SKIP signal that skipped it (Prefect 1's)
    return [s.result for s in states]


_remote_types: set[type[State]] = set()


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        names.extend(n for n in getattr(klass, "__slots__", ()) if n not in names)
    return names


def _make_remote_class(base: type[State]) -> type[State]:
    def get(self: State) -> Any:
        source = self._source  # type: ignore[attr-defined]
        if source is not None:
            value = source.fetch([self._ref])[0]  # type: ignore[attr-defined]
            _RESULT_SLOT.__set__(self, value)
            self._source = None  # type: ignore[attr-defined]
            return value
        return _RESULT_SLOT.__get__(self)

    def set_(self: State, value: Any) -> None:
        _RESULT_SLOT.__set__(self, value)
        self._source = None  # type: ignore[attr-defined]
        self._ref = None  # type: ignore[attr-defined]

    def reduce(self: State) -> tuple[Any, ...]:
        slots = {n: getattr(self, n) for n in _slot_names(base) if n != "_results" and hasattr(self, n)}
        return _plain_state, (base, slots)

    cls = type(
        base.__name__,
        (base,),
        {
            "__slots__": ("_ref", "_source"),
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "result": property(get, set_, doc="The result, fetched from the executor on first read."),
            "__reduce__": reduce,
        },
    )
    _remote_types.add(cls)
    return cls


def _plain_state(cls: type[State], slots: dict[str, Any]) -> State:
    state = cls.__new__(cls)
    for name, value in slots.items():
        setattr(state, name, value)
    return state


# --- read-only views, for code that must not change a run's states (plugins) ----------------
#
# Plugin hooks get ``read_only(state)``: an object of a subclass of the state's class (same
# name, same ``isinstance`` answers, same methods) that reads everything from the state it
# views and refuses every assignment. A plugin that tries to change a state fails with an
# AttributeError, which the plugin system reports with the plugin's name; the run's own
# state is untouched. Making one costs one small object; what it shows is read on demand.


class ReadOnlyStateError(AttributeError):
    """Raised when code that was given a read-only view of a state tries to change it."""


def read_only(state: State) -> State:
    """A read-only view of ``state``: same class name and answers, every assignment refused.

    Containers it holds are viewed read-only too: a flow-run state's ``{task: State}``
    mapping, a ``Mapped`` state's ``map_states`` and the states in them. A result that is a
    plain ``list``, ``dict``, ``set`` or ``bytearray`` is returned as a shallow copy; other
    result objects are the task's own (a plugin must not change them).

    ```python
    view = read_only(state)
    view.message              # the state's message
    view.result = None        # ReadOnlyStateError
    ```
    """
    view_cls = _read_only_classes.get(type(state))
    if view_cls is None:
        cls = type(state)
        if cls in _read_only_types:
            return state
        view_cls = _read_only_classes[cls] = _make_read_only_class(cls)
    view = view_cls.__new__(view_cls)
    _set_origin(view, "_origin", state)
    return view


class _ReadOnlyStates(Mapping):
    """A read-only ``{task: State}`` mapping whose states are read-only views."""

    __slots__ = ("_states",)

    def __init__(self, states: Mapping[Any, State]) -> None:
        self._states = states

    def __getitem__(self, key: Any) -> Any:
        value = self._states[key]
        return read_only(value) if isinstance(value, State) else value

    def __iter__(self) -> Iterator[Any]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class _ReadOnlyStateList(Sequence):
    """A read-only list of states (a ``Mapped`` state's children) whose items are read-only views."""

    __slots__ = ("_states",)

    def __init__(self, states: Sequence[State]) -> None:
        self._states = states

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [read_only(s) for s in self._states[index]]
        return read_only(self._states[index])

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return repr(list(self))


_read_only_classes: dict[type[State], type[State]] = {}
_read_only_types: set[type[State]] = set()
_COPIED_RESULTS = (list, dict, set, bytearray)


_set_origin = object.__setattr__  # views refuse assignment; this sets their one slot


def _view_value(name: str, value: Any) -> Any:
    if name == "map_states" and isinstance(value, list):
        return _ReadOnlyStateList(value)
    if name == "result":
        if type(value) is dict and value and isinstance(next(iter(value.values())), State):
            return _ReadOnlyStates(value)
        if type(value) in _COPIED_RESULTS:
            return value.copy()
    return value


def _make_read_only_class(base: type[State]) -> type[State]:
    def make_property(name: str) -> property:
        def get(self: State) -> Any:
            return _view_value(name, getattr(self._origin, name))

        return property(get, doc=f"The viewed state's {name!r} (read-only).")

    def setattr_(self: State, name: str, value: Any) -> None:
        raise ReadOnlyStateError(
            f"cannot set {name!r}: this {base.__name__} state is a read-only view (plugins and "
            "observers may read states, never change them; return a new state from a state handler instead)"
        )

    def delattr_(self: State, name: str) -> None:
        setattr_(self, name, None)

    def getattr_(self: State, name: str) -> Any:
        # Attributes that are not slots of the state (a remote state's, private ones): the origin's.
        if name == "_origin":  # not set (a view made without read_only())
            raise AttributeError(name)
        return getattr(self._origin, name)

    def reduce(self: State) -> tuple[Any, ...]:
        # Pickled or copied, a view becomes a plain (changeable) copy of the state it views.
        origin = self._origin
        return _plain_state, (base, {n: getattr(origin, n) for n in _slot_names(base) if n != "_results"})

    namespace: dict[str, Any] = {
        "__slots__": ("_origin",),
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__setattr__": setattr_,
        "__delattr__": delattr_,
        "__getattr__": getattr_,
        "__reduce__": reduce,
    }
    for name in _slot_names(base):
        if not name.startswith("_"):
            namespace[name] = make_property(name)
    # Mapped.result is a property, not a slot
    namespace["result"] = make_property("result")
    cls = type(base.__name__, (base,), namespace)
    _read_only_types.add(cls)
    return cls
