"""The pytest plugin of the Prefect 1 compatibility run (``-p plugin``).

It installs the import shim (``shim.py``), provides the fixtures Prefect 1's test suite gets
from its own ``conftest.py`` (executors by name), fails a test that uses a Prefect name Plait
lacks (with the name), bounds every test's time, and writes one JSON line per test to the file
named by ``$PREFECT_COMPAT_REPORT`` for ``run.py`` to classify.

Executors: Prefect 1's test executors map to Plait's: ``local`` and ``sync`` (a synchronous
Dask scheduler) to ``LocalExecutor``; ``mthread`` and ``threaded_local`` (Dask on threads) to
``ThreadExecutor``; ``mproc`` and ``mproc_local`` (Dask on processes) to ``ProcessExecutor``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import types

import pytest
import shim

shim.install()

# Prefect's test modules import a few third-party packages that only their Cloud/config tests
# use; a placeholder keeps those modules loadable when the package is not installed.
for _name in ("toml",):
    try:
        __import__(_name)
    except ImportError:
        sys.modules[_name] = types.ModuleType(_name)

TIMEOUT = float(os.environ.get("PREFECT_COMPAT_TIMEOUT", "20"))
_REPORT = os.environ.get("PREFECT_COMPAT_REPORT")

EXECUTORS = {
    "local": "LocalExecutor",
    "sync": "LocalExecutor",
    "mthread": "ThreadExecutor",
    "threaded_local": "ThreadExecutor",
    "mproc": "ProcessExecutor",
    "mproc_local": "ProcessExecutor",
}


def _executor(name: str):  # type: ignore[no-untyped-def]
    import plait.executors

    return getattr(plait.executors, EXECUTORS[name])()


@pytest.fixture
def executor(request):  # type: ignore[no-untyped-def]
    return _executor(request.param)


@pytest.fixture
def mthread():  # type: ignore[no-untyped-def]
    return _executor("mthread")


@pytest.fixture
def mproc():  # type: ignore[no-untyped-def]
    return _executor("mproc")


@pytest.fixture
def local():  # type: ignore[no-untyped-def]
    return _executor("local")


@pytest.fixture
def sync():  # type: ignore[no-untyped-def]
    return _executor("sync")


class TestTimedOut(BaseException):
    """The test ran longer than $PREFECT_COMPAT_TIMEOUT seconds."""


def _missing_params(item: pytest.Item) -> list[str]:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return []
    found: list[str] = []

    def walk(value, depth=0):  # type: ignore[no-untyped-def]
        name = shim.missing_name(value)
        if name is not None:
            found.append(name)
        elif depth < 3 and isinstance(value, (list, tuple, set, dict)):
            for v in value.values() if isinstance(value, dict) else value:
                walk(v, depth + 1)
        elif depth < 3 and hasattr(value, "__dict__") and not isinstance(value, type):
            for v in list(vars(value).values()):
                walk(v, depth + 1)

    for value in callspec.params.values():
        walk(value)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # type: ignore[no-untyped-def]
    shim.used_missing.clear()
    item._compat_missing = _missing_params(item)  # type: ignore[attr-defined]
    shim.running = True

    def on_alarm(signum, frame):  # type: ignore[no-untyped-def]
        raise TestTimedOut(f"test ran longer than {TIMEOUT:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        shim.running = False


def pytest_runtest_call(item):  # type: ignore[no-untyped-def]
    missing = getattr(item, "_compat_missing", [])
    if missing:
        shim.used_missing.extend(missing)
        raise shim.MissingPrefectAPI(f"{missing[0]} has no Plait equivalent (a parameter of this test)")


_outcomes: dict[str, dict] = {}


def pytest_runtest_logreport(report):  # type: ignore[no-untyped-def]
    rec = _outcomes.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed"})
    if hasattr(report, "wasxfail"):
        rec["outcome"] = "xfailed" if report.skipped else "xpassed"
    elif report.skipped:
        rec["outcome"] = "skipped"
    elif report.failed and rec["outcome"] == "passed":  # the first failure decides
        rec["outcome"] = "failed" if report.when == "call" else "error"
        rec["error"] = _error_line(report)
        rec["when"] = report.when
    if shim.used_missing and "missing" not in rec:
        rec["missing"] = sorted(set(shim.used_missing))


def _error_line(report) -> str:  # type: ignore[no-untyped-def]
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is not None:
        return crash.message.splitlines()[0][:300] if crash.message else ""
    text = str(report.longrepr).strip().splitlines()
    return (text[-1] if text else "")[:300]


def pytest_collectreport(report):  # type: ignore[no-untyped-def]
    if report.failed:
        _outcomes[report.nodeid] = {
            "nodeid": report.nodeid,
            "outcome": "collection-error",
            "error": str(report.longrepr).strip().splitlines()[-1][:300],
        }


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    if _REPORT:
        with open(_REPORT, "w", encoding="utf-8") as fh:
            for rec in _outcomes.values():
                fh.write(json.dumps(rec) + "\n")
