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


# --- every state message is masked where it is made (issue 11) ---------------------------------
#
# Exceptions raised by state handlers, triggers and LOOP iterations (not only by the task's own
# body) reach state.message, tracebacks and flow.visualize tooltips; a secret in them is masked
# on every executor. The tasks live at module level so the process pool can run them.

HANDLER_SECRET = "h4ndler-S3cret-7a1c"


def _raise_with_secret(*args):
    raise RuntimeError(f"could not log in with {HANDLER_SECRET}")


@task
def _noop():
    return 1


@task
def _loops_then_fails():
    import plait
    from plait import signals

    if plait.context.task_loop_count < 3:
        raise signals.LOOP(result=plait.context.task_loop_count)
    raise ValueError(f"loop {plait.context.task_loop_count} failed with {HANDLER_SECRET}")


@task
def _fails_plainly():
    raise ValueError("no secret here")


@task
def _fails_with_signal():
    from plait import signals

    raise signals.FAIL(f"refused by the server for {HANDLER_SECRET}")


def _texts(state):
    """Every text a user may be shown about a flow run: messages, tracebacks, DOT tooltips."""
    out = [state.message or "", getattr(state, "traceback", None) or ""]
    for task_state in state.result.values() if isinstance(state.result, dict) else ():
        out += [task_state.message or "", getattr(task_state, "traceback", None) or ""]
        out += [repr(task_state), str(task_state.to_dict())]
    return "\n".join(out)


@pytest.fixture
def handler_secret(monkeypatch):
    monkeypatch.setenv("PLAIT_TEST_HANDLER_SECRET", HANDLER_SECRET)
    assert Secret("PLAIT_TEST_HANDLER_SECRET").get() == HANDLER_SECRET


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _noop(task_args={"state_handlers": [_raise_with_secret]}), id="task-state-handler"),
        pytest.param(lambda: _noop(task_args={"trigger": _raise_with_secret}, upstream_tasks=[_noop()]), id="trigger"),
        pytest.param(lambda: _loops_then_fails(), id="loop-iteration"),
        pytest.param(lambda: _fails_with_signal(), id="fail-signal"),
        pytest.param(lambda: _fails_plainly(task_args={"on_failure": _raise_with_secret}), id="on-failure"),
    ],
)
def test_secrets_in_handler_trigger_and_loop_errors_are_masked(handler_secret, any_executor, make):
    from plait.visualize import flow_to_dot

    with Flow("leaky-handlers") as flow:
        make()
    state = flow.run(executor=any_executor)
    assert state.is_failed()
    texts = _texts(state)
    assert MASK in texts
    assert HANDLER_SECRET not in texts
    assert HANDLER_SECRET not in flow_to_dot(flow, state)


def test_secrets_in_flow_handler_errors_are_masked(handler_secret):
    flow = Flow("leaky-flow-handlers", state_handlers=[_raise_with_secret])
    flow.add_task(_noop)
    state = flow.run()
    assert state.is_failed() and MASK in state.message
    assert HANDLER_SECRET not in state.message + state.traceback

    def terminal(flow, state, task_states):
        raise RuntimeError(f"terminal handler saw {HANDLER_SECRET}")

    flow = Flow("leaky-terminal-handler", terminal_state_handler=terminal)
    flow.add_task(_noop)
    state = flow.run()
    assert state.is_failed() and MASK in state.message
    assert HANDLER_SECRET not in state.message + state.traceback


def test_state_messages_made_anywhere_are_masked(handler_secret):
    from plait.states import Failed, Success

    assert Success(f"token {HANDLER_SECRET}").message == f"token {MASK}"
    failed = Failed("db postgresql://bob:pw-9x8y@db/sales", traceback=f"line 1\nValueError: {HANDLER_SECRET}")
    assert failed.message == f"db postgresql://bob:{MASK}@db/sales"
    assert HANDLER_SECRET not in failed.traceback
    # not text: left as it is
    assert Success(None).message is None and Failed(traceback=None).traceback is None


# --- "*_secret" settings: the key is named, the value never shown (issue 11) -------------------


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("xoxb-1234-pasted-token-abcd", "may be the secret itself"),
        ("PLAIT_TEST_NAME_NOT_SET", "set the environment variable it names"),
        (123456789, "must be the name of a secret"),
        ("", "must be the name of a secret"),
    ],
)
def test_a_wrong_secret_setting_names_the_key_never_the_value(value, hint, tmp_path, monkeypatch):
    from plait.errors import ConfigError
    from plait.secrets import read_secret_setting

    monkeypatch.setenv("PLAIT_CONFIG", str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.delenv("PLAIT_TEST_NAME_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as info:
        read_secret_setting("[plugins.pager]", "token_secret", value)
    message = str(info.value)
    assert message.startswith("[plugins.pager] token_secret ") and hint in message
    if value:
        assert str(value) not in message


def test_a_secret_pasted_into_a_secret_setting_is_masked_from_then_on(tmp_path, monkeypatch):
    from plait.errors import ConfigError
    from plait.secrets import read_secret_setting

    monkeypatch.setenv("PLAIT_CONFIG", str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(ConfigError):
        read_secret_setting("[x]", "url_secret", "https://hooks.example.com/T0/B0/pasted-Path-42")
    assert mask("posting to https://hooks.example.com/T0/B0/pasted-Path-42") == f"posting to {MASK}"
    monkeypatch.setenv("PLAIT_TEST_GOOD_NAME", "the-value-behind-the-name")
    assert read_secret_setting("[x]", "url_secret", "PLAIT_TEST_GOOD_NAME") == "the-value-behind-the-name"


def test_setting_repr_hides_secret_settings_only():
    from plait.secrets import setting_repr

    assert setting_repr("token_secret", "xoxb-abc") == "<a str value, not shown>"
    assert setting_repr("password", 1234) == "<a int value, not shown>"
    assert setting_repr("api_key", "") == "<an empty string>"
    assert setting_repr("states", ["Failed"]) == "['Failed']"
    assert setting_repr("url", "postgresql://bob:pw-1@db/x") == "'postgresql://bob:********@db/x'"


def test_redact_withholds_credential_keys_and_masks_strings():
    from plait.secrets import WITHHELD, is_secret_key, redact

    for name in (
        "password",
        "DB_PASSWORD",
        "Authorization",
        "auth",
        "X-Api-Key",
        "api_key",
        "access_token",
        "client_secret",
        "private_key",
        "Cookie",
        "credentials",
        "pwd",
    ):
        assert is_secret_key(name), name
    for name in ("url", "headers", "region", "key", "bucket", "user", "params"):
        assert not is_secret_key(name), name
    # names that only contain a credential word: an author, a count of tokens, a tokenizer
    for name in (
        "author",
        "Authors",
        "authority",
        "max_tokens",
        "max_query_tokens",
        "num_tokens",
        "n_tokens",
        "tokenizer",
    ):
        assert not is_secret_key(name), name
    for name in ("basic_auth", "AUTHORIZATION", "refresh_token", "tokens", "github_token", "oauth2"):
        assert is_secret_key(name), name
    assert redact(("alice", "pw"), key="auth") == WITHHELD
    assert redact(None, key="password") is None and redact("", key="token") == ""
    assert redact({"a": {"token": "t-1", "n": 1}}) == {"a": {"token": WITHHELD, "n": 1}}
    assert redact({1, 2}) == "{1, 2}"  # not JSON: its repr


def test_a_secret_parameter_value_registers_every_string_inside_it():
    from plait.secrets import register_secret_value

    register_secret_value({"user": "loader-x", "password": "nested-pw-1234", "port": 54329})
    assert mask("nested-pw-1234 54329") == f"{MASK} {MASK}"
    register_secret_value(True)  # nothing to hide
    assert mask("True") == "True"


@pytest.mark.parametrize(
    "pasted",
    ["xoxb-1234-5678-abcdefghijkl", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "https://hooks.example.com/T0/B0/x"],
)
def test_the_declared_settings_never_show_a_secret_pasted_into_a_secret_key(pasted):
    """``plait config`` and the declared settings' errors show a ``*_secret`` value only when it
    looks like a name (letters, digits, _), by the same rule as plait.secrets."""
    from plait.settings import show_value

    assert pasted not in show_value(None, "token_secret", pasted)
    assert show_value(None, "token_secret", "SLACK_BOT_TOKEN") == "'SLACK_BOT_TOKEN'"
    assert pasted not in show_value(None, "client_credentials", pasted)
