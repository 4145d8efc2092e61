"""The plugin as Plait sees it: its entry point and hooks."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from plait_s3 import S3Copy, S3Delete, S3Download, S3List, S3Result, S3Upload, plugin


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
    testing = pytest.importorskip("plait.testing", reason="needs the core's plugin system (plait.testing)")
    testing.assert_plugin_conforms(plugin)
