import json
import logging

from plait.config import Config

from {{ cookiecutter.__module_name }}.log_handler import plait_register_log_handlers


def test_records_are_written_as_json_lines(tmp_path):
    path = tmp_path / "plait.jsonl"
    config = Config({"plugins": {"{{ cookiecutter.__entry_point }}": {"log_file": str(path)}}})
    (handler,) = plait_register_log_handlers(config)
    logger = logging.getLogger("plait.test_{{ cookiecutter.__module_name }}")
    logger.addHandler(handler)
    try:
        logger.warning("hello %s", "there")
    finally:
        logger.removeHandler(handler)
        handler.close()
    line = json.loads(path.read_text().splitlines()[-1])
    assert line["message"] == "hello there"
    assert line["level"] == "WARNING"


def test_no_file_configured_means_no_handler():
    assert plait_register_log_handlers(Config({})) == []
