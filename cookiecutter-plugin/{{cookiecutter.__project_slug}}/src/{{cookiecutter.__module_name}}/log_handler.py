"""A log handler Plait attaches to its logger: JSON lines in a file named in the config."""

import logging

import plait
from plait.logging import JSONFormatter


@plait.hookimpl
def plait_register_log_handlers(config):
    """Append every Plait log record to [plugins.{{ cookiecutter.__entry_point }}] log_file, if set."""
    path = config.plugin_section("{{ cookiecutter.__entry_point }}").get("log_file")
    if not path:
        return []
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JSONFormatter())
    return [handler]
