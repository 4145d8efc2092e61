"""Discovery of real installed plugin distributions (built from tests/fixtures/dists)."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.slow

FLOW = textwrap.dedent(
    """
    from plait import Flow, task

    @task
    def inc(x):
        return x + 1

    with Flow("discovery") as flow:
        inc.map([1, 2])
    state = flow.run()
    assert state.is_successful(), state
    print("RUN OK")
    """
)


def test_broken_and_mismatched_plugins_are_warnings_and_the_good_one_works(plait_venv, tmp_path):
    records = plait_venv.plugins()
    assert records["good"]["status"] == "loaded"
    assert records["good"]["distribution"] == "plait-fixture-good"
    assert records["good"]["version"] == "0.0.1"
    assert records["good"]["hooks"] == ["plait_register_tasks", "plait_task_state_changed"]
    assert records["broken"]["status"] == "failed"
    assert "plait_fixture_missing_dependency" in records["broken"]["error"]
    assert records["mismatch"]["status"] == "failed"
    assert "state" in records["mismatch"]["error"]
    script = tmp_path / "flow.py"
    script.write_text(FLOW)
    out = plait_venv.run(plait_venv.python, str(script))
    assert "RUN OK" in out.stdout
    assert "good saw inc[1]: Running -> Success" in out.stdout
    assert "'broken' (distribution plait-fixture-broken 0.0.1) was not loaded" in out.stderr
    assert "'mismatch' (distribution plait-fixture-mismatch 0.0.1) was not loaded" in out.stderr


def test_plait_tasks_lists_the_installed_library(plait_venv):
    out = plait_venv.run(plait_venv.plait, "tasks")
    assert out.stdout.split() == ["shout", "good", "Upper-case", "a", "text."]


def test_allow_list_and_deny_list(plait_venv):
    records = plait_venv.plugins(PLAIT_LOAD_PLUGINS="good")
    assert (records["good"]["status"], records["broken"]["status"]) == ("loaded", "disabled")
    records = plait_venv.plugins(PLAIT_LOAD_PLUGINS="")
    assert {r["status"] for n, r in records.items() if n != "plait.builtin"} == {"disabled"}
    records = plait_venv.plugins(PLAIT_DISABLE_PLUGINS="broken,plait-fixture-mismatch")
    assert [records[n]["status"] for n in ("good", "broken", "mismatch")] == ["loaded", "disabled", "disabled"]


def test_trace_logs_hook_calls(plait_venv, tmp_path):
    script = tmp_path / "flow.py"
    script.write_text(FLOW)
    out = plait_venv.run(plait_venv.python, str(script), PLAIT_TRACE_PLUGINS="1", PLAIT_LOAD_PLUGINS="good")
    traced = [line for line in out.stderr.splitlines() if "hook plait_task_state_changed" in line]
    # inc is mapped: the parent and 2 children go Pending -> Running -> done; the list literal too.
    assert len(traced) >= 6 and all(line.rstrip().endswith("-> good") for line in traced)
