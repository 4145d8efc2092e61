"""Packaging rules every distribution of the repository follows (the core, the server, each plugin):
one LICENSE (Apache-2.0), ``py.typed`` in every package, one source for each version, plugins on a
compatible range of the core, and a core that installs only what running flows needs."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTS = sorted(
    p.parent
    for p in [
        ROOT / "core" / "pyproject.toml",
        *ROOT.glob("server/pyproject.toml"),
        *ROOT.glob("plugins/*/pyproject.toml"),
    ]
)
IDS = [str(d.relative_to(ROOT)) for d in DISTS]


def pyproject(dist: Path) -> dict:
    return tomllib.loads((dist / "pyproject.toml").read_text())


def packages(dist: Path) -> list[Path]:
    return [dist / p for p in pyproject(dist)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]]


def test_the_repository_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_each_distribution_ships_the_license_it_declares(dist):
    project = pyproject(dist)["project"]
    assert project["license"] == "Apache-2.0"
    assert (dist / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_every_package_is_marked_typed(dist):
    for package in packages(dist):
        assert (package / "py.typed").is_file(), f"{package} has no py.typed"


@pytest.mark.parametrize("dist", DISTS, ids=IDS)
def test_each_version_has_one_source(dist):
    data = pyproject(dist)
    assert "version" not in data["project"] and "version" in data["project"]["dynamic"]
    source = dist / data["tool"]["hatch"]["version"]["path"]
    versions = re.findall(r'^__version__ = "([^"]+)"$', source.read_text(), flags=re.M)
    assert len(versions) == 1, f"{source} must set __version__ once"
    try:
        installed = importlib.metadata.version(data["project"]["name"])
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{data['project']['name']} is not installed here")
    assert installed == versions[0]


def core_version() -> tuple[int, int]:
    text = (ROOT / "core" / "src" / "plait" / "__init__.py").read_text()
    major, minor = re.search(r'^__version__ = "(\d+)\.(\d+)', text, flags=re.M).groups()
    return int(major), int(minor)


@pytest.mark.parametrize("dist", [d for d in DISTS if d.name != "core"], ids=[i for i in IDS if i != "core"])
def test_plugins_depend_on_a_compatible_range_of_the_core(dist):
    major, minor = core_version()
    wanted = f"plait>={major}.{minor},<{major}.{minor + 1}"
    assert wanted in pyproject(dist)["project"]["dependencies"]


def test_the_template_depends_on_the_same_range():
    major, minor = core_version()
    template = ROOT / "cookiecutter-plugin" / "{{cookiecutter.__project_slug}}" / "pyproject.toml"
    assert f'"plait>={major}.{minor},<{major}.{minor + 1}"' in template.read_text()


def test_the_core_requires_only_what_running_flows_needs():
    project = pyproject(ROOT / "core")["project"]
    names = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    # requests: plait.client, the server's API client, runs where the flows run (agents,
    # `plait register`); it is imported only by the client and its commands. cloudpickle (pure
    # Python, no dependencies): Flow.save/Flow.load, Prefect 1's flow files; imported only there.
    allowed = {"click", "rich", "pluggy", "croniter", "python-json-logger", "requests", "cloudpickle"}
    assert names <= allowed, names
    assert "cookiecutter>=2.5" in project["optional-dependencies"]["scaffold"]
