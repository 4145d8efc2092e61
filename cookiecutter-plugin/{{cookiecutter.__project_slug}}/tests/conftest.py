import pytest


@pytest.fixture
def plait_plugin():
    """The plugin under test, for plait.testing's fixtures (plait_hooks, plait_run)."""
    from {{ cookiecutter.__module_name }} import plugin

    return plugin
