"""``import prefect`` that gives Plait: the thin import shim of the Prefect 1 compatibility run.

The shim only renames. Each Prefect 1 module a test imports is mapped to the Plait module(s)
holding the same names (``prefect.engine.state`` -> ``plait.states``); the handful of names
that Plait spells differently are listed in ``RENAMES``. Nothing here adds behaviour: a name
that Plait does not have becomes a ``Missing`` placeholder, so that a test module which imports
it still loads and its other tests are measured. A test that *uses* a placeholder fails with
``MissingPrefectAPI`` naming the Prefect name (the run's report counts it as a missing API).

``install()`` puts the shim's finder in front of ``sys.meta_path``; ``plugin.py`` calls it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

# prefect module -> the Plait modules whose public names it shows, searched in order.
MODULES: dict[str, tuple[str, ...]] = {
    "prefect": ("plait",),
    "prefect.core": ("plait.flow", "plait.tasks"),
    "prefect.core.flow": ("plait.flow",),
    "prefect.core.task": ("plait.tasks",),
    "prefect.core.edge": ("plait.flow", "plait.tasks"),
    "prefect.core.parameter": ("plait.tasks",),
    "prefect.engine": ("plait.engine",),
    "prefect.engine.state": ("plait.states",),
    "prefect.engine.signals": ("plait.signals",),
    "prefect.engine.flow_runner": ("plait.engine.runner", "plait.signals"),
    "prefect.engine.task_runner": ("plait.testing", "plait.signals"),
    "prefect.engine.cache_validators": ("plait.cache_validators",),
    "prefect.engine.result": ("plait.results",),
    "prefect.engine.results": ("plait.results",),
    "prefect.engine.executors": ("plait.executors",),
    "prefect.executors": ("plait.executors",),
    "prefect.triggers": ("plait.triggers",),
    "prefect.schedules": ("plait.schedules",),
    "prefect.schedules.schedules": ("plait.schedules",),
    "prefect.schedules.clocks": ("plait.schedules.clocks",),
    "prefect.schedules.filters": ("plait.schedules.filters",),
    "prefect.schedules.adjustments": ("plait.schedules.adjustments",),
    "prefect.tasks": ("plait.tasks",),
    "prefect.tasks.core": ("plait.tasks",),
    "prefect.tasks.core.constants": ("plait.tasks",),
    "prefect.tasks.core.function": ("plait.tasks",),
    "prefect.tasks.core.collections": ("plait.tasks",),
    "prefect.tasks.control_flow": ("plait.control_flow",),
    "prefect.tasks.control_flow.conditional": ("plait.control_flow",),
    "prefect.tasks.control_flow.case": ("plait.control_flow",),
    "prefect.tasks.secrets": ("plait.secrets",),
    "prefect.tasks.shell": ("plait.shell",),
    "prefect.client": ("plait.secrets", "plait.client"),
    "prefect.exceptions": ("plait.errors", "plait.signals"),
    "prefect.utilities": (),
    "prefect.utilities.tasks": ("plait.tasks", "plait.control_flow"),
    "prefect.utilities.edges": ("plait.tasks",),
    "prefect.utilities.context": ("plait.context",),
    "prefect.utilities.collections": (),
    "prefect.utilities.debug": ("plait.testing",),
    "prefect.utilities.exceptions": ("plait.errors",),
    "prefect.utilities.configuration": ("plait.config",),
    "prefect.utilities.logging": ("plait.logging",),
}

# Names Plait spells differently: prefect module -> {Prefect name: "plait.module:Name"}.
# A target without ":Name" is the module object itself.
RENAMES: dict[str, dict[str, str]] = {
    "prefect": {"context": "plait.context"},
    "prefect.utilities.context": {"context": "plait.context"},
    "prefect.engine.signals": {"PrefectStateSignal": "plait.signals:PlaitSignal"},
    "prefect.exceptions": {
        "PrefectSignal": "plait.signals:PlaitSignal",
        "TaskTimeoutSignal": "plait.errors:TaskTimeoutError",
    },
    "prefect.engine.flow_runner": {"ENDRUN": "plait.signals:ENDRUN"},
    "prefect.engine.task_runner": {"ENDRUN": "plait.signals:ENDRUN"},
    # Plait's Dask executor is its plait-dask distribution (imported when first used)
    "prefect.executors": {"DaskExecutor": "plait_dask:DaskExecutor"},
    "prefect.engine.executors": {"DaskExecutor": "plait_dask:DaskExecutor"},
    "prefect.engine": {
        "FlowRunner": "plait.engine.runner:FlowRunner",
        "TaskRunner": "plait.testing:TaskRunner",
    },
}

_PREFIX = "prefect"

#: True while a test runs (set by the pytest plugin): a placeholder used then fails the test.
running = False
#: Prefect names whose placeholders the current test used.
used_missing: list[str] = []


class MissingPrefectAPI(BaseException):
    """A test used a Prefect 1 name that Plait does not have.

    A ``BaseException`` on purpose: ``pytest.raises(Exception)`` in a test must not mistake it
    for the error the test expects.
    """


class _MissingMeta(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return type.__instancecheck__(cls, obj)


class Missing:
    """Placeholder for a Prefect name Plait lacks: inert while test modules load, fails when used."""

    __slots__ = ("_qualname",)

    def __init__(self, qualname: str) -> None:
        object.__setattr__(self, "_qualname", qualname)

    def _use(self) -> Missing:
        name = object.__getattribute__(self, "_qualname")
        if running:
            used_missing.append(name)
            raise MissingPrefectAPI(f"{name} has no Plait equivalent")
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._use()
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._use()
        return Missing(f"{object.__getattribute__(self, '_qualname')}.{name}")

    def __setattr__(self, name: str, value: Any) -> None:
        self._use()

    def __getitem__(self, key: Any) -> Any:
        self._use()
        return self

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._use()
        return iter(())

    def __bool__(self) -> bool:
        self._use()
        return True

    def __eq__(self, other: object) -> bool:
        self._use()
        return self is other

    __hash__ = object.__hash__

    def __instancecheck__(self, obj: object) -> bool:
        self._use()
        return False

    def __subclasscheck__(self, cls: type) -> bool:
        self._use()
        return False

    def __enter__(self) -> Any:
        self._use()
        return self

    def __exit__(self, *exc: object) -> None:
        self._use()

    def __repr__(self) -> str:
        return f"<missing {object.__getattribute__(self, '_qualname')}>"


def missing_name(obj: object) -> str | None:
    """The Prefect name behind a placeholder, or ``None`` for anything else."""
    if type(obj) is Missing:
        return object.__getattribute__(obj, "_qualname")
    return None


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


class _ShimModule(types.ModuleType):
    """A ``prefect.*`` module: Plait's objects under their Prefect names."""

    def __reduce__(self) -> Any:
        # pickled by name, like any importable module (a test's globals hold `prefect` when a
        # task function goes to a worker process)
        return importlib.import_module, (self.__name__,)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        full = f"{self.__name__}.{name}"
        if full in MODULES or any(m.startswith(full + ".") for m in MODULES):
            return importlib.import_module(full)
        for base in MODULES.get(self.__name__, ()):
            mod = importlib.import_module(base)
            if hasattr(mod, name) and not isinstance(getattr(mod, name), types.ModuleType):
                return getattr(mod, name)
        if _is_module_name(name):
            return importlib.import_module(full)  # an unmapped prefect package: all placeholders
        return Missing(full)


def _is_module_name(name: str) -> bool:
    # Prefect packages a test may reach as attributes (prefect.storage.Local()).
    return name in {
        "storage",
        "run_configs",
        "environments",
        "serialization",
        "agent",
        "backend",
        "configuration",
        "artifacts",
        "cli",
        "flows",
        "utilities",
        "engine",
        "tasks",
    }


def _populate(module: _ShimModule) -> None:
    name = module.__name__
    for base in reversed(MODULES.get(name, ())):
        mod = importlib.import_module(base)
        public = getattr(mod, "__all__", None)
        names = public if public is not None else [n for n in vars(mod) if not n.startswith("__")]
        for attr in names:
            value = getattr(mod, attr, None)
            if value is None or isinstance(value, types.ModuleType):
                continue
            module.__dict__[attr] = value
        # classes a module defines (the states, the signals) whether or not __all__ lists them
        for attr, value in vars(mod).items():
            if isinstance(value, type) and not attr.startswith("__") and getattr(value, "__module__", "") == base:
                module.__dict__.setdefault(attr, value)
    for attr, target in RENAMES.get(name, {}).items():
        try:
            module.__dict__[attr] = _resolve(target)
        except ImportError:  # a plugin distribution (plait-dask) that is not installed
            module.__dict__[attr] = Missing(f"{name}.{attr}")


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _ShimModule(spec.name)
        module.__path__ = []  # every prefect.* name may have submodules
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        assert isinstance(module, _ShimModule)
        targets = ", ".join(MODULES.get(module.__name__, ())) or "nothing"
        module.__doc__ = f"Prefect 1's {module.__name__}, mapped to {targets} (Plait)."
        _populate(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _PREFIX and not fullname.startswith(_PREFIX + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)


def install() -> None:
    """Make ``import prefect`` (and every ``prefect.*``) resolve to Plait through the shim."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
