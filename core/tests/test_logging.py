"""plait/logging.py: run-aware records, the default handler, and log_stdout."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

import plait
from plait import Flow, task
from plait.engine.executors import ThreadExecutor
from plait.logging import JSONFormatter, RunContextFilter, configure_logging, get_logger


@pytest.fixture
def records(caplog):
    caplog.set_level(logging.INFO, logger="plait")
    return caplog


def _task_records(caplog, text):
    return [r for r in caplog.records if text in r.getMessage()]


def test_context_logger_records_carry_flow_task_and_map_index(executor, records):
    @task
    def speak(x):
        plait.context.logger.info("speaking %s", x)

    with Flow("talk") as flow:
        speak.map(["a", "b"])
        speak("c")
    flow.run(executor=executor)
    by_msg = {r.getMessage(): r for r in _task_records(records, "speaking")}
    assert set(by_msg) == {"speaking a", "speaking b", "speaking c"}
    for msg, index in (("speaking a", 0), ("speaking b", 1), ("speaking c", None)):
        record = by_msg[msg]
        assert record.flow_name == "talk"
        assert record.task_name == "speak"
        assert record.map_index == index
        assert record.flow_run_id
    assert by_msg["speaking b"].task_full_name == "speak[1]"
    assert by_msg["speaking a"].name == "plait.task"


def test_get_logger_stamps_records(records):
    @task
    def uses_get_logger():
        get_logger("mine").warning("from get_logger")

    with Flow("named") as flow:
        uses_get_logger()
    flow.run()
    (record,) = _task_records(records, "from get_logger")
    assert record.name == "plait.mine"
    assert record.flow_name == "named" and record.task_name == "uses_get_logger"
    assert get_logger().logger.name == "plait"


def test_records_outside_a_run_have_placeholders(records):
    get_logger().warning("outside")
    (record,) = _task_records(records, "outside")
    assert record.flow_name == "-" and record.task_name == "-" and record.map_index is None


def test_run_logs_its_start_and_end(records):
    @task
    def fails():
        raise ValueError("visible failure")

    with Flow("loud") as flow:
        fails()
    flow.run()
    text = records.text
    assert "Beginning flow run 'loud'" in text
    assert "Task 'fails' failed" in text and "visible failure" in text
    assert "Flow run FAILED" in text


def test_log_stdout_turns_prints_into_records(executor, records, capsys):
    @task(log_stdout=True)
    def chatty():
        print("hello from a task")
        print("two", "words", end="")
        return 1

    with Flow("print") as flow:
        chatty()
    flow.run(executor=executor)
    (hello,) = _task_records(records, "hello from a task")
    assert hello.task_name == "chatty" and hello.flow_name == "print"
    assert _task_records(records, "two words")
    assert "hello from a task" not in capsys.readouterr().out


def test_log_stdout_does_not_capture_other_threads(records, capsys):
    both_printing = threading.Barrier(2, timeout=10)

    @task(log_stdout=True)
    def captured():
        both_printing.wait()
        print("captured line")
        both_printing.wait()

    @task
    def free():
        both_printing.wait()
        print("free line")
        both_printing.wait()

    with Flow("threads") as flow:
        captured()
        free()
    assert flow.run(executor=ThreadExecutor(max_workers=2)).is_successful()
    assert _task_records(records, "captured line")
    assert not _task_records(records, "free line")
    out = capsys.readouterr().out
    assert "free line" in out and "captured line" not in out


def test_default_handler_added_once_when_nothing_is_configured(monkeypatch):
    plait_logger = logging.getLogger("plait")
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(plait_logger, "handlers", [])
    monkeypatch.setenv("PLAIT__LOGGING__LEVEL", "DEBUG")
    plait_logger.setLevel(logging.NOTSET)
    configure_logging(force=True)
    configure_logging()
    assert len(plait_logger.handlers) == 1
    handler = plait_logger.handlers[0]
    assert any(isinstance(f, RunContextFilter) for f in handler.filters)
    assert plait_logger.level == logging.DEBUG


def test_configure_logging_leaves_a_configured_application_alone(monkeypatch):
    plait_logger = logging.getLogger("plait")
    monkeypatch.setattr(plait_logger, "handlers", [])
    mine = logging.NullHandler()
    monkeypatch.setattr(logging.getLogger(), "handlers", [mine])
    configure_logging(force=True)
    assert plait_logger.handlers == []


# --- JSON records and plugin log handlers ------------------------------------------------------

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
    try:
        raise ValueError("bad row 7")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    data = json.loads(JSONFormatter().format(record))
    assert data["message"] == "failed x" and data["attempt"] == 3 and data["task_name"] == "-"
    assert data["exception"].startswith("Traceback (most recent call last):")
    assert data["exception"].rstrip().endswith("ValueError: bad row 7")
    assert "bad row 7" not in data["message"]


def test_the_json_formatter_is_python_json_logger_and_costs_import_plait_nothing():
    import subprocess
    import sys

    code = (
        "import sys, plait, plait.logging; assert 'pythonjsonlogger' not in sys.modules; "
        "from plait.logging import JSONFormatter; from pythonjsonlogger.json import JsonFormatter; "
        "assert issubclass(JSONFormatter, JsonFormatter)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_failing_plugin_log_handler_is_named_and_the_run_is_unaffected(install_dist, capsys):
    install_dist("plait-exploding", {"plait_exploding": FAILING_HANDLER}, {"exploding": "plait_exploding"})
    with Flow("noisy") as flow:
        speak.map([1, 2, 3])
    state = flow.run()
    assert state.is_successful()
    err = capsys.readouterr().err
    assert err.count("of Plait plugin 'exploding' raised OSError: disk full") == 1


@task
def explode(x):
    raise ValueError(f"bad row {x}")


def test_a_task_failure_record_has_exc_info_and_the_task_name(caplog):
    with Flow("failing") as flow:
        explode.map([7])
    with caplog.at_level(logging.ERROR, logger="plait"):
        state = flow.run()
    assert state.is_failed()
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Task 'explode[0]' failed")]
    assert record.getMessage() == "Task 'explode[0]' failed: Error during execution of task: ValueError('bad row 7')"
    assert "Traceback" not in record.getMessage()  # the traceback is the record's exception, not its text
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert record.exc_text.startswith("Traceback (most recent call last):")
    assert (record.task_name, record.task_full_name, record.map_index) == ("explode", "explode[0]", 0)
    assert record.flow_name == "failing"
    line = json.loads(JSONFormatter().format(record))
    assert line["task_name"] == "explode" and line["exception"].rstrip().endswith("ValueError: bad row 7")
