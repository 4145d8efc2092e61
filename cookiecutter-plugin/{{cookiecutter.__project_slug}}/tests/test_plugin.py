from importlib.metadata import entry_points

from plait.testing import assert_plugin_conforms

from {{ cookiecutter.__module_name }} import plugin


def test_plugin_conforms_to_the_hook_specs():
    assert_plugin_conforms(plugin)


def test_installed_entry_point_loads_this_plugin():
    (ep,) = [ep for ep in entry_points(group="plait") if ep.name == "{{ cookiecutter.__entry_point }}"]
    assert ep.load() is plugin
    assert_plugin_conforms("{{ cookiecutter.__entry_point }}")
