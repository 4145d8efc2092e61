"""Executors that keep results on their workers (``keeps_results``) and batch submissions (``flush``).

``StoreExecutor`` is a small real executor built on the process pool: a worker writes a
successful run's result to a file of its own and returns the state changes without it; the
driver gets remote states (``plait.states.remote_state``) that read the file only when someone
reads ``result``; downstream runs get the file's path (``result_ref``) and the worker reads it.
Submissions wait in a buffer until the runner calls ``flush()``.
"""

from __future__ import annotations

import concurrent.futures as cf
import pickle
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from plait import Flow, task
from plait.engine.executors import LocalExecutor, ProcessExecutor
from plait.engine.runner import FlowRunner
from plait.states import (
    Mapped,
    ResultSource,
    Success,
    gather_results,
    is_remote,
    remote_state,
    result_ref,
)


class StoredRef(str):
    """A result left in a file by a worker (a path)."""


def _load(value):
    if type(value) is StoredRef:
        return pickle.loads(Path(value).read_bytes())
    if isinstance(value, list):
        return [_load(v) for v in value]
    return value


def _run_and_store(store, fn, args):
    task, kwargs, *rest = args
    recorded = fn(task, {k: _load(v) for k, v in kwargs.items()}, *rest)
    _old, new = recorded[-1]
    if new.is_successful() and new.result is not None:
        path = Path(store) / uuid.uuid4().hex
        path.write_bytes(pickle.dumps(new.result))
        new.result = None
        return recorded, StoredRef(path)
    return recorded, None


class StoreExecutor(ProcessExecutor, ResultSource):
    name = "store"
    keeps_results = True

    def __init__(self, store: Path) -> None:
        super().__init__(max_workers=2)
        self.store = store
        self.buffer: list = []
        self.fetched: list[list[str]] = []
        self.flushes = 0
        self.remote: list = []

    @contextmanager
    def start(self):
        with super().start():
            yield self
            gather_results(self.remote)  # what is still in the store, before the workers go

    def submit(self, fn, /, *args):
        outer: cf.Future = cf.Future()
        self.buffer.append((fn, args, outer))
        return outer

    def flush(self):
        self.flushes += 1
        buffered, self.buffer = self.buffer, []
        for fn, args, outer in buffered:
            inner = ProcessExecutor.submit(self, _run_and_store, str(self.store), fn, args)
            inner.add_done_callback(lambda f, outer=outer: self._done(f, outer))

    def _done(self, inner, outer):
        try:
            recorded, ref = inner.result()
        except Exception as exc:
            outer.set_exception(exc)
            return
        if ref is not None:
            old, new = recorded[-1]
            new = remote_state(new, self, ref)
            self.remote.append(new)
            recorded[-1] = (old, new)
        outer.set_result(recorded)

    def fetch(self, refs):
        self.fetched.append(list(refs))
        return [_load(r) for r in refs]


@task
def numbers(n):
    return list(range(n))


@task
def total(xs):
    return sum(xs)


@task
def inc(x):
    return x + 1


@task
def double(x):
    return 2 * x


def chain_flow() -> tuple[Flow, dict]:
    with Flow("chain") as flow:
        n = numbers(5)
        t = total(n)
        i = inc(t)
        d = double.map(n)
        m = inc.map(d)
        r = total(m)
    return flow, {"numbers": n, "total": t, "inc": i, "double": d, "mapped_inc": m, "reduce": r}


def test_results_stay_with_the_workers_and_downstream_runs_get_refs(tmp_path):
    flow, tasks = chain_flow()
    seen = {}

    def observer(task, old, new):
        if new.is_successful() and not new.is_mapped():
            seen.setdefault(task.name, []).append(is_remote(new))

    executor = StoreExecutor(tmp_path)
    state = FlowRunner(flow, task_observers=[observer]).run(executor=executor)
    local = flow.run(executor=LocalExecutor())
    assert state.is_successful()
    for t in tasks.values():
        assert state.result[t].result == local.result[t].result
    # every success reached the driver without its result ...
    assert all(all(flags) for flags in seen.values())
    # ... the driver fetched only the list it splits into mapped runs (it needs its length),
    # then everything else at once at the end of the run
    assert executor.fetched[0] == [result_ref(state.result[tasks["numbers"]])]
    assert len(executor.fetched) == 2
    assert executor.flushes >= 3


def test_a_handler_that_reads_a_result_fetches_it(tmp_path):
    read = []

    def handler(task, old, new):
        if new.is_successful():
            read.append(new.result)

    with Flow("read") as flow:
        x = inc(1)
        x.state_handlers = [handler]
        y = inc(x)
    executor = StoreExecutor(tmp_path)
    state = flow.run(executor=executor)
    assert read == [2]
    assert state.result[y].result == 3
    assert executor.fetched[0] == [result_ref(state.result[x])]


class CountingSource(ResultSource):
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def fetch(self, refs):
        self.calls.append(list(refs))
        return [r * 100 for r in refs]


def test_a_remote_state_looks_like_its_state_and_fetches_once():
    source = CountingSource()
    state = remote_state(Success("done"), source, 7)
    assert isinstance(state, Success)
    assert (state.name, repr(state)) == ("Success", '<Success: "done">')
    assert is_remote(state) and result_ref(state) == 7
    assert state.result == 700 and state.result == 700
    assert source.calls == [[7]]
    assert not is_remote(state) and result_ref(state) == 7  # downstream still gets the ref


def test_a_mapped_state_fetches_its_children_in_one_call():
    source = CountingSource()
    kids = [remote_state(Success(), source, i) for i in range(3)] + [Success(result="local")]
    mapped = Mapped("m", kids)
    assert result_ref(mapped) == [0, 1, 2, "local"]
    assert source.calls == []
    assert mapped.result == [0, 100, 200, "local"]
    assert source.calls == [[0, 1, 2]]


def test_a_remote_state_pickles_as_a_plain_state_with_its_result():
    state = remote_state(Success("done"), CountingSource(), 2)
    copy = pickle.loads(pickle.dumps(state))
    assert type(copy) is Success
    assert copy.result == 200 and copy.message == "done"


def test_setting_the_result_replaces_the_remote_value():
    state = remote_state(Success(), CountingSource(), 1)
    state.result = "mine"
    assert state.result == "mine" and result_ref(state) == "mine"


@pytest.mark.parametrize("executor", [LocalExecutor(), ProcessExecutor(max_workers=2)])
def test_executors_that_keep_nothing_still_pass_values(executor):
    flow, tasks = chain_flow()
    state = flow.run(executor=executor)
    assert state.result[tasks["reduce"]].result == sum(2 * i + 1 for i in range(5))
    assert state.result[tasks["inc"]].result == 11
