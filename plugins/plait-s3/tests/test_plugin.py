"""The plugin as Plait sees it: its entry point and hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from plait_s3 import S3Copy, S3Delete, S3Download, S3List, S3Result, S3Upload, plugin

from plait.testing import assert_plugin_conforms


def test_the_entry_point_names_the_plugin_module():
    found = [ep for ep in entry_points(group="plait") if ep.name == "s3"]
    assert [ep.value for ep in found] == ["plait_s3.plugin"]
    assert found[0].load() is plugin


def test_hooks_offer_the_tasks_and_the_s3_result_type():
    assert plugin.plait_register_tasks() == [S3Upload, S3Download, S3List, S3Delete, S3Copy]
    assert plugin.plait_register_result_types() == {"s3": S3Result}


def test_every_task_has_a_docstring_with_an_example():
    for cls in plugin.plait_register_tasks():
        assert cls.__doc__ and "```python" in cls.__doc__, cls


def test_the_plugin_conforms_to_the_hook_specs():
    assert_plugin_conforms(plugin)
    assert_plugin_conforms("s3")  # the installed entry point too


def _plait_cli(*args: str) -> str:
    plait = Path(sys.executable).with_name("plait")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAIT_LOAD_PLUGINS", "PLAIT_DISABLE_PLUGINS"))}
    return subprocess.run([str(plait), *args], capture_output=True, text=True, check=True, env=env).stdout


def test_plait_plugins_lists_the_plugin_with_its_hooks():
    records = {r["name"]: r for r in json.loads(_plait_cli("plugins", "--json"))}
    s3 = records["s3"]
    assert (s3["distribution"], s3["version"], s3["status"]) == ("plait-s3", "0.1.0", "loaded")
    assert sorted(s3["hooks"]) == [
        "plait_register_result_types",
        "plait_register_settings",
        "plait_register_storage",
        "plait_register_tasks",
    ]


def test_plait_tasks_lists_the_five_tasks():
    rows = [r for r in json.loads(_plait_cli("tasks", "--json")) if r["plugin"] == "s3"]
    assert sorted(r["task"] for r in rows) == ["S3Copy", "S3Delete", "S3Download", "S3List", "S3Upload"]
    assert all(r["doc"] and "``" not in r["doc"] for r in rows)


def test_s3_urls_resolve_through_the_isolated_plugin_registry(plait_hooks):
    from plait.results import resolve_result, result_types

    assert result_types()["s3"] is S3Result
    assert resolve_result("s3://bkt/{task_name}.json") == S3Result(
        bucket="bkt", location="{task_name}.json", serializer="json"
    )
