"""What runs on the Dask workers: batches of task runs, and the worker set-up.

Kept apart from the executor so the functions Dask ships by reference are small and
importable on every worker (``plait_dask.worker.run_batch``).
"""

from __future__ import annotations

import logging
from typing import Any

import cloudpickle
from distributed.diagnostics.plugin import WorkerPlugin

from plait.states import State

__all__ = ["BatchOutput", "PlaitWorkerSetup", "Ref", "StateRef", "batch_records", "batch_values", "run_batch"]


class Ref:
    """A handle to one task run's result on the cluster: item ``index`` of batch ``key``'s values.

    ``key`` ``None``: an earlier call of the same batch (a task pipelined after one in its batch).
    """

    __slots__ = ("index", "key")

    def __init__(self, key: str | None, index: int) -> None:
        self.key = key
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.key, self.index)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key or 'this batch'}[{self.index}]>"


class StateRef(Ref):
    """A handle to the final state of one task run (for ``plait.engine.runner.run_task_after``)."""

    __slots__ = ()


class BatchOutput:
    """What a batch leaves on its worker: per task run, its record and its result.

    ``records[j]`` is ``(ok, payload, kept)``: ``ok`` false means the call raised and
    ``payload`` is the exception; otherwise ``payload`` is what the call returned (for
    ``run_task_recorded``, the state changes) and ``kept`` says whether the final state's
    result was taken out into ``values[j]``.
    """

    __slots__ = ("records", "secrets", "values")

    def __init__(
        self, records: list[tuple[bool, Any, bool]], values: list[Any], secrets: list[str] | None = None
    ) -> None:
        self.records = records
        self.values = values
        self.secrets = secrets or []

    def __reduce__(self) -> tuple[Any, ...]:
        return BatchOutput, (self.records, self.values, self.secrets)


class Records(list):
    """A batch's records, with ``secrets``: the values the worker registered for masking.

    The driver registers them before it looks at the records, so a secret a task read on a
    worker is masked in the driver's logs, tables and tracebacks too.
    """

    __slots__ = ("secrets",)

    def __init__(self, records: list[tuple[bool, Any, bool]], secrets: list[str]) -> None:
        super().__init__(records)
        self.secrets = secrets

    def __reduce__(self) -> tuple[Any, ...]:
        return Records, (list(self), self.secrets)


def unpicklable(message: str) -> None:
    """Stands in, in a batch, for a task run that could not be pickled: fails with the reason."""
    from plait.errors import ExecutorError

    raise ExecutorError(message)


# Per flow run (the driver's run id), how many of this worker's registered secrets it was sent.
_secrets_sent: dict[str, int] = {}


def run_batch(payload: bytes, deps: dict[str, BatchOutput], local: bool = False, run: str | None = None) -> BatchOutput:
    """Run a batch of calls ``(fn, args, kwargs)`` pickled together in ``payload``.

    Pickled as one object, the calls share one copy of what they have in common (the flow
    context, the task). ``Ref`` handles among their arguments are replaced by the values in
    ``deps`` (the outputs of earlier batches, which Dask brought to this worker) or, with
    ``local``, by those of earlier calls of this batch (tasks pipelined one after another). A
    successful run's result is taken out of its final state and kept in the output's
    ``values``, so only the states travel back to the driver.
    """
    from plait.errors import portable_exception
    from plait.secrets import registered_count, registered_since

    # Secrets this batch's tasks register travel back with its records; a run new to this
    # worker also gets those registered before (a value a task cached from an earlier run).
    mark = registered_count() if run in _secrets_sent else 0
    calls = cloudpickle.loads(payload)
    records: list[tuple[bool, Any, bool]] = []
    values: list[Any] = []
    own = BatchOutput(records, values)  # what earlier calls of this batch left, for Ref(None, j)
    for fn, args, kwargs in calls:
        try:
            if deps or local:
                args, kwargs = _resolve(args, deps, own), _resolve(kwargs, deps, own)
            out = fn(*args, **kwargs)
        except Exception as exc:
            records.append((False, portable_exception(exc), False))
            values.append(None)
            continue
        kept, value = _take_result(out)
        records.append((True, out, kept))
        values.append(value)
    secrets, count = registered_since(mark)
    if run is not None:
        if len(_secrets_sent) > 1000:  # runs long gone
            _secrets_sent.clear()
        _secrets_sent[run] = count
    return BatchOutput(records, values, secrets)


def batch_records(output: BatchOutput) -> Records:
    """The part of a batch's output the driver needs: the records (and secrets), without the results."""
    return Records(output.records, output.secrets)


def batch_values(output: BatchOutput) -> list[Any]:
    """The results of a batch, when the driver wants them (without the records it has)."""
    return output.values


class PlaitWorkerSetup(WorkerPlugin):
    """A Dask worker plugin: sets the ``plait`` logger's level on each worker (current and future).

    Records at that level and above are forwarded to the driver (``Client.forward_logging``)
    and handled there by the driver's ``plait`` loggers, with the task's name on them.
    """

    name = "plait-worker-setup"

    def __init__(self, level: int) -> None:
        self.level = level

    def setup(self, worker: Any) -> None:
        from plait.secrets import SecretsFilter

        plait_logger = logging.getLogger("plait")
        plait_logger.setLevel(self.level)
        # What the worker's handlers send (the driver's forwarded logs among them) is masked here,
        # with the secrets the worker knows: the driver may not know them yet.
        for handler in plait_logger.handlers:
            if not any(isinstance(f, SecretsFilter) for f in handler.filters):
                handler.addFilter(SecretsFilter())


def _take_result(out: Any) -> tuple[bool, Any]:
    # The state changes of run_task_recorded: [(old, new), ...]; only a success's result is
    # kept back (a failure's exception travels with its state, for the logs and handlers).
    if not (isinstance(out, list) and out and isinstance(out[-1], tuple) and len(out[-1]) == 2):
        return False, None
    _old, new = out[-1]
    if not (isinstance(new, State) and new._successful) or new.result is None:
        return False, None
    value = new.result
    new.result = None  # the state object is this run's own: nothing else holds it
    return True, value


def _resolve(obj: Any, deps: dict[str, BatchOutput], own: BatchOutput, depth: int = 3) -> Any:
    """``obj`` with every ``Ref`` (in it, or in its lists, tuples and dict values) replaced."""
    kind = type(obj)
    if kind is Ref:
        return (own if obj.key is None else deps[obj.key]).values[obj.index]
    if kind is StateRef:
        return _final_state((own if obj.key is None else deps[obj.key]).records[obj.index])
    if depth == 0:
        return obj
    if isinstance(obj, dict):
        return {k: _resolve(v, deps, own, depth - 1) for k, v in obj.items()} if _has_ref(obj.values(), depth) else obj
    if kind in (list, tuple):
        return kind(_resolve(v, deps, own, depth - 1) for v in obj) if _has_ref(obj, depth) else obj
    return obj


def _final_state(record: tuple[bool, Any, bool]) -> State | None:
    """The final state in a batch record, or ``None`` when the call raised or did not run the task."""
    ok, payload, _kept = record
    if not ok or not isinstance(payload, list) or not payload:
        return None
    return payload[-1][1]


def _has_ref(items: Any, depth: int) -> bool:
    for v in items:
        if type(v) is Ref or type(v) is StateRef:
            return True
        if depth > 1 and isinstance(v, (dict, list, tuple)):
            inner = v.values() if isinstance(v, dict) else v
            if _has_ref(inner, depth - 1):
                return True
    return False
