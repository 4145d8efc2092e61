"""Secrets on the Dask executor: the driver's secrets (read in the driver, secret parameters) are
masked in the states that Dask workers make, and in what handlers, triggers and loops raise."""

from __future__ import annotations

import pytest
from plait_dask import DaskExecutor

import plait
from plait import Flow, Parameter, signals, task
from plait.secrets import MASK, Secret

LEAK = "d4sk-Driver-S3cret-91ab"


def raises_with_the_secret(*args):
    raise RuntimeError(f"the vault refused {LEAK}")


@task
def fine():
    return 1


@task
def loop_then_fail():
    if plait.context.task_loop_count < 3:
        raise signals.LOOP(result=plait.context.task_loop_count)
    raise ValueError(f"loop {plait.context.task_loop_count} failed with {LEAK}")


@task
def fail_with(value):
    plait.context.logger.warning("trying %s", value)
    raise ConnectionError(f"login refused for {value}")


@task
def echo(value):
    return value


def _texts(state):
    out = []
    for s in state.result.values():
        out += [s.message or "", getattr(s, "traceback", None) or "", repr(s)]
    return "\n".join(out)


@pytest.mark.parametrize("where", ["state-handler", "trigger", "loop"])
def test_secrets_in_handler_trigger_and_loop_errors_are_masked(address, monkeypatch, where):
    monkeypatch.setenv("PLAIT_DASK_TEST_LEAK", LEAK)
    assert Secret("PLAIT_DASK_TEST_LEAK").get() == LEAK  # known to the driver only
    with Flow("leaky") as flow:
        if where == "state-handler":
            fine(task_args={"state_handlers": [raises_with_the_secret]})
        elif where == "trigger":
            fine(task_args={"trigger": raises_with_the_secret}, upstream_tasks=[fine()])
        else:
            loop_then_fail()
    state = flow.run(executor=DaskExecutor(address))
    assert state.is_failed()
    texts = _texts(state)
    assert MASK in texts and LEAK not in texts


def test_a_secret_parameter_is_masked_in_states_made_on_the_workers(address, caplog):
    value = "d4sk-param-S3cret-55"
    with Flow("secret-param") as flow:
        password = Parameter("password", secret=True)
        fail_with(password)
        kept = echo(password)
    state = flow.run(parameters={"password": value}, executor=DaskExecutor(address))
    assert state.is_failed()
    texts = _texts(state)
    assert "login refused for ********" in texts and value not in texts
    assert state.result[kept].result == value  # the task still gets the value
    # the worker's log line, forwarded to the driver's loggers, is masked there
    from plait.secrets import SecretsFilter

    for record in caplog.records:
        SecretsFilter().filter(record)
        assert value not in record.getMessage()
