"""Secrets never reach the logs: planted, logged every way we can think of, then searched for."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap

import pytest

from plait import Flow, task
from plait.errors import FlowRunError, SecretNotFoundError
from plait.logging import JSONFormatter, RunContextFilter
from plait.secrets import MASK, Secret, SecretsFilter, mask

VALUE = "s3cr3t-Value-9f8e7d"


def test_secret_from_environment_then_config(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_TOKEN", "from-env-1234")
    assert Secret("PLAIT_TEST_TOKEN").get() == "from-env-1234"
    path = tmp_path / "config.toml"
    path.write_text('[secrets]\nPLAIT_TEST_OTHER = "from-config-5678"\n')
    monkeypatch.setenv("PLAIT_CONFIG", str(path))
    assert Secret("PLAIT_TEST_OTHER").get() == "from-config-5678"
    assert mask("x from-config-5678 y") == f"x {MASK} y"


def test_missing_secret_names_it_and_where_to_set_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAIT_CONFIG", str(tmp_path / "c.toml"))
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(SecretNotFoundError) as info:
        Secret("PLAIT_NOT_SET_ANYWHERE").get()
    message = str(info.value)
    assert "'PLAIT_NOT_SET_ANYWHERE' is not set" in message
    assert "environment variable PLAIT_NOT_SET_ANYWHERE" in message and "[secrets]" in message


def test_planted_secret_never_appears_in_captured_logs(monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_PLANTED", VALUE)
    secret = Secret("PLAIT_TEST_PLANTED").get()
    stream = io.StringIO()
    json_stream = io.StringIO()
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter("%(message)s %(token)s"))
    as_json = logging.StreamHandler(json_stream)
    as_json.setFormatter(JSONFormatter())
    for handler in (plain, as_json):
        handler.addFilter(RunContextFilter())
        handler.addFilter(SecretsFilter())
    logger = logging.getLogger("plait.test_secrets")
    logger.addHandler(plain)
    logger.addHandler(as_json)
    logger.propagate = False
    try:
        logger.warning(f"in the message {secret}", extra={"token": "-"})
        logger.warning("in the args %s and %r", secret, {"key": secret}, extra={"token": "-"})
        logger.warning("in an extra field", extra={"token": f"Bearer {secret}"})
        try:
            raise ValueError(f"exception text {secret}")
        except ValueError:
            logger.exception("in the exception", extra={"token": "-"})
        logger.warning("in the stack", stack_info=True, extra={"token": secret})
    finally:
        logger.removeHandler(plain)
        logger.removeHandler(as_json)
        logger.propagate = True
    text = stream.getvalue() + json_stream.getvalue()
    assert VALUE not in text
    assert text.count(MASK) >= 6
    assert "exception text ********" in stream.getvalue()
    lines = [json.loads(line) for line in json_stream.getvalue().splitlines()]
    assert lines[2]["token"] == f"Bearer {MASK}"


def test_secret_in_a_failing_task_is_masked_in_state_and_plait_errors(monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_PLANTED", VALUE)
    secret = Secret("PLAIT_TEST_PLANTED").get()

    @task
    def leak():
        raise RuntimeError(f"could not log in with {secret}")

    with Flow("leaky") as flow:
        leak()
    state = flow.run()
    (task_state,) = state.result.values()
    assert VALUE not in task_state.message and MASK in task_state.message
    assert VALUE not in task_state.traceback
    assert VALUE not in str(FlowRunError(f"bad {secret}"))


def test_flow_run_logs_never_show_the_secret(tmp_path):
    """A real process with Plait's own default handler: task logs, failures, tracebacks."""
    script = tmp_path / "leaky.py"
    script.write_text(
        textwrap.dedent(
            """
            import plait
            from plait import Flow, task
            from plait.secrets import Secret

            @task
            def chatty():
                token = Secret("PLAIT_TEST_PLANTED").get()
                plait.context.logger.info("token is %s", token)
                plait.context.logger.info(f"token inline {token}")
                plait.context.logger.warning("dict %s", {"token": token}, extra={"header": "Bearer " + token})
                raise ValueError("failed with " + token)

            with Flow("leaky") as flow:
                chatty()
            state = flow.run()
            assert state.is_failed()
            """
        )
    )
    for fmt in ("text", "json"):
        env = {"PLAIT_TEST_PLANTED": VALUE, "PLAIT__LOGGING__FORMAT": fmt, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, check=True)
        logs = out.stdout + out.stderr
        assert "token is ********" in logs or "token is ********" in logs.replace("\\", "")
        assert "failed with ********" in logs
        assert VALUE not in logs


def test_url_passwords_are_masked_without_being_registered():
    from plait.secrets import mask

    assert mask("connect postgresql://bob:hunter2@db:5432/sales") == "connect postgresql://bob:********@db:5432/sales"
    assert mask("redis://:only-pass@cache:6379/0") == "redis://:********@cache:6379/0"
    # no password, or not a URL: unchanged
    for text in ("s3://bucket/key", "postgresql://bob@db/sales", "mailto:a@b", "http://host/path@v2"):
        assert mask(text) == text


def test_a_failing_task_never_logs_a_url_password(caplog):
    from plait import Flow, Parameter, task

    @task
    def connect(url):
        raise ConnectionError("cannot reach " + url)

    with Flow("db") as flow:
        connect(Parameter("db"))
    state = flow.run(parameters={"db": "postgresql://bob:hunter2-pw@127.0.0.1:1/sales"})
    assert state.is_failed()
    (task_state,) = [s for t, s in state.result.items() if t.name == "connect"]
    assert "hunter2" not in task_state.message and "hunter2" not in (task_state.traceback or "")
    from plait.secrets import SecretsFilter

    for record in caplog.records:
        SecretsFilter().filter(record)
        assert "hunter2" not in record.getMessage() and "hunter2" not in (record.exc_text or "")
