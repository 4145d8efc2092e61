"""Cache validators: decide whether a cached result can stand in for a new run.

A task with ``cache_for=timedelta(...)`` keeps its successful results in a cache. Before the
next run of the task, its ``cache_validator`` is asked about each cached ``Cached`` state::

    validator(state: Cached, inputs: dict, parameters: dict) -> bool

``True`` means "use this result, do not run". ``state`` carries ``cached_inputs``,
``cached_parameters`` and ``cached_result_expiration``; ``inputs`` are the run's inputs and
``parameters`` the flow run's parameters.

```python
from datetime import timedelta
from plait import task, cache_validators

@task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
def fetch(url):
    ...
```

The cache lives in memory for the life of the process; when the task (or its flow) has a
``result``, entries are also stored there, so they survive the process. ``cache_key`` lets
several tasks share one cache.

The time is read through ``now()``; tests replace it to move the clock instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait.states import Cached

__all__ = [
    "all_inputs",
    "all_parameters",
    "duration_only",
    "never_use",
    "now",
    "partial_inputs_only",
    "partial_parameters_only",
]

Validator = Callable[["Cached", dict[str, Any], dict[str, Any]], bool]


def now() -> datetime:
    """The current time (aware, UTC) as the cache sees it."""
    return datetime.now(UTC)


def never_use(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Never use a cached result: always run."""
    return False


def duration_only(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Use the cached result until it expires, whatever the inputs (the default)."""
    expiration = state.cached_result_expiration
    return expiration is None or now() < expiration


def all_inputs(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Use the cached result while unexpired and only if every input equals the cached one."""
    return duration_only(state, inputs, parameters) and (state.cached_inputs or {}) == (inputs or {})


def all_parameters(state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
    """Use the cached result while unexpired and only if every flow parameter is unchanged."""
    return duration_only(state, inputs, parameters) and (state.cached_parameters or {}) == (parameters or {})


class partial_inputs_only:  # noqa: N801 - used like a function: partial_inputs_only(["x"])
    """Use the cached result while unexpired and if the named inputs are unchanged.

    Called without names (``partial_inputs_only()``, Prefect 1's default) it compares no
    input: the cache's expiry alone decides. An empty list is refused (a likely mistake).

    ```python
    @task(cache_for=timedelta(days=1), cache_validator=partial_inputs_only(["url"]))
    def fetch(url, verbose=False): ...
    ```
    """

    def __init__(self, validate_on: Iterable[str] | None = None) -> None:
        # None (Prefect 1's default): compare no inputs, only the cache's expiry
        self.validate_on = () if validate_on is None else _names(validate_on, "partial_inputs_only")
        self.__name__ = f"partial_inputs_only({', '.join(self.validate_on)})"

    def __call__(self, state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
        return duration_only(state, inputs, parameters) and _same(state.cached_inputs, inputs, self.validate_on)

    def __repr__(self) -> str:
        return self.__name__


class partial_parameters_only:  # noqa: N801
    """Use the cached result while unexpired and if the named flow parameters are unchanged.

    Without names (``partial_parameters_only()``) only the expiry decides, as in Prefect 1.
    """

    def __init__(self, validate_on: Iterable[str] | None = None) -> None:
        # None (Prefect 1's default): compare no parameters, only the cache's expiry
        self.validate_on = () if validate_on is None else _names(validate_on, "partial_parameters_only")
        self.__name__ = f"partial_parameters_only({', '.join(self.validate_on)})"

    def __call__(self, state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]) -> bool:
        return duration_only(state, inputs, parameters) and _same(state.cached_parameters, parameters, self.validate_on)

    def __repr__(self) -> str:
        return self.__name__


_MISSING = object()


def _same(cached: dict[str, Any] | None, current: dict[str, Any] | None, keys: tuple[str, ...]) -> bool:
    cached, current = cached or {}, current or {}
    return all(cached.get(k, _MISSING) == current.get(k, _MISSING) for k in keys)


def _names(validate_on: Iterable[str], owner: str) -> tuple[str, ...]:
    if isinstance(validate_on, str):
        validate_on = [validate_on]
    names = tuple(validate_on)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{owner}() needs a list of names to compare, got {validate_on!r}")
    return names
