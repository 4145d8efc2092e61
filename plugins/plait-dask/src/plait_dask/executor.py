"""``DaskExecutor``: run a flow's task runs on a ``dask.distributed`` cluster.

How a run goes (the runner is Plait's own driver-side scheduler; Dask runs the work):

- ``start()`` connects a ``distributed.Client`` to ``address``, or starts a temporary
  ``LocalCluster`` (bound to 127.0.0.1) or a ``cluster_class`` cluster, and closes what it
  started at the end of the run. Logs of the ``plait`` loggers on the workers are forwarded to
  the driver's loggers (``Client.forward_logging``), so they carry the task's name there.
- ``submit()`` does not talk to Dask: it buffers the task run and returns a light future. When
  the runner is about to wait (``flush()``), the buffered runs go out in *batches*, one Dask
  task per batch (grouped by Dask resources), so a 100,000-item map is a few hundred Dask tasks,
  not 100,000. A batch is pickled once, so the flow context and the task travel once per batch.
- On the worker each run goes through ``run_task_recorded``; the result of a successful run
  stays on the worker, in the batch's output. Only the recorded state changes come back to the
  driver, which replays them through state handlers and plugin hooks (each change is seen once,
  in the driver). The final state becomes a *remote state* (``plait.states.remote_state``): its
  ``result`` is fetched from the cluster when someone reads it.
- Downstream task runs get handles (``Ref``) to upstream results; Dask brings the batches they
  come from to the worker that needs them. A chain of tasks never routes data via the driver.
- At the end of the run, before the client closes, every result not read yet is gathered in one
  call, so ``state.result[task].result`` works after ``flow.run()`` returns.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import math
import queue
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from plait.engine.executors import Executor
from plait.errors import ExecutorError
from plait.states import ResultSource, State, gather_results, remote_state
from plait.tasks import Task

__all__ = ["DaskExecutor", "DaskExecutorError"]

logger = logging.getLogger("plait.dask")

#: The tag prefix that asks for Dask worker resources: ``dask-resource:GPU=1``.
RESOURCE_TAG = "dask-resource:"
#: Seconds to wait for a scheduler at ``address`` unless ``client_kwargs`` says otherwise.
DEFAULT_CONNECT_TIMEOUT = 10
#: The largest number of task runs in one Dask task.
MAX_BATCH = 1000
#: Batches per worker thread a burst of ready task runs is split into (load balance vs overhead).
BATCHES_PER_THREAD = 4


class DaskExecutorError(ExecutorError):
    """The Dask executor was set up wrongly, or its cluster cannot be reached."""


class DaskExecutor(Executor, ResultSource):
    """Runs task runs on a ``dask.distributed`` cluster.

    Args:
        address: the scheduler of an existing cluster (``"tcp://10.0.0.5:8786"``); default:
            ``address`` in the ``[plugins.dask]`` section of Plait's configuration
            (``PLAIT__PLUGINS__DASK__ADDRESS``). Without one, a temporary cluster is started for
            the run and closed at its end.
        cluster_class: the class of that temporary cluster, or its dotted path
            (``"dask_jobqueue.SLURMCluster"``); default ``distributed.LocalCluster``, bound to
            127.0.0.1 with worker processes and its web server on a free port, unless ``cluster_kwargs`` say otherwise.
        cluster_kwargs: keyword arguments of ``cluster_class`` (``{"n_workers": 4}``).
        adapt_kwargs: turn on adaptive scaling: ``cluster.adapt(**adapt_kwargs)``
            (``{"minimum": 1, "maximum": 10}``).
        client_kwargs: keyword arguments of ``distributed.Client`` (``timeout`` defaults to
            10 seconds: a scheduler that does not answer by then fails the run).
        batch_size: task runs per Dask task; default: a burst of ready runs is split into
            about four batches per worker thread, at most 1000 runs each. ``1`` sends every
            task run as its own Dask task.

    ```python
    from plait_dask import DaskExecutor

    state = flow.run(executor=DaskExecutor(cluster_kwargs={"n_workers": 4}))
    state = flow.run(executor=DaskExecutor("tcp://scheduler:8786"))
    ```

    Task tags ``dask-resource:NAME=AMOUNT`` become Dask resources: such a task runs only on
    workers started with that resource (``dask worker --resources "GPU=1"``).
    """

    name = "dask"
    in_process = False
    keeps_results = True
    pipelines = True

    def __init__(
        self,
        address: str | None = None,
        cluster_class: type | str | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise DaskExecutorError(
                f"DaskExecutor: address must be a scheduler address like 'tcp://127.0.0.1:8786', got {address!r}"
            )
        if address is not None and cluster_class is not None:
            raise DaskExecutorError(
                f"DaskExecutor: give address ({address!r}) or cluster_class ({cluster_class!r}), not both: "
                "an address connects to a running cluster, a cluster class starts one"
            )
        if cluster_class is not None and not isinstance(cluster_class, (str, type)):
            raise DaskExecutorError(
                f"DaskExecutor: cluster_class must be a class or a dotted path like 'distributed.LocalCluster', "
                f"got {type(cluster_class).__name__}: {cluster_class!r}"
            )
        for label, value in (
            ("cluster_kwargs", cluster_kwargs),
            ("adapt_kwargs", adapt_kwargs),
            ("client_kwargs", client_kwargs),
        ):
            if value is not None and not isinstance(value, dict):
                raise DaskExecutorError(
                    f"DaskExecutor: {label} must be a dict of keyword arguments, got {type(value).__name__}: {value!r}"
                )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise DaskExecutorError(f"DaskExecutor: batch_size must be a positive integer, got {batch_size!r}")
        if address is None and cluster_class is None:
            address = _configured_address()
        self.address = address.strip() if address else None
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs) if adapt_kwargs is not None else None
        self.client_kwargs = dict(client_kwargs or {})
        self.batch_size = batch_size
        self.client: Any = None
        self.cluster: Any = None
        self._run: _Run | None = None
        self._lost: dict[str, BaseException] = {}  # batches whose results could not be fetched

    # -- the executor interface ----------------------------------------------------------------

    @contextmanager
    def start(self) -> Iterator[DaskExecutor]:
        """Connect (or start a cluster), run, gather the results not read yet, close what was started."""
        import distributed

        from plait_dask.worker import PlaitWorkerSetup

        cluster = client = None
        try:
            if self.address is None:
                cluster = self._start_cluster()
                client = distributed.Client(cluster, **self.client_kwargs)
            else:
                client = self._connect(distributed)
            _register_flow_modules()
            level = logging.getLogger("plait").getEffectiveLevel()
            client.forward_logging("plait", level=level)
            # after forward_logging: the set-up masks secrets in what the forwarding handler sends
            client.register_plugin(PlaitWorkerSetup(level), name="plait-worker-setup")
            self.client, self.cluster = client, cluster
            self._run = _Run(self, client)
            yield self
            self._run.gather_all()
        finally:
            run, self._run = self._run, None
            if run is not None:
                run.close()
            self.client = self.cluster = None
            if client is not None:
                try:
                    client.unforward_logging("plait")
                except Exception:  # the connection may already be gone
                    pass
                client.close()
            if cluster is not None:
                cluster.close()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Buffer ``fn(*args, **kwargs)`` for the next batch; return its future."""
        run = self._run
        if run is None:
            raise DaskExecutorError("DaskExecutor.submit() called outside `with executor.start():`")
        return run.add(fn, args, kwargs)

    def flush(self) -> None:
        """Send the buffered task runs to the cluster, in batches."""
        if self._run is not None:
            self._run.flush()

    def pending_ref(self, future: Any) -> Any:
        """A handle to the result of a task run not finished yet, resolved on the worker (pipelining)."""
        return _Pending(future, state=False)

    def pending_state(self, future: Any) -> Any:
        """A handle to the final state of a task run not finished yet, resolved on the worker."""
        return _Pending(future, state=True)

    def wait(self, futures: Any) -> Any:
        """Send what is buffered, then block until ``futures`` are done; return their results."""
        self.flush()
        return super().wait(futures)

    def fetch(self, refs: list[Any]) -> list[Any]:
        """The results behind ``refs``, fetched from the cluster in one go (``ResultSource``)."""
        for ref in refs:
            lost = self._lost.get(ref.key)
            if lost is not None:
                raise DaskExecutorError(
                    f"DaskExecutor: the result of this task run could not be brought back from the Dask "
                    f"cluster ({lost!r}); return a value that pickles, or use it in a downstream task"
                )
        run = self._run
        if run is None or any(ref.key not in run.batches for ref in refs):
            raise DaskExecutorError(
                "DaskExecutor: this result was left on a Dask cluster that is closed now; "
                "read results during the run or from the state flow.run() returned"
            )
        return run.fetch(refs)

    def __repr__(self) -> str:
        where = self.address or (_class_name(self.cluster_class) if self.cluster_class else "LocalCluster")
        return f"<DaskExecutor {where}>"

    # -- set-up --------------------------------------------------------------------------------

    def _start_cluster(self) -> Any:
        import distributed

        cls = self.cluster_class
        if cls is None:
            cls = distributed.LocalCluster
        elif isinstance(cls, str):
            cls = _import_class(cls)
        kwargs = dict(self.cluster_kwargs)
        if cls is distributed.LocalCluster:
            # Bound to the loopback only, on a free port for its web server (8787 may be taken), unless asked.
            kwargs.setdefault("host", "127.0.0.1")
            kwargs.setdefault("dashboard_address", ":0")
            kwargs.setdefault("processes", True)
        try:
            cluster = cls(**kwargs)
        except TypeError as exc:
            raise DaskExecutorError(
                f"DaskExecutor: {_class_name(cls)} does not take cluster_kwargs {sorted(kwargs)}: {exc}"
            ) from None
        if self.adapt_kwargs is not None:
            cluster.adapt(**self.adapt_kwargs)
        return cluster

    def _connect(self, distributed: Any) -> Any:
        kwargs = dict(self.client_kwargs)
        kwargs.setdefault("timeout", DEFAULT_CONNECT_TIMEOUT)
        refused = _refused(self.address)  # type: ignore[arg-type]
        if refused is not None:
            # Nothing listens there: fail now rather than retry until the timeout.
            raise DaskExecutorError(
                f"DaskExecutor: no Dask scheduler at {self.address!r}: the connection was refused ({refused}). "
                "Start one there (`dask scheduler`), fix the address, or leave it out to run on a temporary "
                "local cluster"
            )
        timeout = _seconds(kwargs["timeout"])
        try:
            # distributed's connect() has no deadline on the handshake: a peer that accepts the
            # TCP connection and never answers (a hung scheduler, a firewall or proxy that holds
            # connections open) would block Client() for ever. Shake hands first, within the
            # timeout, on a throwaway connection.
            if timeout is not None:
                _handshake(self.address, timeout)  # type: ignore[arg-type]
            return distributed.Client(self.address, **kwargs)
        except (OSError, TimeoutError) as exc:
            raise DaskExecutorError(
                f"DaskExecutor: no Dask scheduler answered at {self.address!r} within {kwargs['timeout']}s "
                f"({exc or type(exc).__name__}). Start one there (`dask scheduler`), fix the address, or leave it "
                "out to run on a temporary local cluster"
            ) from None


class _TaskRunFuture:
    """The future ``submit`` returns: completed from the Dask callback thread, read by the runner."""

    __slots__ = ("_callbacks", "_done", "_event", "_exc", "_value", "batch", "index")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Any], None]] = []
        self._done = False
        self._event: threading.Event | None = None
        self._exc: BaseException | None = None
        self._value: Any = None
        self.batch: str | None = None  # the key of the batch it went out in, and its place there
        self.index = -1

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        # The runner adds its callback right after submit, before the batch is even sent.
        if self._done:
            fn(self)
        else:
            self._callbacks.append(fn)

    def result(self, timeout: float | None = None) -> Any:
        if not self._done:
            self._event = event = threading.Event()
            if not self._done and not event.wait(timeout):
                raise TimeoutError("task run still running on the Dask cluster")
        if self._exc is not None:
            raise self._exc
        return self._value

    def done(self) -> bool:
        return self._done

    def _set(self, value: Any, exc: BaseException | None) -> None:
        self._value, self._exc = value, exc
        self._done = True
        if self._event is not None:
            self._event.set()
        for fn in self._callbacks:
            fn(self)


class _Pending:
    """``pending_ref``/``pending_state`` of a task run; made a ``Ref``/``StateRef`` when its batch goes out."""

    __slots__ = ("future", "state")

    def __init__(self, future: _TaskRunFuture, state: bool) -> None:
        self.future = future
        self.state = state


class _Batch:
    __slots__ = ("future", "futures", "key", "remote", "values")

    def __init__(self, key: str, futures: list[_TaskRunFuture]) -> None:
        self.key = key
        self.futures = futures
        self.future: Any = None  # the Dask future of the batch's output, kept until the run ends
        self.remote: list[State] = []  # remote states whose results live in this batch
        self.values: list[Any] | None = None  # the results, once fetched to the driver


class _Run:
    """The DaskExecutor's bookkeeping for one flow run."""

    def __init__(self, executor: DaskExecutor, client: Any) -> None:
        self.executor = executor
        self.client = client
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], _TaskRunFuture]] = []
        self.batches: dict[str, _Batch] = {}
        self.prefix = f"plait-{uuid.uuid4().hex[:8]}"
        self.counter = itertools.count()
        self.resources: dict[int, dict[str, float] | None] = {}
        try:
            self.threads = max(2, sum(client.nthreads().values()))
        except Exception:
            self.threads = 2
        # Finished batches are queued by Dask's callback thread and their records fetched by
        # one collector thread, many batches per round trip.
        self.arrived: queue.SimpleQueue = queue.SimpleQueue()
        self.collector = threading.Thread(target=self._collect, name="plait-dask-collector", daemon=True)
        self.collector.start()

    def add(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> _TaskRunFuture:
        future = _TaskRunFuture()
        self.pending.append((fn, args, kwargs, future))
        return future

    def flush(self) -> None:
        from plait_dask.worker import Ref

        pending, self.pending = self.pending, []
        if not pending:
            return
        keys = []
        for call in pending:
            task = _task_of(call)
            res = self._resources(task) if task is not None else None
            keys.append(tuple(sorted(res.items())) if res else ())
        groups: dict[tuple[tuple[str, float], ...], list[Any]] = {}
        pipelined = any(_has_pending(call) for call in pending)
        if len(set(keys)) > 1 and pipelined:
            # A pipelined task may follow a task of another group: send runs of one group in
            # the order they came, so every batch goes out after those it refers to.
            runs: list[tuple[Any, list[Any]]] = []
            for key, call in zip(keys, pending, strict=True):
                if runs and runs[-1][0] == key:
                    runs[-1][1].append(call)
                else:
                    runs.append((key, [call]))
        else:
            for key, call in zip(keys, pending, strict=True):
                groups.setdefault(key, []).append(call)
            runs = list(groups.items())
        followers = _followers(pending) if pipelined else None
        for res_key, calls in runs:
            size = self.executor.batch_size or max(
                1, min(MAX_BATCH, math.ceil(len(calls) / (BATCHES_PER_THREAD * self.threads)))
            )
            if followers is None:
                for start in range(0, len(calls), size):
                    self._send(calls[start : start + size], dict(res_key) or None, Ref)
                continue
            # A pipelined task joins the batch of the task it follows only as the next link of
            # a chain: the tasks fanning out of one task go in other batches, run side by side.
            chunk: list[Any] = []
            in_chunk: set[int] = set()
            for call in calls:
                if chunk and (
                    len(chunk) >= size or any(id(f) in in_chunk and followers[id(f)] > 1 for f in _pending_of(call))
                ):
                    self._send(chunk, dict(res_key) or None, Ref)
                    chunk, in_chunk = [], set()
                chunk.append(call)
                in_chunk.add(id(call[3]))
            if chunk:
                self._send(chunk, dict(res_key) or None, Ref)

    def _send(self, calls: list[Any], resources: dict[str, float] | None, ref_type: type) -> None:
        from plait_dask.worker import batch_records, run_batch

        first = _task_of(calls[0])
        label = getattr(first, "slug", None) or getattr(first, "name", None) or "batch"
        key = f"{self.prefix}-{label}-{next(self.counter)}"
        for j, call in enumerate(calls):
            call[3].batch, call[3].index = key, j
        local = False
        if any(_has_pending(call) for call in calls):
            calls, local = [(fn, _placed(args, key), _placed(kwargs, key), f) for fn, args, kwargs, f in calls], True
        deps: dict[str, Any] = {}
        for _fn, args, kwargs, _f in calls:
            _collect_refs(args, ref_type, deps, self.batches)
            _collect_refs(kwargs.values(), ref_type, deps, self.batches)
        batch = _Batch(key, [c[3] for c in calls])
        self.batches[key] = batch
        payload = _dumps_batch([(fn, args, kwargs) for fn, args, kwargs, _f in calls])
        client = self.client
        batch.future = client.submit(
            run_batch, payload, deps, local, self.prefix, key=key, pure=False, resources=resources
        )
        records = client.submit(batch_records, batch.future, key=f"{key}-states", pure=False)
        records.add_done_callback(lambda f, batch=batch: self.arrived.put((batch, f)))

    def _collect(self) -> None:
        arrived = self.arrived
        while True:
            items = [arrived.get()]
            while True:
                try:
                    items.append(arrived.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in items)
            items = [item for item in items if item is not None]
            finished = [(b, f) for b, f in items if f.status == "finished"]
            if finished:
                try:
                    for (batch, _f), records in zip(
                        finished, self.client.gather([f for _, f in finished]), strict=True
                    ):
                        self._done(batch, records, None)
                except BaseException:
                    for batch, f in finished:  # one at a time, to tell which one failed
                        self._done_one(batch, f)
            for batch, f in items:
                if f.status != "finished":
                    self._done_one(batch, f)
            if stop:
                return

    def _done_one(self, batch: _Batch, records_future: Any) -> None:
        if batch.futures and batch.futures[0]._done:
            return
        try:
            records = records_future.result()
        except BaseException as exc:
            self._done(batch, None, exc)
        else:
            self._done(batch, records, None)

    def _done(self, batch: _Batch, records: Any, exc: BaseException | None) -> None:
        # Complete each task run's future with its state changes.
        from plait_dask.worker import Ref

        secrets = getattr(records, "secrets", None)
        if secrets:  # before anyone in the driver sees these states (or logs them)
            from plait.secrets import register_secret

            for value in secrets:
                register_secret(value)
        if exc is not None:
            for f in batch.futures:
                f._set(None, exc)
            return
        for j, ((ok, payload, kept), f) in enumerate(zip(records, batch.futures, strict=True)):
            if not ok:
                f._set(None, payload)
                continue
            if kept:
                old, new = payload[-1]
                new = remote_state(new, self.executor, Ref(batch.key, j))
                batch.remote.append(new)
                payload[-1] = (old, new)
            f._set(payload, None)

    def fetch(self, refs: list[Any]) -> list[Any]:
        from plait_dask.worker import batch_values

        wanted = [b for b in dict.fromkeys(self.batches[r.key] for r in refs) if b.values is None]
        if wanted:
            # Only the values travel: the driver has the records already.
            client = self.client
            futures = [client.submit(batch_values, b.future, key=f"{b.key}-values", pure=False) for b in wanted]
            for b, values in zip(wanted, client.gather(futures), strict=True):
                b.values = values
        return [self.batches[r.key].values[r.index] for r in refs]  # type: ignore[index]

    def gather_all(self) -> None:
        """Fetch every result still on the cluster: they must outlive the client."""
        remote = [s for b in self.batches.values() for s in b.remote]
        if not remote:
            return
        try:
            gather_results(remote)
        except Exception:
            # Some batch's results cannot travel (a value that does not pickle...): keep the
            # others, and let reading a lost one say why.
            for b in self.batches.values():
                if b.values is not None or not b.remote:
                    continue
                try:
                    gather_results(b.remote)
                except Exception as exc:
                    self.executor._lost[b.key] = exc
                    logger.error(
                        "DaskExecutor: the results of %d task run(s) could not be brought back from the cluster: %r",
                        len(b.remote),
                        exc,
                    )

    def close(self) -> None:
        self.arrived.put(None)
        self.collector.join(timeout=10)
        for batch in self.batches.values():
            batch.future = None
        self.batches.clear()

    def _resources(self, task: Task) -> dict[str, float] | None:
        known = self.resources.get(id(task), False)
        if known is not False:
            return known  # type: ignore[return-value]
        res = task_resources(task)
        self.resources[id(task)] = res
        return res


def task_resources(task: Task) -> dict[str, float] | None:
    """The Dask resources a task's ``dask-resource:NAME=AMOUNT`` tags ask for, or ``None``.

    ```python
    @task(tags=["dask-resource:GPU=1", "dask-resource:memory=4e9"])
    def train(data): ...
    # task_resources(train) == {"GPU": 1.0, "memory": 4e9}
    ```
    """
    out: dict[str, float] = {}
    for tag in task.tags or ():
        if not isinstance(tag, str) or not tag.startswith(RESOURCE_TAG):
            continue
        name, sep, amount = tag[len(RESOURCE_TAG) :].partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not sep or not name.strip() or value <= 0 or math.isnan(value):
            raise DaskExecutorError(
                f"Task {task.name!r} has tag {tag!r}: write Dask resources as "
                f"'{RESOURCE_TAG}NAME=AMOUNT' with a positive amount, e.g. '{RESOURCE_TAG}GPU=1'"
            )
        out[name.strip()] = value
    return out or None


def _collect_refs(items: Any, ref_type: type, deps: dict[str, Any], batches: dict[str, _Batch]) -> None:
    for v in items:
        if isinstance(v, ref_type):  # Ref, or StateRef
            if v.key is not None and v.key not in deps:
                deps[v.key] = batches[v.key].future
        elif type(v) in (list, tuple):
            for w in v:
                if isinstance(w, ref_type):
                    if w.key is not None and w.key not in deps:
                        deps[w.key] = batches[w.key].future
                elif type(w) in (list, tuple, dict):
                    _collect_refs(w.values() if type(w) is dict else w, ref_type, deps, batches)
        elif type(v) is dict:
            _collect_refs(v.values(), ref_type, deps, batches)


def _has_pending(call: tuple[Any, ...]) -> bool:
    """Whether a call holds ``_Pending`` handles, among its arguments or in a list or dict there.

    The runner puts them in two places only: the values of the keyword arguments, and the list
    of upstream states of ``run_task_after``.
    """
    return any(type(v) is _Pending or _holds_pending(v) for v in call[1]) or _holds_pending(call[2])


def _task_of(call: tuple[Any, ...]) -> Task | None:
    """The task a buffered call runs: the first argument (``run_task_recorded``), or the second
    (``run_task_after``, whose first is the list of upstream states)."""
    for arg in call[1][:2]:
        if isinstance(arg, Task):
            return arg
    return None


def _pending_of(call: tuple[Any, ...]) -> set[_TaskRunFuture]:
    """The task runs a call follows (its ``_Pending`` handles' futures)."""
    found = set()
    for v in (*call[1], *call[2].values()):
        if type(v) is _Pending:
            found.add(v.future)
        elif type(v) is list or type(v) is dict:
            for w in v.values() if type(v) is dict else v:
                if type(w) is _Pending:
                    found.add(w.future)
    return found


def _followers(calls: list[tuple[Any, ...]]) -> dict[int, int]:
    """For each task run (by ``id`` of its future), how many of ``calls`` follow it."""
    counts: dict[int, int] = {}
    for call in calls:
        for f in _pending_of(call):
            counts[id(f)] = counts.get(id(f), 0) + 1
    return counts


def _holds_pending(obj: Any) -> bool:
    kind = type(obj)
    if kind is dict:
        return any(type(v) is _Pending for v in obj.values())
    return kind is list and any(type(v) is _Pending for v in obj)


def _placed(obj: Any, key: str) -> Any:
    """``obj`` (arguments of a call in batch ``key``) with each ``_Pending`` made a ``Ref``/``StateRef``.

    Its task run went out in an earlier batch, or earlier in this one (key ``None``: the worker
    takes it from the calls before). Only the containers holding one are copied.
    """
    from plait_dask.worker import Ref, StateRef

    kind = type(obj)
    if kind is _Pending:
        f = obj.future
        if f.batch is None:
            raise DaskExecutorError("DaskExecutor: a task was pipelined after a task run that was never sent")
        return (StateRef if obj.state else Ref)(None if f.batch == key else f.batch, f.index)
    if kind is tuple:
        if not any(type(v) is _Pending or _holds_pending(v) for v in obj):
            return obj
        return tuple(_placed(v, key) for v in obj)
    if kind is list and _holds_pending(obj):
        return [_placed(v, key) for v in obj]
    if kind is dict and _holds_pending(obj):
        return {k: _placed(v, key) for k, v in obj.items()}
    return obj


def _refused(address: str) -> str | None:
    """The error of a TCP connection to ``address`` if it was refused outright, else ``None``."""
    import socket

    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2):
            return None
    except ConnectionRefusedError as exc:
        return str(exc)
    except OSError:
        return None  # unreachable or slow: let Dask try, within its timeout


def _handshake(address: str, timeout: float) -> None:
    """Open a Dask comm to ``address`` and complete its handshake within ``timeout`` seconds.

    Raises ``TimeoutError`` when the peer does not answer in time, ``OSError`` when it cannot
    be reached. It runs on a thread of its own with its own event loop, so it works whether or
    not the caller's thread runs one; the thread ends when the deadline passes.
    """
    import asyncio

    from distributed.comm import connect

    async def shake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            asyncio.run(shake())
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="plait-dask-handshake", daemon=True)
    thread.start()
    thread.join(timeout + 5)  # wait_for cancels at the deadline; this is a last resort
    error = outcome.get("error")
    if thread.is_alive():
        raise TimeoutError(f"no handshake within {timeout:g}s")
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        raise TimeoutError(f"the connection was accepted but no handshake came within {timeout:g}s") from None
    if isinstance(error, (OSError, TimeoutError)):
        raise error
    if error is not None:
        raise OSError(f"{type(error).__name__}: {error}") from None


def _seconds(timeout: Any) -> float | None:
    """A ``Client`` timeout (seconds, or a string like ``"10s"``) in seconds; ``None`` for none."""
    if timeout is None:
        return None
    from dask.utils import parse_timedelta

    return parse_timedelta(timeout, default="seconds")


def _register_flow_modules() -> None:
    # Flows that ``plait run`` loads live in a private module the workers cannot import:
    # pickle what they define by value.
    import cloudpickle

    for name, module in list(sys.modules.items()):
        if _by_value(name) and name != "__main__" and module is not None:
            cloudpickle.register_pickle_by_value(module)


def _by_value(module: str | None) -> bool:
    return module is not None and (module == "__main__" or module.startswith("plait_flow_"))


def _dumps_batch(calls: list[tuple[Any, Any, Any]]) -> bytes:
    """``_dumps(calls)``; a call that cannot be pickled is replaced by one that fails with the reason.

    One task run that does not pickle (a lock, a socket in its inputs) must fail alone, not
    stop the batch (or ``flow.run()``); the others keep their places in the batch.
    """
    try:
        return _dumps(calls)
    except Exception:
        from plait_dask.worker import unpicklable

        fixed = []
        for call in calls:
            try:
                _dumps(call)
            except Exception as exc:
                reason = f"it cannot be pickled to send it to the Dask cluster: {type(exc).__name__}: {exc}"
                call = (unpicklable, (reason,), {})
            fixed.append(call)
        return _dumps(fixed)


def _dumps(obj: Any) -> bytes:
    """cloudpickle ``obj``; ``@task`` functions of a script or a ``plait run`` file go by value.

    A ``@task`` normally pickles as a reference to its module attribute, which a worker
    imports; the module of a script (``__main__``) or of a flow file loaded by ``plait run``
    does not exist on the workers, so those tasks carry their function instead.
    """
    import io

    import cloudpickle

    from plait.tasks import FunctionTask, Task

    class _Pickler(cloudpickle.Pickler):
        def reducer_override(self, value: Any) -> Any:
            if isinstance(value, FunctionTask) and _by_value(getattr(value.run, "__module__", None)):
                # The base Task state: the function itself (cloudpickle sends it by value),
                # without the driver-side handlers and trigger.
                return object.__new__, (type(value),), Task.__getstate__(value)
            return super().reducer_override(value)

    buffer = io.BytesIO()
    _Pickler(buffer).dump(obj)
    return buffer.getvalue()


def _configured_address() -> str | None:
    """``[plugins.dask] address`` of Plait's configuration (or ``PLAIT__PLUGINS__DASK__ADDRESS``)."""
    from plait.config import get_config

    address = get_config().plugin_section("dask").get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise DaskExecutorError(
            f"Plait's configuration sets [plugins.dask] address = {address!r}: write a scheduler address "
            "like 'tcp://10.0.0.5:8786', or remove it to run on a temporary local cluster"
        )
    return address or None


def _import_class(path: str) -> type:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise DaskExecutorError(
            f"DaskExecutor: cluster_class {path!r} is not a dotted path; write it as 'package.module.ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DaskExecutorError(
            f"DaskExecutor: cannot import module {module_name!r} for cluster_class {path!r} ({exc}); "
            "install the package that provides it"
        ) from None
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise DaskExecutorError(f"DaskExecutor: module {module_name!r} has no class {attr!r} (cluster_class {path!r})")
    return cls


def _class_name(cls: Any) -> str:
    return cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
