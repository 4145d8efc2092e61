"""What registration sends (``plait.registration``): run configs, and fingerprints that do not
depend on where a flow file was loaded from."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from plait import Flow, task
from plait.agents import Agent, AgentError, check_run_config
from plait.cli.loading import load_flow
from plait.registration import flow_fingerprint, flow_metadata

FLOW = """
from plait import Flow, task

@task
def double(x):
    return 2 * x

with Flow("files") as flow:
    double({value})
"""


@task
def one():
    return 1


def test_run_config_is_registered_with_the_flow_and_changes_its_fingerprint():
    with Flow("etl", run_config={"docker": {"image": "registry.example.com/etl:3"}}) as flow:
        one()
    with Flow("etl") as plain:
        one()
    metadata = flow_metadata(flow)
    assert metadata["run_config"] == {"docker": {"image": "registry.example.com/etl:3"}}
    assert "run_config" not in flow_metadata(plain)  # flows without one keep their shape
    assert flow_fingerprint(metadata) != flow_fingerprint(flow_metadata(plain))
    assert flow.copy().run_config == flow.run_config


@pytest.mark.parametrize(
    ("run_config", "message"),
    [
        ({"docker": "registry.example.com/etl:3"}, "a table per agent kind"),
        ("docker", "a table per agent kind"),
        ({"docker": {"image": object()}}, "plain JSON data"),
        ({"docker": {"cpus": float("nan")}}, "plain JSON data"),
    ],
)
def test_a_bad_run_config_is_refused_when_the_flow_is_made(run_config, message):
    with pytest.raises(TypeError, match=f"Flow 'etl': run_config must be {message}"):
        Flow("etl", run_config=run_config)


def test_the_same_file_loaded_from_another_path_has_the_same_fingerprint(tmp_path):
    first = tmp_path / "a" / "files.py"
    first.parent.mkdir()
    first.write_text(textwrap.dedent(FLOW.format(value=1)))
    copy = tmp_path / "b" / "files.py"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    changed = tmp_path / "c" / "files.py"
    changed.parent.mkdir()
    changed.write_text(
        textwrap.dedent(FLOW.format(value=1)).replace("def double", "def triple").replace("double(", "triple(")
    )
    fingerprints = [flow_fingerprint(flow_metadata(load_flow(str(p)))) for p in (first, copy, changed)]
    assert fingerprints[0] == fingerprints[1]  # an agent's copy, a download from s3://
    assert fingerprints[0] != fingerprints[2]  # another task is another flow


def test_run_configs_are_checked_by_the_agent_kinds_they_name(monkeypatch):
    class Strict(Agent):
        type = "strict"

        @classmethod
        def check_run_config(cls, table):
            if "image" not in table:
                raise AgentError("strict needs an image")

    monkeypatch.setattr("plait.agents.available_agents", lambda: {"strict": Strict})
    check_run_config({"strict": {"image": "x"}, "elsewhere": {"anything": 1}})  # uninstalled kinds: not checked
    check_run_config(None)
    with pytest.raises(AgentError, match="strict needs an image"):
        check_run_config({"strict": {}})
