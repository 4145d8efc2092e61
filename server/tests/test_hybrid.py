"""The hybrid model: a flow's constant values and its task results never reach the server's database.

A flow whose task is called with a unique constant and returns a unique value is registered,
run here with its states (and logs) reported through the API as a flow-run process reports
them, with the result checkpointed to local storage; then the database file is searched for
both values, byte for byte: absent. The states carry the result's location instead.
"""

from __future__ import annotations

import uuid

from plait.client import FlowRunState, TaskRunState, state_payload
from plait.engine.runner import FlowRunner
from plait.registration import flow_metadata
from plait.storage import storage_for


def test_constants_and_results_never_reach_the_database(tmp_path, flow_file):
    from conftest import ServerProcess

    constant = f"PLANTED-CONSTANT-{uuid.uuid4().hex}"
    result_value = f"PLANTED-RESULT-{uuid.uuid4().hex}"
    results_dir = tmp_path / "results"
    path = tmp_path / "hybrid.py"
    path.write_text(
        "from plait import Flow, task\n"
        "from plait.results import LocalResult\n\n"
        f"@task(checkpoint=True, result=LocalResult(dir={str(results_dir)!r}))\n"
        "def shout(text):\n"
        f"    return text.replace({constant!r}, {result_value!r})\n\n"
        "with Flow('hybrid') as flow:\n"
        f"    shout({constant!r})\n"
    )
    from plait.cli.loading import load_flow

    flow = load_flow(str(path))
    server = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path).start()
    try:
        client = server.client()
        metadata = flow_metadata(flow)
        assert constant not in str(metadata)
        registered = client.register_flow(metadata=metadata, storage=storage_for(path, "hybrid").reference())
        run = client.create_flow_run(flow_id=registered.id)
        version = run.version
        for name in ("Submitted", "Running"):
            (out,) = client.set_flow_run_states([FlowRunState(run.id, version, {"type": name})])
            assert out.ok, out
            version = out.version
        task_versions: dict[str, int] = {}
        reported = []

        def report(task, old, new):
            location = None
            if new.is_successful():
                stored = list(results_dir.iterdir())
                location = stored[0].as_uri() if stored else None
            (out,) = client.set_task_run_states(
                [
                    TaskRunState(
                        run.id, task.slug, task_versions.get(task.slug, 0), state_payload(new, result_location=location)
                    )
                ]
            )
            assert out.ok, out
            task_versions[task.slug] = out.version
            reported.append(new.name)

        final = FlowRunner(flow, task_observers=[report]).run()
        assert final.is_successful() and reported == ["Running", "Success"]
        (task_state,) = final.result.values()
        assert task_state.result == result_value
        client.write_run_logs([{"flow_run_id": run.id, "message": "shout finished", "task_slug": "shout"}])
        (out,) = client.set_flow_run_states([FlowRunState(run.id, version, {"type": "Success"})])
        assert out.ok
        (stored,) = client.task_runs(run.id)[0]
        assert stored.result_location and stored.result_location.startswith("file://")
    finally:
        server.stop()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("server.db*"))
    assert b"shout finished" in database  # the search does see what the server stores
    assert constant.encode() not in database
    assert result_value.encode() not in database


def test_secret_parameters_never_reach_the_database(tmp_path):
    """``plait register`` of a flow with a secret parameter sends its name, never its default;
    ``plait flow-run create -p secret=...`` is refused naming the parameter, never echoing the
    value; neither value is in the database file afterwards."""
    import subprocess

    from conftest import PLAIT, ServerProcess

    default = f"PLANTED-SECRET-DEFAULT-{uuid.uuid4().hex}"
    given = f"PLANTED-SECRET-GIVEN-{uuid.uuid4().hex}"
    path = tmp_path / "secret_flow.py"
    path.write_text(
        "from plait import Flow, Parameter, task\n\n"
        "@task\ndef login(password):\n    return len(password)\n\n"
        "with Flow('secret-params') as flow:\n"
        f"    login(Parameter('password', default={default!r}, secret=True))\n"
    )
    server = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path).start()
    try:

        def plait(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*PLAIT, *args], capture_output=True, text=True, env=server.env(), timeout=120)

        registered = plait("register", str(path))
        assert registered.returncode == 0, registered.stderr
        refused = plait("flow-run", "create", "secret-params", "-p", f"password={given}")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "'password'" in refused.stderr and "secret" in refused.stderr
        assert given not in refused.stdout + refused.stderr
        created = plait("flow-run", "create", "secret-params")  # the default stays where the code is
        assert created.returncode == 0, created.stderr
        (flow,) = server.client().flows(name="secret-params")
        assert default not in repr(flow)
    finally:
        server.stop()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("server.db*"))
    assert b"secret-params" in database  # the search does see what the server stores
    assert default.encode() not in database
    assert given.encode() not in database
    log = b"".join(p.read_bytes() for p in tmp_path.glob("server-*.log"))
    assert given.encode() not in log and default.encode() not in log
