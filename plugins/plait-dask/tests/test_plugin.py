"""The plugin as users meet it: found by name, configured, and from ``plait run``."""

from __future__ import annotations

import os
import socket
import textwrap

from click.testing import CliRunner
from plait_dask import DaskExecutor, plugin

from plait import Flow, task
from plait.cli import main
from plait.config import reset_config
from plait.engine.executors import get_executor
from plait.testing import assert_plugin_conforms


@task
def where():
    return os.getpid()


def test_the_plugin_conforms_and_its_entry_point_loads():
    assert assert_plugin_conforms(plugin) == ["plait_register_executors", "plait_register_settings"]
    assert assert_plugin_conforms("dask") == ["plait_register_executors", "plait_register_settings"]


def test_dask_is_a_registered_executor_name(address):
    executor = get_executor("dask", address=address, batch_size=10)
    assert isinstance(executor, DaskExecutor)
    assert (executor.address, executor.batch_size) == (address, 10)


def test_flow_run_by_name_uses_the_configured_address(address, monkeypatch):
    monkeypatch.setenv("PLAIT__PLUGINS__DASK__ADDRESS", address)
    reset_config()
    try:
        assert DaskExecutor().address == address
        with Flow("by-name") as flow:
            w = where()
        state = flow.run(executor="dask")
    finally:
        monkeypatch.delenv("PLAIT__PLUGINS__DASK__ADDRESS")
        reset_config()
    assert state.is_successful()
    assert state.result[w].result != os.getpid()


FLOW_FILE = """
    import os
    from plait import Flow, task

    @task
    def square(x):
        return x * x

    @task
    def total(xs):
        return sum(xs)

    with Flow("cli-dask") as flow:
        total(square.map(list(range(5))))
"""


def test_plait_run_with_executor_dask_and_an_address(address, tmp_path):
    path = tmp_path / "cli_flow.py"
    path.write_text(textwrap.dedent(FLOW_FILE))
    result = CliRunner().invoke(main, ["run", str(path), "--executor", "dask", "--address", address])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "Success" in result.output


def test_plait_run_against_an_address_where_no_cluster_listens(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "cli_flow.py"
    path.write_text(textwrap.dedent(FLOW_FILE))
    address = f"tcp://127.0.0.1:{port}"
    result = CliRunner().invoke(main, ["run", str(path), "--executor", "dask", "--address", address])
    assert result.exit_code == 2, result.output
    assert f"no Dask scheduler at '{address}'" in result.output
