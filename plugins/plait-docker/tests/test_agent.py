"""The Docker agent against a real ``plait server start`` and the real Podman service.

Every run here goes the whole way: a flow registered with the server, ``plait agent start
--type docker`` (a subprocess) claiming it, ``plait execute flow-run ID`` in a container of the
``plait_image`` (Debian, Python and the Plait under test) on the host network, so the container
reaches the server on 127.0.0.1, and its states and logs reported to the server. Flow files
live in the test's folder, mounted read-only at the same path. Tests wait for conditions with
deadlines; a flow that must be held open waits for a "gate" file the test creates. The
``docker_agents`` fixture fails a test that leaves a container of its agents behind.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("plait_server", reason="the Docker agent's tests need plait-server (a real server)")

from plait_server.testing import AgentProcess, ServerProcess, run_processes, wait_until

from plait.client import Client
from plait.errors import ServerError

FINISHED = {"SUCCESS", "FAILED", "CANCELLED"}

FLOW = """
import os
import socket
import time

import plait
from plait import Flow, Parameter, task


@task
def where():
    plait.context.logger.info("running in %s", socket.gethostname())
    return os.path.exists("/run/.containerenv")  # Podman's mark inside a container


@task
def gate(path):
    while path and not os.path.exists(path):  # held open until the test creates the file
        time.sleep(0.05)
    return True


@task
def report(inside, opened):
    plait.context.logger.info("inside a container: %s", inside)
    return inside and opened


with Flow({name!r}{options}) as flow:
    report(where(), gate(Parameter("gate_file", default="")))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server; heartbeats every second (a run is dead after 3 s without one)."""
    directory = tmp_path_factory.mktemp("docker-agent-server")
    server = ServerProcess(
        f"sqlite:///{directory / 'server.db'}",
        directory,
        settings={"heartbeat_interval": 1.0, "scheduler_interval": 0.2, "late_after": 3600.0},
    ).start()
    yield server
    server.stop()


@pytest.fixture
def label():
    """A label of this test's own: its runs go to its agents only."""
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def docker_agents(server, podman_service, docker_host, plait_image, tmp_path, label):
    """``docker_agents(*options, image=True)`` starts ``plait agent start --type docker`` with the
    test's label, host networking and the test's folder mounted; at the end every agent is
    stopped, and no container (``podman ps -a``: the agents' by their label, and any other the
    test made) nor ``plait execute flow-run`` process of theirs may be left; a container that ended
    after its agent began to stop may (it stays until the agent starts again), and is removed."""
    started: list[AgentProcess] = []
    before = {row["Id"] for row in all_containers(podman_service)}

    def make(*options: str, image: bool = True, cancel_grace: float = 30.0, env: dict | None = None) -> AgentProcess:
        args = ["--network", "host", "--volume", f"{tmp_path}:{tmp_path}:ro", *options]
        if image:
            args += ["--image", plait_image]
        agent = AgentProcess(
            server,
            tmp_path,
            name=f"docker-{uuid.uuid4().hex[:6]}",
            labels=[label],
            kind="docker",
            args=args,
            cancel_grace=cancel_grace,
            extra_env={"DOCKER_HOST": docker_host, **(env or {})},
        ).start()
        started.append(agent)
        return agent

    yield make
    stopping = time.time()
    for agent in started:
        agent.stop()
    names = [agent.name for agent in started]
    try:
        wait_until(
            lambda: not [c for c in containers(podman_service, names) if c["State"] not in ("exited", "stopped")],
            timeout=60,
            what="the agents' containers to end",
        )
    finally:
        left = containers(podman_service, names)
        for row in left:
            podman_service.cli("rm", "-f", row["Id"], check=False)
    # A container that ended after its agent began to stop stays, exited, until the agent
    # starts again (test_a_stopped_agent_leaves_its_runs_going...); any other is a leak.
    leaked = [row for row in left if int(row.get("ExitedAt") or 0) < int(stopping)]
    assert not leaked, f"containers left behind: {[(row['Names'], row['State']) for row in leaked]}"
    others = [row for row in all_containers(podman_service) if row["Id"] not in before]
    assert not others, f"containers left behind: {[row['Names'] for row in others]}"
    assert not run_processes(agents=set(names)), "flow-run processes left behind"
    assert all(agent.process is None for agent in started)


def all_containers(podman) -> list[dict]:
    """Every container of the Podman service (``podman ps -a``)."""
    return json.loads(podman.cli("ps", "-a", "--format", "json").stdout or "[]")


def containers(podman, agents: list[str] | None = None, flow_run: str | None = None) -> list[dict]:
    """``podman ps -a`` rows (as JSON) of these agents' containers, or of one flow run's."""
    rows = []
    filters = [f"label=plait.agent={name}" for name in agents or ()]
    if flow_run:
        filters = [f"label=plait.flow-run-id={flow_run}"]
    for filter_ in filters:
        out = podman.cli("ps", "-a", "--filter", filter_, "--format", "json").stdout
        rows += json.loads(out or "[]")
    return rows


def flow_file(directory: Path, options: str = "") -> tuple[Path, str]:
    name = f"flow_{uuid.uuid4().hex[:8]}"
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(FLOW.format(name=name, options=options)))
    return path, name


def register(client: Client, path: Path, name: str, label: str, storage: dict | None = None):
    from plait.cli.loading import load_flow
    from plait.registration import flow_metadata
    from plait.storage import FileStorage

    flow = load_flow(f"{path}:{name}")
    return client.register_flow(
        metadata=flow_metadata(flow), storage=storage or FileStorage(path, name).reference(), labels=[label]
    )


def wait_finished(client: Client, run_id: str, timeout: float = 180.0):
    return wait_until(
        lambda: (r := client.flow_run(run_id)).state_type in FINISHED and r,
        timeout=timeout,
        interval=0.1,
        what=f"flow run {run_id} to finish",
    )


def history(server: ServerProcess, run_id: str) -> list[tuple[str, str]]:
    answer = server.graphql("query($id: ID!) { flow_run(id: $id) { states { state message } } }", {"id": run_id})
    return [(s["state"], s["message"] or "") for s in answer["data"]["flow_run"]["states"]]


def log_messages(client: Client, run_id: str) -> list[str]:
    lines, _, _ = client.logs(run_id)
    return [line.message for line in lines]


def running_container(podman, run_id: str) -> dict:
    return wait_until(
        lambda: next((c for c in containers(podman, flow_run=run_id) if c.get("State") == "running"), None),
        timeout=120,
        interval=0.1,
        what=f"the container of flow run {run_id} to run",
    )


def test_a_run_executes_in_a_container_and_reports_its_states_and_logs(
    server, podman_service, docker_agents, tmp_path, label
):
    client = server.client()
    path, name = flow_file(tmp_path)
    flow = register(client, path, name, label)
    gate = tmp_path / "gate"
    run = client.create_flow_run(flow_id=flow.id, parameters={"gate_file": str(gate)})
    agent = docker_agents()

    container = running_container(podman_service, run.id)
    details = json.loads(podman_service.cli("inspect", container["Id"]).stdout)[0]
    labels = details["Config"]["Labels"]
    assert labels["plait.flow-run-id"] == run.id
    assert labels["plait.flow"] == name and labels["plait.agent"] == agent.name
    assert labels["plait.flow-version"] == str(flow.version)
    env = dict(e.split("=", 1) for e in details["Config"]["Env"])
    token = env["PLAIT__SERVER__API_KEY"]
    assert env["PLAIT__SERVER__URL"] == server.url and env["PLAIT_FLOW_RUN_ID"] == run.id
    assert token != server.admin_key  # a run-scoped key, not the agent's
    assert token not in json.dumps(labels)
    assert details["Config"]["Cmd"] == ["plait", "execute", "flow-run", run.id]  # no key on the command line
    assert token not in json.dumps(details["Config"]["Cmd"]) + json.dumps(details.get("Args") or [])

    gate.touch()
    done = wait_finished(client, run.id)
    assert done.state == "Success", history(server, run.id)
    states = {(t.task_slug, t.map_index): t.state for t in client.all_task_runs(run.id)}
    assert states == {(slug, -1): "Success" for slug in ("gate_file", "where", "gate", "report")}
    messages = log_messages(client, run.id)
    assert "inside a container: True" in messages  # a task's log line, from the container to the server
    assert any(m.startswith("running in ") for m in messages)
    assert [s for s, _ in history(server, run.id)][-3:] == ["Submitted", "Running", "Success"]
    wait_until(lambda: not containers(podman_service, flow_run=run.id), timeout=60, what="the container's removal")
    log = agent.log.read_text()
    assert token not in log  # the container's output reaches the agent's log, never its key
    assert "inside a container: True" in log
    assert token not in server.log.read_text()
    with Client(server.url, token, retries=0) as leaked, pytest.raises(ServerError) as refused:
        leaked.flow_run(run.id)  # what `podman inspect` showed is dead now
    assert refused.value.code == "UNAUTHENTICATED"


LOUD_EXIT = """
import atexit
import os
import sys

from plait import Flow, task

LINES = {lines}


def loud_exit():  # the container's last output, written as its process exits
    sys.stderr.write("".join(f"exit line {{i}}\\n" for i in range(LINES)))
    sys.stderr.write("the very last line")  # no newline after it
    sys.stderr.flush()


if os.environ.get("PLAIT_FLOW_RUN_ID"):  # in the run's container, not where it is registered
    atexit.register(loud_exit)


@task
def hello():
    return 1


with Flow({name!r}) as flow:
    hello()
"""


def assert_all_in_order(expected: list[str], got: list[str]) -> None:
    """Every expected line is in ``got``, in order, and nothing else is. When Podman dropped
    lines from the followed stream, the stored log is written from the last block both agree
    on, so some lines can come twice (``tasks.ReceivedOutput``): none may be missing."""
    rest = iter(got)
    missing = [line for line in expected if not any(seen == line for seen in rest)]
    assert not missing, f"{len(missing)} line(s) missing or out of order, the first: {missing[:5]}"
    assert set(got) <= set(expected), sorted(set(got) - set(expected))[:5]


def test_the_agent_s_log_has_a_container_s_output_to_its_last_line(
    server, podman_service, docker_agents, tmp_path, label
):
    """Output written just before the container exits reaches the agent's log whole (Podman
    ends a followed log stream before it has sent it, and deletes an auto-removed container's
    log: lines were lost), and the container is removed all the same."""
    client = server.client()
    lines = 20000
    name = f"flow_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(LOUD_EXIT.format(name=name, lines=lines))
    flow = register(client, path, name, label)
    run = client.create_flow_run(flow_id=flow.id)
    agent = docker_agents()
    assert wait_finished(client, run.id).state == "Success"
    wait_until(lambda: not containers(podman_service, flow_run=run.id), timeout=60, what="the container's removal")
    wait_until(lambda: "the very last line" in agent.log.read_text(), timeout=60, what="the last line")
    log = agent.log.read_text().splitlines()
    assert_all_in_order(
        [f"exit line {i}" for i in range(lines)], [line for line in log if line.startswith("exit line ")]
    )


@pytest.mark.parametrize("how", ["kill", "rm -f"])
def test_a_container_killed_from_outside_is_recovered_like_any_crashed_run(
    server, podman_service, docker_agents, tmp_path, label, how
):
    client = server.client()
    path, name = flow_file(tmp_path)
    flow = register(client, path, name, label)
    gate = tmp_path / "gate"
    run = client.create_flow_run(flow_id=flow.id, parameters={"gate_file": str(gate)})
    docker_agents()
    first = running_container(podman_service, run.id)
    wait_until(lambda: client.flow_run(run.id).state == "Running", timeout=60, what="the run to be Running")

    podman_service.cli(*how.split(), first["Id"])

    # the agent sees the exit and reports it: the server reschedules the run, an agent claims it
    # again and a new container runs it
    second = wait_until(
        lambda: next(
            (
                c
                for c in containers(podman_service, flow_run=run.id)
                if c["Id"] != first["Id"] and c["State"] == "running"
            ),
            None,
        ),
        timeout=120,
        interval=0.1,
        what="a new container for the rescheduled run",
    )
    assert second["Names"] != first["Names"]
    gate.touch()
    done = wait_finished(client, run.id)
    assert done.state == "Success"
    states = history(server, run.id)
    rescheduled = [message for state, message in states if state == "Scheduled"][1:]
    assert rescheduled and "killed by signal 9" in rescheduled[0], states


def test_a_container_killed_with_its_agent_is_recovered_by_the_server_s_watchdog(
    server, podman_service, docker_agents, tmp_path, label
):
    """Nobody reports the exit: the agent was killed first. The run's heartbeats stop, the
    server's watchdog (Lazarus; 1 s heartbeats here, dead after 3) reschedules it, and another
    agent runs it in a new container."""
    from plait_server.testing import kill_group

    client = server.client()
    path, name = flow_file(tmp_path)
    flow = register(client, path, name, label)
    gate = tmp_path / "gate"
    run = client.create_flow_run(flow_id=flow.id, parameters={"gate_file": str(gate)})
    first_agent = docker_agents()
    first = running_container(podman_service, run.id)
    wait_until(lambda: client.flow_run(run.id).state == "Running", timeout=60, what="the run to be Running")

    kill_group(first_agent.process)  # kill -9: the agent cannot see or report anything any more
    first_agent.process = None
    podman_service.cli("kill", first["Id"])

    wait_until(
        lambda: client.flow_run(run.id).state == "Scheduled", timeout=60, interval=0.1, what="Lazarus to reschedule"
    )
    # the killed container stays on the engine (exited: nobody was there to remove it) ...
    assert [c["State"] for c in containers(podman_service, flow_run=run.id)] == ["exited"]
    gate.touch()
    first_agent.start()  # ... until the agent (same name) starts again: it removes its leftovers first
    done = wait_finished(client, run.id)
    assert done.state == "Success"
    states = history(server, run.id)
    rescheduled = [message for state, message in states if state == "Scheduled"][1:]
    assert rescheduled and "no heartbeat for 3s" in rescheduled[0], states
    assert [c for c in containers(podman_service, flow_run=run.id) if c["Id"] == first["Id"]] == []
    assert "removed 1 leftover container(s)" in first_agent.log.read_text()


def test_a_cancelled_run_s_container_is_killed_and_removed(server, podman_service, docker_agents, tmp_path, label):
    client = server.client()
    path, name = flow_file(tmp_path)
    flow = register(client, path, name, label)
    run = client.create_flow_run(flow_id=flow.id, parameters={"gate_file": str(tmp_path / "never")})
    agent = docker_agents(cancel_grace=1.0)
    running_container(podman_service, run.id)
    # The gate task started (its Running state is stored): from now on the run reaches no task
    # boundary where it could stop itself; cancelled before that, it would end Cancelled alone.
    wait_until(
        lambda: any(t.task_slug == "gate" and t.state == "Running" for t in client.all_task_runs(run.id)),
        timeout=60,
        what="the gate task to be Running",
    )

    client.cancel_flow_run(run.id)  # the task never reaches a boundary: the agent kills the container

    done = wait_finished(client, run.id)
    assert done.state == "Cancelled"
    wait_until(lambda: not containers(podman_service, flow_run=run.id), timeout=60, what="the container to go")
    assert "did not stop within 1s of its cancellation" in agent.log.read_text()


def test_a_stopped_agent_leaves_its_runs_going_and_its_restart_removes_their_containers(
    server, podman_service, docker_agents, tmp_path, label
):
    """Without its agent, an ended run's container stays (exited, with its output); the agent,
    started again under its name, copies that output to its log and removes the container."""
    client = server.client()
    path, name = flow_file(tmp_path)
    flow = register(client, path, name, label)
    gate = tmp_path / "gate"
    run = client.create_flow_run(flow_id=flow.id, parameters={"gate_file": str(gate)})
    agent = docker_agents()
    container = running_container(podman_service, run.id)
    wait_until(lambda: client.flow_run(run.id).state == "Running", timeout=60, what="the run to be Running")

    agent.stop()  # SIGTERM: the agent exits; the run goes on in its container, heartbeating itself

    assert [c["Id"] for c in containers(podman_service, flow_run=run.id)] == [container["Id"]]
    assert "1 container(s) still running" in agent.log.read_text()
    gate.touch()
    assert wait_finished(client, run.id).state == "Success"
    wait_until(
        lambda: [c["State"] for c in containers(podman_service, flow_run=run.id)] == ["exited"],
        timeout=60,
        what="the container to exit",
    )
    assert "inside a container: True" not in agent.log.read_text()
    agent.start()
    wait_until(lambda: not containers(podman_service, flow_run=run.id), timeout=60, what="the container to go")
    log = agent.log.read_text()
    assert "removed 1 leftover container(s)" in log
    assert "inside a container: True" in log  # the output of the run it did not see end


def test_the_flow_s_image_wins_and_a_missing_image_fails_the_run_saying_why(
    server, podman_service, docker_agents, plait_image, tmp_path, label
):
    client = server.client()
    own = f"localhost/plait-test/flow-image-{uuid.uuid4().hex[:6]}:1"
    podman_service.cli("tag", plait_image, own)  # the same content under the flow's own name
    missing = "localhost/plait-test/not-built:1"
    named, name = flow_file(tmp_path, f", run_config={{'docker': {{'image': {own!r}, 'env': {{'STAGE': 'test'}}}}}}")
    flow = register(client, named, name, label)
    answer = server.graphql("query($id: ID!) { flow(id: $id) { run_config } }", {"id": flow.id})
    assert answer["data"]["flow"]["run_config"] == {"docker": {"image": own, "env": {"STAGE": "test"}}}
    other_path, other = flow_file(tmp_path, f", run_config={{'docker': {{'image': {missing!r}}}}}")
    broken = register(client, other_path, other, label)
    gate = tmp_path / "gate"
    run = client.create_flow_run(flow_id=flow.id, parameters={"gate_file": str(gate)})
    doomed = client.create_flow_run(flow_id=broken.id)
    docker_agents("--pull", "never")  # the agent's own image is plait_image

    container = running_container(podman_service, run.id)
    details = json.loads(podman_service.cli("inspect", container["Id"]).stdout)[0]
    assert details["Config"]["Image"] == own
    assert "STAGE=test" in details["Config"]["Env"]
    gate.touch()
    assert wait_finished(client, run.id).state == "Success"

    failed = wait_finished(client, doomed.id)
    assert failed.state == "Failed"  # at once: no attempt could do better than this one
    assert f"image {missing!r} is not on the engine" in (failed.state_message or "")
    assert "pull policy is never" in (failed.state_message or "")
    assert [s for s, _ in history(server, doomed.id)].count("Scheduled") == 1  # never rescheduled
    assert any("is not on the engine" in m for m in log_messages(client, doomed.id))
    assert not containers(podman_service, flow_run=doomed.id)
    wait_until(lambda: not containers(podman_service, flow_run=run.id), timeout=60, what="the container to go")
    podman_service.cli("rmi", own)


def test_registration_refuses_a_run_config_the_docker_agent_would_refuse(tmp_path, server):
    import subprocess
    import sys

    path, _ = flow_file(tmp_path, ", run_config={'docker': {'imgae': 'app:1'}}")
    env = {**server.env(), "PLAIT__SERVER__URL": server.url, "PLAIT__SERVER__API_KEY": server.admin_key}
    plait = str(Path(sys.executable).with_name("plait"))
    out = subprocess.run([plait, "register", str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert "has no setting 'imgae'; did you mean 'image'?" in out.stderr


def test_a_module_baked_into_the_image_is_its_storage(
    server, podman_service, docker_agents, plait_image, tmp_path, label
):
    import subprocess
    import sys

    path, name = flow_file(tmp_path)
    module = f"baked_{uuid.uuid4().hex[:6]}"
    context = tmp_path / "image"
    (context / "flows").mkdir(parents=True)
    source = context / "flows" / f"{module}.py"
    source.write_text(path.read_text())
    (context / "Dockerfile").write_text(f"FROM {plait_image}\nCOPY flows /opt/flows\nENV PYTHONPATH=/opt/flows\n")
    image = f"localhost/plait-test/{module}:1"
    podman_service.cli("build", "--network", "none", "--tag", image, str(context))
    env = {**server.env(), "PLAIT__SERVER__URL": server.url, "PLAIT__SERVER__API_KEY": server.admin_key}
    plait = str(Path(sys.executable).with_name("plait"))
    out = subprocess.run(
        [plait, "register", f"{source}:{name}", "--storage", f"module:{module}", "--labels", label],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    flow_id = out.stdout.strip().rsplit(" ", 1)[-1]
    path.unlink()
    source.unlink()  # only the image has the code now
    client = server.client()
    run = client.create_flow_run(flow_id=flow_id)
    docker_agents("--image", image, image=False)
    done = wait_finished(client, run.id)
    assert done.state == "Success", history(server, run.id)
    assert "inside a container: True" in log_messages(client, run.id)
    wait_until(lambda: not containers(podman_service, flow_run=run.id), timeout=60, what="the container to go")
    podman_service.cli("rmi", image)


def test_a_bad_agent_setting_stops_the_agent_at_once_with_the_reason(server, docker_host, tmp_path):
    import subprocess
    import sys

    env = {
        **server.env(),
        "PLAIT__SERVER__URL": server.url,
        "PLAIT__SERVER__API_KEY": server.admin_key,
        "DOCKER_HOST": docker_host,
    }
    plait = str(Path(sys.executable).with_name("plait"))
    cases = [
        ([], "Docker agent: no image. Give the image of flow runs whose flow names none"),
        (["--image", "localhost/plait-test/nothing:1", "--pull", "never"], "is not on the engine"),
        (["--volume", "relative-only"], "must be 'host:container'"),
        (["--env", "NOT_SET_ANYWHERE_42"], "NOT_SET_ANYWHERE_42 is not set in the agent's environment"),
    ]
    for args, message in cases:
        out = subprocess.run(
            [plait, "agent", "start", "--type", "docker", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr, (args, out.stderr)
    unreachable = {**env, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    out = subprocess.run(
        [plait, "agent", "start", "--type", "docker", "--image", "x:1"],
        capture_output=True,
        text=True,
        env=unreachable,
        timeout=120,
    )
    assert out.returncode == 2 and "cannot reach the container engine" in out.stderr, out.stderr
    assert os.environ.get("NOT_SET_ANYWHERE_42") is None


@pytest.fixture(scope="module")
def plait_s3_image(podman_service, plait_image, tmp_path_factory):
    """``plait_image`` with plait-s3 (and boto3) installed: flows stored in S3 run in it."""
    pytest.importorskip("plait_s3", reason="plait-s3 is not installed")
    import plait_s3
    from plait_docker.testing import _pip_wheel

    context = tmp_path_factory.mktemp("plait-s3-image")
    source = Path(plait_s3.__file__).resolve().parents[2]
    _pip_wheel(context / "wheels", "--no-deps", str(source))
    _pip_wheel(context / "wheels", "boto3")
    (context / "Dockerfile").write_text(
        f"FROM {plait_image}\n"
        "COPY wheels /tmp/wheels\n"
        "RUN /opt/plait/bin/pip install --quiet --no-index --no-cache-dir --no-deps /tmp/wheels/*.whl"
        " && rm -rf /tmp/wheels\n"
    )
    image = "localhost/plait-test/plait-s3:latest"
    podman_service.cli("build", "--network", "none", "--tag", image, str(context))
    return image


def test_a_flow_stored_in_s3_runs_in_an_image_with_plait_s3(
    server, podman_service, docker_agents, plait_s3_image, tmp_path, label
):
    import subprocess
    import sys

    pytest.importorskip("moto", reason="moto[server] (plait-s3's test extra) is not installed")
    import boto3
    from plait_s3.testing import moto_s3_server

    path, _ = flow_file(tmp_path)
    with moto_s3_server() as endpoint:
        aws = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
        boto3.client("s3", endpoint_url=endpoint, **_boto(aws)).create_bucket(Bucket="flows")
        env = {
            **server.env(),
            **aws,
            "PLAIT__SERVER__URL": server.url,
            "PLAIT__SERVER__API_KEY": server.admin_key,
            "PLAIT__PLUGINS__S3__ENDPOINT_URL": endpoint,
        }
        plait = str(Path(sys.executable).with_name("plait"))
        out = subprocess.run(
            [plait, "register", str(path), "--storage", "s3://flows/team", "--labels", label],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        flow_id = out.stdout.strip().rsplit(" ", 1)[-1]
        path.unlink()  # the bucket has the code now, and nothing on this machine
        client = server.client()
        run = client.create_flow_run(flow_id=flow_id)
        agent = docker_agents(
            "--image",
            plait_s3_image,
            "--env",
            f"PLAIT__PLUGINS__S3__ENDPOINT_URL={endpoint}",
            "--env",
            "AWS_ACCESS_KEY_ID=test",
            "--env",
            "AWS_SECRET_ACCESS_KEY",  # passed through from the agent's environment
            "--env",
            "AWS_DEFAULT_REGION=us-east-1",
            image=False,
            env={"AWS_SECRET_ACCESS_KEY": "test"},
        )
        done = wait_finished(client, run.id)
        assert done.state == "Success", (history(server, run.id), agent.log.read_text()[-3000:])
        assert "inside a container: True" in log_messages(client, run.id)


def _boto(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("imgae = 'app:1'", r"\[plugins.docker.agent\] has no setting 'imgae'; did you mean 'image'\?"),
        (
            "pull = 'sometimes'",
            r"plugins.docker.agent.pull = 'sometimes' is not one of missing, always, never \(from .*config.toml\)",
        ),
        ("cpus = 0", r"plugins.docker.agent.cpus = 0 must be more than 0"),
        ("volumes = 'data:/data'", r"plugins.docker.agent.volumes = 'data:/data' must be a list"),
        ("volumes = ['data']", r"must be 'host:container"),
        ("mem_limit = 'lots'", r"mem_limit"),
        ("env = ['NOT A NAME']", r"'NOT A NAME' is not an environment variable name"),
    ],
)
def test_bad_agent_settings_in_the_config_name_the_key_and_the_fix(plait_config, docker_host, toml, message):
    from plait_docker.agent import DockerAgent

    from plait.agents import AgentError

    plait_config(f"[plugins.docker.agent]\nimage = 'localhost/plait-test/app:1'\n{toml}\n", DOCKER_HOST=docker_host)
    with pytest.raises(AgentError, match=message):
        DockerAgent(Client("http://127.0.0.1:9", "unused"))


def test_agent_settings_come_from_the_config_and_options_win(plait_config, docker_host, plait_image):
    from plait_docker.agent import DockerAgent

    plait_config(
        "[plugins.docker.agent]\n"
        f"image = '{plait_image}'\n"
        "network = 'none'\npull = 'never'\ncpus = 1.5\nmem_limit = '512m'\n"
        "volumes = ['/srv/flows:/srv/flows:ro']\nenv = ['STAGE=prod']\nlabels = { team = 'data' }\n",
        DOCKER_HOST=docker_host,
    )
    agent = DockerAgent(Client("http://127.0.0.1:9", "unused"), network="host")
    assert (agent.image, agent.network, agent.pull, agent.cpus) == (plait_image, "host", "never", 1.5)
    assert agent.volumes == ["/srv/flows:/srv/flows:ro"] and agent.env == {"STAGE": "prod"}
    assert agent.labels == {"team": "data"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"imgae": "app:1"}, r"has no setting 'imgae'; did you mean 'image'\?"),
        ({"image": "app 1"}, r"image must be an image name or id"),
        ({"env": ["STAGE=prod"]}, r"env must be a table of NAME -> text"),
        ({"env": {"DB_PASSWORD": "hunter2"}}, r"env DB_PASSWORD looks like a secret.*--env DB_PASSWORD"),
        ({"env": {"PLAIT__SERVER__API_KEY": "x"}}, r"env PLAIT__SERVER__API_KEY is the agent's to set"),
        ({"env": {"STAGE": ["a"]}}, r"env STAGE must be text or a number"),
        ("app:1", r"must be a table such as"),
    ],
)
def test_a_flow_s_docker_run_config_is_checked(table, message):
    from plait_docker.agent import DockerAgent

    from plait.agents import AgentError, check_run_config

    with pytest.raises(AgentError, match=message) as raised:
        DockerAgent.check_run_config(table)
    assert "hunter2" not in str(raised.value)
    if isinstance(table, dict):
        with pytest.raises(AgentError, match=message):
            check_run_config({"docker": table})  # what plait register calls
    DockerAgent.check_run_config({"image": "registry.example.com/etl:3", "env": {"STAGE": "prod", "WORKERS": 4}})


# --- ContainerHandle on its own, against the real engine -----------------------------------------


def _create(engine, image: str, command: list[str], release: threading.Event | None = None, made=None):
    """A ``create()`` for ``ContainerHandle.launch``: makes the container (after ``release``)."""

    def create() -> str:
        if release is not None:
            assert release.wait(60)
        container_id = engine.create_container(
            image,
            command,
            labels={"plait.managed": "test"},
            host_config=engine.create_host_config(network_mode="none"),  # the handle removes it
        )["Id"]
        if made is not None:
            made.append(container_id)
        return container_id

    return create


def test_a_container_handle_reports_the_exit_code_and_the_output(engine, busybox_image, no_containers_left):
    import io

    from plait_docker.agent import ContainerHandle

    exits = ContainerHandle(engine, "exit-3", "podman", "run-1", sink=io.StringIO())
    exits.launch(_create(engine, busybox_image, ["sh", "-c", "exit 3"]))  # ends at once: its code is still seen
    sink = io.StringIO()
    talks = ContainerHandle(engine, "talks", "podman", "run-1", sink=sink)
    talks.launch(_create(engine, busybox_image, ["sh", "-c", "echo one; echo two >&2; exec sleep 120"]))

    wait_until(lambda: exits.poll() is not None, timeout=60, what="the exit")
    assert exits.poll() == 3
    wait_until(lambda: "two" in sink.getvalue(), timeout=60, what="the output")  # while it runs
    assert sink.getvalue().splitlines()[:2] == ["one", "two"]
    assert talks.poll() is None
    talks.kill()
    wait_until(lambda: talks.poll() is not None, timeout=60, what="the kill")
    assert talks.poll() == -9
    for handle in (exits, talks):
        wait_until(lambda h=handle: not engine.containers(all=True, filters={"id": h.id}), timeout=60, what="removal")


def test_a_container_killed_while_it_is_being_created_is_never_started(engine, busybox_image, no_containers_left):
    from plait_docker.agent import ContainerHandle

    release = threading.Event()
    made: list[str] = []
    handle = ContainerHandle(engine, "slow-create", "podman", "run-2")
    handle.launch(_create(engine, busybox_image, ["sleep", "60"], release, made))
    assert handle.poll() is None  # still being created: the agent goes on meanwhile
    handle.kill()  # a cancellation, or the server gave the run to a new attempt
    release.set()
    wait_until(lambda: handle.poll() is not None, timeout=60, what="the handle to end")
    assert handle.poll() == -9
    assert made and engine.containers(all=True, filters={"id": made[0]}) == []


def test_a_container_that_cannot_start_ends_its_handle_with_127_and_says_why(engine, no_containers_left):
    from plait_docker.agent import ContainerHandle
    from plait_docker.errors import DockerError

    errors: list[BaseException] = []
    handle = ContainerHandle(engine, "no-image", "podman", "run-3")
    handle.launch(_create(engine, "localhost/plait-test/not-built:1", ["true"]), on_failure=errors.append)
    wait_until(lambda: handle.poll() is not None, timeout=60, what="the handle to end")
    assert handle.poll() == 127
    assert len(errors) == 1 and isinstance(errors[0], DockerError)
    assert "not-built" in str(errors[0])


def test_a_log_stream_left_open_after_the_container_exits_is_cut_and_its_follower_ends(
    engine, busybox_image, no_containers_left, monkeypatch
):
    """Podman can keep a followed log stream open after the container exited: the handle's
    follower thread must end all the same (a long-lived agent would leak one thread and one
    socket per run) and write out what it had, the last line too (no newline after it)."""
    import io
    import socket

    from plait_docker import tasks
    from plait_docker.agent import ContainerHandle

    real = tasks.follow_output
    followers: list[threading.Thread] = []

    def stream_that_stays_open(api, container_id, follow=True, on_socket=None):
        if not follow:  # the stored log, read after the exit
            yield from real(api, container_id, follow=False)
            return
        followers.append(threading.current_thread())
        # everything, until the container exits; the real stream's socket is handed on too,
        # since Podman can keep that one open after the exit as well (what this test fakes)
        frames = list(real(api, container_id, follow=follow, on_socket=on_socket))
        yield from frames
        mine, theirs = socket.socketpair()
        try:
            if on_socket is not None:
                on_socket(socket.SocketIO(mine, "rb"))  # what the SDK's raw response socket is
            mine.recv(1)  # blocks until someone shuts the socket: the stream "stays open"
        finally:
            mine.close()
            theirs.close()

    monkeypatch.setattr(tasks, "follow_output", stream_that_stays_open)
    monkeypatch.setattr(ContainerHandle, "stream_grace", 0.2)
    sink = io.StringIO()
    handle = ContainerHandle(engine, "left-open", "podman", "run-4", sink=sink)
    handle.launch(_create(engine, busybox_image, ["sh", "-c", "echo one; echo two; printf three"]))
    wait_until(lambda: handle.poll() is not None, timeout=60, what="the exit")
    assert handle.poll() == 0
    wait_until(lambda: bool(followers), timeout=60, what="the follower to start")
    followers[0].join(60)  # a guard against hanging the suite, not a timing assertion
    assert not followers[0].is_alive(), "the follower waited forever on a log stream its container had left open"
    assert sink.getvalue().splitlines() == ["one", "two", "three"]
    wait_until(lambda: not engine.containers(all=True, filters={"id": handle.id}), timeout=60, what="removal")


def test_a_container_handle_writes_out_all_the_output_of_a_container_that_ends_at_once(
    engine, busybox_image, no_containers_left
):
    """20000 lines written just before the exit: Podman's followed stream ends before it has
    sent them all (and, with auto-remove, the stored log went with the container); the handle
    reads the rest from the stored log, then removes the container."""
    import io

    from plait_docker.agent import ContainerHandle

    sink = io.StringIO()
    handle = ContainerHandle(engine, "loud-exit", "podman", "run-5", sink=sink)
    handle.launch(_create(engine, busybox_image, ["sh", "-c", "echo first; sleep 1; seq 1 20000; printf last"]))
    wait_until(lambda: handle.poll() is not None, timeout=60, what="the exit")
    assert handle.poll() == 0
    got = sink.getvalue().splitlines()
    assert_all_in_order(["first", *(str(i) for i in range(1, 20001)), "last"], got)
    assert got[-1] == "last"
    assert engine.containers(all=True, filters={"id": handle.id}) == []  # removed before poll() answered


def test_what_a_stream_missed_is_read_from_the_stored_log_from_where_they_agree():
    """``ReceivedOutput.missed``: what the stream delivered is the stored log's beginning (then
    the rest follows), or Podman dropped lines from it (then the stored log follows from the
    first block that differs, and the partial line held from the stream is dropped)."""
    from plait_docker.tasks import ReceivedOutput

    stored = [(1 if i % 3 else 2, f"line {i}\n".encode()) for i in range(3000)] + [(1, b"no newline")]
    whole = b"".join(data for _, data in stored)

    def replay(delivered: list[bytes]) -> tuple[bytes, int]:
        received = ReceivedOutput()
        for data in delivered:
            received.add(data)
        restarts: list[int] = []
        rest = received.missed(iter(stored), on_restart=lambda: restarts.append(1))
        return b"".join(data for _, data in rest), len(restarts)

    assert replay([]) == (whole, 0)
    assert replay([whole]) == (b"", 0)
    for cut in (1, 4095, 4096, 4097, 20000, len(whole) - 3):  # in a frame, at block ends
        assert replay([whole[:cut]]) == (whole[cut:], 0)
    # lines 1000-1999 dropped by the stream, then two later ones, and a partial line
    dropped = [data for _, data in stored[:1000]] + [b"line 2500\n", b"line 2501\n", b"li"]
    rest, restarts = replay(dropped)
    assert restarts == 1
    delivered_lines = b"".join(dropped[:1000]).split(b"\n")[:-1]
    start = whole.index(rest)  # a tail of the stored log, from a line's start ...
    assert start == 0 or whole[start - 1 : start] == b"\n"
    assert start <= len(b"".join(dropped[:1000]))  # ... no later than where they stopped agreeing
    assert len(delivered_lines) - whole[:start].count(b"\n") < 4096 // 8  # at most a block again
    # the frames keep their stream, also when one is cut in two
    received = ReceivedOutput()
    received.add(b"line 0\nli")
    assert list(received.missed(iter(stored[:3]))) == [(1, b"ne 1\n"), (1, b"line 2\n")]
