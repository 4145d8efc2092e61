from importlib.metadata import entry_points

from plait.testing import assert_plugin_conforms

from {{ cookiecutter.__module_name }} import plugin


def test_plugin_conforms_to_the_hook_specs():
    assert_plugin_conforms(plugin)


def test_installed_entry_point_loads_this_plugin():
    (ep,) = [ep for ep in entry_points(group="plait") if ep.name == "{{ cookiecutter.__entry_point }}"]
    assert ep.load() is plugin
    assert_plugin_conforms("{{ cookiecutter.__entry_point }}")


def test_the_settings_are_declared():
    from plait.settings import Settings

    settings = plugin.plait_register_settings()
    assert isinstance(settings, Settings)
    assert settings.path == "plugins.{{ cookiecutter.__entry_point }}"
    assert settings.validate({}).problems == []
    assert settings.validate({"no_such_key": 1}).problems  # an unknown key is reported
