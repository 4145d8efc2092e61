"""The plugin as Plait sees it: entry point, hooks, ``plait tasks``/``plait plugins``, a light import."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from plait_docker import DockerBuild, DockerPull, DockerPush, DockerRemove, DockerRun, plugin

from plait.testing import assert_plugin_conforms

PLAIT = str(Path(sys.executable).parent / "plait")


@pytest.fixture
def plait_plugin():
    return plugin


def plait_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PLAIT, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_conforms_as_module_and_as_installed_entry_point():
    assert assert_plugin_conforms(plugin)
    assert assert_plugin_conforms("docker")
    (ep,) = [ep for ep in entry_points(group="plait") if ep.name == "docker"]
    assert ep.value == "plait_docker.plugin"
    assert ep.dist.name == "plait-docker"


def test_registers_the_five_tasks(plait_hooks):
    tasks = [t for _, t in plait_hooks.register_tasks()]  # only the core and this plugin are registered
    assert tasks == [DockerRun, DockerBuild, DockerPull, DockerPush, DockerRemove]


def test_plait_plugins_and_plait_tasks_list_it():
    plugins = plait_cli("plugins")
    assert plugins.returncode == 0, plugins.stderr
    line = next(line for line in plugins.stdout.splitlines() if " docker " in f" {line} ")
    assert "plait-docker" in line and "0.1.0" in line and "loaded" in line
    assert "plait_register_tasks" in plugins.stdout and "plait_register_commands" in plugins.stdout
    tasks = plait_cli("tasks")
    assert tasks.returncode == 0, tasks.stderr
    for name in ("DockerRun", "DockerBuild", "DockerPull", "DockerPush", "DockerRemove"):
        assert any(line.split()[:2] == [name, "docker"] for line in tasks.stdout.splitlines()), tasks.stdout


def test_import_is_light():
    """Importing the package or its plugin module does not import the Docker SDK."""
    code = "import sys, plait_docker, plait_docker.plugin; print('docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_tasks_pickle_for_process_executors():
    import pickle

    from plait.secrets import Secret

    task = DockerRun(image="busybox", command=["true"], env={"TOKEN": Secret("TOKEN")}, timeout=5)
    copy = pickle.loads(pickle.dumps(task))
    assert copy.image == "busybox" and copy.env["TOKEN"].name == "TOKEN"


def test_registers_the_docker_agent_kind():
    from plait_docker.agent import DockerAgent

    from plait.agents import available_agents, get_agent_class

    assert available_agents()["docker"] is DockerAgent
    assert get_agent_class("docker") is DockerAgent
    assert "plait_register_agents" in plait_cli("plugins").stdout
    help_ = plait_cli("agent", "start", "--help")
    assert help_.returncode == 0, help_.stderr
    words = " ".join(help_.stdout.split())
    assert "docker" in words and "local" in words  # the --type choices
    for option in ("--image", "--volume", "--env", "--network", "--server-url", "--pull"):
        assert option in words
    assert "(agent kind: docker)" in words
