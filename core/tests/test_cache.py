"""Caching: cache_for, cache validators, cache_key, caches that outlive the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from plait import Flow, Parameter, cache_validators, task
from plait.engine.extras import clear_memory_cache
from plait.states import Cached


class Clock:
    """A clock the test moves by hand: cache expiry without sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    clear_memory_cache()
    c = Clock()
    monkeypatch.setattr(cache_validators, "now", c)
    yield c
    clear_memory_cache()


def counting_task(calls, **options):
    @task(**options)
    def work(x=0):
        calls.append(x)
        return x * 10

    return work


def test_cache_reuses_the_result_within_its_duration(clock):
    calls = []
    work = counting_task(calls, cache_for=timedelta(minutes=10))
    with Flow("cache-duration") as flow:
        w = work(1)

    first = flow.run()
    clock.advance(minutes=9)
    second = flow.run()

    assert calls == [1]
    state = second.result[w]
    assert isinstance(state, Cached)
    assert state.result == 10
    assert first.result[w].result == 10
    assert state.cached_inputs == {"x": 1}
    assert state.cached_result_expiration == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def test_a_cache_that_expires_reruns(clock):
    calls = []
    work = counting_task(calls, cache_for=timedelta(minutes=10))
    with Flow("cache-expiry") as flow:
        w = work(1)

    flow.run()
    clock.advance(minutes=10, seconds=1)
    state = flow.run()

    assert calls == [1, 1]
    assert type(state.result[w]).__name__ == "Success"


def test_all_inputs_reruns_when_an_input_changes(clock):
    calls = []
    work = counting_task(calls, cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    with Flow("cache-inputs") as flow:
        work(Parameter("x", default=1))

    flow.run(parameters={"x": 1})
    flow.run(parameters={"x": 1})
    flow.run(parameters={"x": 2})
    flow.run(parameters={"x": 1})  # the first entry is still there and valid

    assert calls == [1, 2]


def test_duration_only_ignores_inputs(clock):
    calls = []
    work = counting_task(calls, cache_for=timedelta(hours=1))
    with Flow("cache-duration-only") as flow:
        work(Parameter("x", default=1))

    flow.run(parameters={"x": 1})
    flow.run(parameters={"x": 2})
    assert calls == [1]


def test_all_parameters_and_partial_parameters(clock):
    calls_all, calls_partial = [], []
    everything = counting_task(calls_all, cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters)
    partial = counting_task(
        calls_partial,
        cache_for=timedelta(hours=1),
        cache_validator=cache_validators.partial_parameters_only(["region"]),
    )
    with Flow("cache-params") as flow:
        flow.add_task(Parameter("region", default="eu"))
        flow.add_task(Parameter("verbose", default=False))
        everything(1)
        partial(2)

    flow.run(parameters={"region": "eu", "verbose": False})
    flow.run(parameters={"region": "eu", "verbose": True})  # only an unwatched parameter changed
    flow.run(parameters={"region": "us", "verbose": True})

    assert calls_all == [1, 1, 1]
    assert calls_partial == [2, 2]


def test_partial_inputs_only_watches_the_named_inputs(clock):
    calls = []

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.partial_inputs_only(["url"]))
    def fetch(url, verbose):
        calls.append((url, verbose))
        return url

    with Flow("cache-partial-inputs") as flow:
        fetch(Parameter("url", default="a"), Parameter("verbose", default=False))

    flow.run(parameters={"url": "a", "verbose": False})
    flow.run(parameters={"url": "a", "verbose": True})
    flow.run(parameters={"url": "b", "verbose": True})
    assert calls == [("a", False), ("b", True)]


def test_never_use_always_runs(clock):
    calls = []
    work = counting_task(calls, cache_for=timedelta(hours=1), cache_validator=cache_validators.never_use)
    with Flow("cache-never") as flow:
        work(1)
    flow.run()
    flow.run()
    assert calls == [1, 1]


def test_cache_key_shares_a_cache_between_tasks(clock):
    calls = []
    first = counting_task(calls, cache_for=timedelta(hours=1), cache_key="shared-numbers")
    second = counting_task(calls, cache_for=timedelta(hours=1), cache_key="shared-numbers")
    with Flow("cache-writer") as writer:
        first(5)
    with Flow("cache-reader") as reader:
        r = second(5)

    writer.run()
    state = reader.run()

    assert calls == [5]
    assert state.result[r].is_cached()
    assert state.result[r].result == 50


def test_tasks_without_a_cache_key_do_not_share(clock):
    calls = []
    a = counting_task(calls, cache_for=timedelta(hours=1))
    with Flow("cache-a") as flow_a:
        a(1)
    with Flow("cache-b") as flow_b:
        a(1)
    flow_a.run()
    flow_b.run()
    assert calls == [1, 1]


def test_mapped_children_are_cached_one_by_one(clock):
    calls = []
    work = counting_task(calls, cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    with Flow("cache-map") as flow:
        m = work.map([1, 2, 3])
    flow.run()
    state = flow.run()
    assert calls == [1, 2, 3]
    assert all(c.is_cached() for c in state.result[m].map_states)
    assert state.result[m].result == [10, 20, 30]


def test_cache_options_without_cache_for_warn_that_nothing_is_cached():
    # Prefect 1 builds such a task and never caches it; a warning says so
    with pytest.warns(UserWarning, match="cache_validator given without cache_for.*will not be cached"):
        t = task(lambda: 1, cache_validator=cache_validators.all_inputs)
    assert t.cache_validator is cache_validators.all_inputs
    with pytest.warns(UserWarning, match="cache_key given without cache_for"):
        task(lambda: 1, cache_key="k")


def test_the_validator_in_use_is_never_use_without_cache_for_and_duration_only_with_it():
    assert task(lambda: 1).cache_validator is cache_validators.never_use
    assert task(lambda: 1, cache_for=60).cache_validator is cache_validators.duration_only
    assert task(lambda: 1, cache_for=60, cache_validator=cache_validators.all_inputs).cache_validator is (
        cache_validators.all_inputs
    )
    # cache_for given later (task_args) turns the default validator into duration_only
    with Flow("f"):
        copy = task(lambda: 1)(task_args={"cache_for": 60})
    assert copy.cache_validator is cache_validators.duration_only


def test_partial_validators_need_names():
    with pytest.raises(ValueError, match="partial_inputs_only"):
        cache_validators.partial_inputs_only([])


def test_validators_read_the_expiration():
    now = cache_validators.now()
    fresh = Cached(cached_result_expiration=now + timedelta(hours=1), cached_inputs={"a": 1})
    stale = Cached(cached_result_expiration=now - timedelta(seconds=1), cached_inputs={"a": 1})
    assert cache_validators.duration_only(fresh, {}, {})
    assert not cache_validators.duration_only(stale, {}, {})
    assert not cache_validators.all_inputs(stale, {"a": 1}, {})
    assert cache_validators.all_inputs(fresh, {"a": 1}, {})
    assert not cache_validators.all_inputs(fresh, {"a": 2}, {})
    assert cache_validators.duration_only(Cached(cached_result_expiration=None), {}, {})


SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import timedelta
    from plait import Flow, task
    from plait.results import LocalResult

    @task(cache_for=timedelta(hours=1), result=LocalResult(dir=sys.argv[1]))
    def work():
        return 7

    with Flow("persistent-cache") as flow:
        w = work()

    state = flow.run()
    print("STATE", state.result[w].name, state.result[w].result)
    """
)


def test_cache_with_a_result_survives_the_process(tmp_path):
    script = tmp_path / "flow.py"
    script.write_text(SCRIPT)
    store = tmp_path / "store"

    def run() -> str:
        proc = subprocess.run(
            [sys.executable, str(script), str(store)], capture_output=True, text=True, timeout=120, check=True
        )
        return next(line for line in proc.stdout.splitlines() if line.startswith("STATE"))

    assert run() == "STATE Success 7"
    assert run() == "STATE Cached 7"
    assert list((store / "plait-cache").glob("*.pkl"))
