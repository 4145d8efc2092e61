from __future__ import annotations

import io
import json
import logging

import plait
from plait import Flow, task
from plait.logging import JSONFormatter, RunContextFilter

FAILING_HANDLER = """
import logging
import plait

class Exploding(logging.Handler):
    def emit(self, record):
        raise OSError("disk full")

@plait.hookimpl
def plait_register_log_handlers(config):
    return [Exploding()]
"""


@task
def speak(x):
    plait.context.logger.info("speaking %s", x)
    return x


def test_json_formatter_carries_the_run_context():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(RunContextFilter())
    logger = logging.getLogger("plait.task")
    logger.addHandler(handler)
    try:
        with Flow("json-flow") as flow:
            speak.map([7, 8])
        state = flow.run(context={"flow_run_id": "run-42"})
    finally:
        logger.removeHandler(handler)
    assert state.is_successful()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sorted((d["message"], d["task_full_name"], d["map_index"]) for d in lines) == [
        ("speaking 7", "speak[0]", 0),
        ("speaking 8", "speak[1]", 1),
    ]
    assert {d["flow_name"] for d in lines} == {"json-flow"}
    assert {d["flow_run_id"] for d in lines} == {"run-42"}
    assert {d["level"] for d in lines} == {"INFO"}
    assert all(d["time"].endswith("+00:00") for d in lines)


def test_json_formatter_includes_exception_and_extra_fields():
    record = logging.LogRecord("plait", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
    record.attempt = 3
    data = json.loads(JSONFormatter().format(record))
    assert data["message"] == "failed x" and data["attempt"] == 3 and data["task_name"] == "-"


def test_a_failing_plugin_log_handler_is_named_and_the_run_is_unaffected(install_dist, capsys):
    install_dist("plait-exploding", {"plait_exploding": FAILING_HANDLER}, {"exploding": "plait_exploding"})
    with Flow("noisy") as flow:
        speak.map([1, 2, 3])
    state = flow.run()
    assert state.is_successful()
    err = capsys.readouterr().err
    assert err.count("of Plait plugin 'exploding' raised OSError: disk full") == 1
