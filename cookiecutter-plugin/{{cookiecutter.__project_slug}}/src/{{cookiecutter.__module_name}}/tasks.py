"""The tasks this plugin adds to Plait's task library."""

import plait


@plait.task
def greet(name: str) -> str:
    """Say hello to someone."""
    return f"Hello, {name}!"


@plait.hookimpl
def plait_register_tasks():
    """Offer this plugin's tasks (listed by `plait tasks`)."""
    return [greet]
