"""The first second: with every plugin of the repository installed and none configured, a
process's first flow run loads no heavy library and no plugin observes the run, and the
installed plugins are found from a cache instead of a scan of every distribution.

Timings are printed by ``make bench``; these tests pin the causes, in fresh processes."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plait.hooks import discovery

#: Libraries an installed plugin must not import before it is configured and used.
HEAVY = (
    "prometheus_client",
    "boto3",
    "botocore",
    "sqlalchemy",
    "psycopg",
    "dask",
    "distributed",
    "slack_sdk",
    "requests",
    "cookiecutter",
)

FIRST_RUN = """
import json, sys
from plait import Flow, task
from plait.hooks.manager import get_hooks, plugin_observers

@task
def one():
    return 1

with Flow("first") as flow:
    one()
before = set(sys.modules)
assert flow.run().is_successful()
hooks = get_hooks()
print(json.dumps({
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY),
    "metadata": "importlib.metadata" in sys.modules,
    "loaded": sorted(n for n, r in hooks.pm.records.items() if r.status == "loaded" and not r.builtin),
    "observers": [len(plugin_observers()[0]), len(plugin_observers()[1]), plugin_observers()[2]],
    "states": {n: s.state for n, s in hooks.statuses().items()},
}))
"""


def installed_plugins() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group="plait")}


def run_fresh(tmp_path: Path, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PLAIT", "PYTEST_"))}
    environ.update({"PLAIT_CONFIG": os.devnull, "XDG_CACHE_HOME": str(tmp_path / "cache"), **env})
    code = f"HEAVY = {HEAVY!r}\n" + textwrap.dedent(FIRST_RUN)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_installed_but_unconfigured_plugins_import_nothing_heavy_and_observe_nothing(tmp_path):
    wanted = {"s3", "sql", "slack", "http", "metrics", "dask"}
    if not wanted <= installed_plugins():
        pytest.skip(
            f"needs every plugin of the repository installed (make test): {sorted(wanted - installed_plugins())}"
        )
    first = run_fresh(tmp_path)
    assert wanted <= set(first["loaded"])
    assert first["heavy"] == []
    # no plugin observes the run: the engine calls nothing per task for them
    assert first["observers"] == [0, 0, False]
    assert {first["states"][n] for n in ("slack", "http", "metrics")} == {"not configured"}
    # the second process finds the plugins in the cache: no scan of every distribution
    second = run_fresh(tmp_path)
    assert second["loaded"] == first["loaded"]
    assert second["metadata"] is False


def test_a_configured_plugin_observes(tmp_path):
    if "metrics" not in installed_plugins():
        pytest.skip("needs plait-metrics installed")
    run = run_fresh(tmp_path, PLAIT__PLUGINS__METRICS__ENABLED="true", PLAIT_LOAD_PLUGINS="metrics")
    assert run["states"] == {"metrics": "configured"}
    assert run["observers"][:2] == [1, 1]
    assert "prometheus_client" in run["heavy"]


# --- the entry-point cache ------------------------------------------------------------------------


def make_dist(site: Path, dist: str, module: str) -> None:
    (site / f"{module}.py").write_text("import plait\n")
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[plait]\n{module.removeprefix('plait_')} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PLAIT_PLUGIN_CACHE", raising=False)
    return site


def names() -> set[str]:
    return {ep.name for ep in discovery.installed_entry_points()}


def test_the_cache_is_written_read_and_refreshed_when_a_distribution_is_installed(site):
    make_dist(site, "plait-cached-one", "plait_cached_one")
    assert "cached_one" in names()
    cache = json.loads(Path(discovery.cache_file()).read_text())
    assert ["cached_one", "plait_cached_one", "plait-cached-one", "1.0"] in cache["groups"]["plait"]
    assert "cached_one" in names()  # from the cache now
    make_dist(site, "plait-cached-two", "plait_cached_two")  # a new distribution: the cache is stale
    assert {"cached_one", "cached_two"} <= names()


def test_a_cache_that_does_not_match_is_never_trusted(site):
    make_dist(site, "plait-cached-three", "plait_cached_three")
    assert "cached_three" in names()
    path = Path(discovery.cache_file())
    data = json.loads(path.read_text())
    data["groups"]["plait"].append(["ghost", "plait_ghost", "plait-ghost", "1.0"])
    data["fingerprint"][0][1][0][1] += 1  # as if the distribution had been reinstalled since
    path.write_text(json.dumps(data))
    assert "ghost" not in names()
    path.write_text("{not json")
    assert "cached_three" in names()


def test_the_cache_can_be_switched_off(site, monkeypatch):
    monkeypatch.setenv("PLAIT_PLUGIN_CACHE", "0")
    make_dist(site, "plait-cached-four", "plait_cached_four")
    assert "cached_four" in names()
    assert not Path(discovery.cache_file()).exists()


def test_a_cached_plugin_that_no_longer_imports_means_a_fresh_scan(site):
    from plait.hooks.manager import PlaitPluginManager

    make_dist(site, "plait-cached-five", "plait_cached_five")
    assert "cached_five" in names()
    path = Path(discovery.cache_file())
    data = json.loads(path.read_text())
    data["groups"]["plait"].append(["vanished", "plait_vanished_module", "plait-vanished", "1.0"])
    path.write_text(json.dumps(data))  # same fingerprint: trusted, but it names a module that is gone
    pm = PlaitPluginManager()
    pm.load_entrypoints()
    assert pm.records["cached_five"].status == "loaded"
    assert "vanished" not in pm.records  # the scan that followed the failed import did not find it
