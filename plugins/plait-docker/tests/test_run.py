"""DockerRun against a real Podman service: output, settings reaching the container, failures,
timeouts, secrets, and no container left behind."""

from __future__ import annotations

import logging

import pytest
from plait_docker import ContainerResult, DockerConfigError, DockerContainerError, DockerEngineError, DockerRun

from plait import Flow
from plait.secrets import Secret
from plait.states import Failed, Success, TimedOut

pytestmark = pytest.mark.usefixtures("no_containers_left")


def run_in_flow(task, executor=None, **kwargs):
    with Flow("docker") as flow:
        bound = task(**kwargs)
    state = flow.run(executor=executor)
    return state.result[bound]


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


# --- output ----------------------------------------------------------------------------------------


def test_returns_standard_output_and_streams_both_outputs_into_the_log(busybox_image, caplog):
    task = DockerRun(image=busybox_image, command=sh("echo one; echo two >&2; echo three"), network_mode="none")
    with caplog.at_level(logging.INFO, logger="plait"):
        state = run_in_flow(task)
    assert isinstance(state, Success), state.message
    assert state.result == "one\nthree"
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "plait.task"]
    assert ("INFO", "one") in records and ("WARNING", "two") in records and ("INFO", "three") in records
    assert [m for _, m in records if m in ("one", "three")] == ["one", "three"]
    # the records carry the task's run context, as every task's log line does
    (line,) = [r for r in caplog.records if r.getMessage() == "one"]
    assert line.task_name == "DockerRun" and line.flow_name == "docker"


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ("lines", ["a", "b"]),
        ("exit_code", 0),
        ("result", ContainerResult),
    ],
)
def test_returns_lines_exit_code_or_everything(busybox_image, returns, expected):
    task = DockerRun(
        image=busybox_image, command=sh("echo a; echo b; echo c >&2"), network_mode="none", returns=returns
    )
    out = task.run()
    if returns == "result":
        assert isinstance(out, expected)
        assert (out.exit_code, out.stdout, out.stderr, out.image) == (0, "a\nb\n", "c\n", busybox_image)
        assert out.container.startswith("plait-DockerRun-")
    else:
        assert out == expected


def test_env_volumes_working_dir_and_user_reach_the_container(busybox_image, tmp_path):
    (tmp_path / "in.txt").write_text("from the host\n")
    tmp_path.chmod(0o777)  # the container's user 1234 reads and writes there
    (tmp_path / "in.txt").chmod(0o644)
    task = DockerRun(
        image=busybox_image,
        command=sh("echo $GREETING $COUNT; pwd; id -u; cat /data/in.txt; echo written > /data/out.txt"),
        env={"GREETING": "hello", "COUNT": 3},
        volumes={str(tmp_path): "/data"},
        working_dir="/tmp",
        user="1234",
        network_mode="none",
        returns="lines",
    )
    state = run_in_flow(task, env={"GREETING": "hi"})
    assert isinstance(state, Success), state.message
    assert state.result == ["hi 3", "/tmp", "1234", "from the host"]
    assert (tmp_path / "out.txt").read_text() == "written\n"


def _labels(engine):
    return [c["Labels"] for c in engine.containers(all=True, filters={"label": "plait.managed"})]


def test_plait_labels_name_the_flow_run_task_and_map_index(busybox_image, engine, tmp_path, caplog):
    """While a mapped container runs, its labels say which flow run, task and child it is."""
    release = tmp_path / "go"
    seen: list[dict] = []

    task = DockerRun(
        image=busybox_image,
        command=sh("echo started; i=0; while [ ! -e /data/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"),
        volumes={str(tmp_path): "/data"},
        network_mode="none",
        labels={"team": "data"},
    )

    class Watch(logging.Handler):
        def emit(self, record):
            if record.getMessage() == "started":
                try:
                    seen.extend(_labels(engine))
                finally:
                    release.touch()

    handler = Watch()
    logging.getLogger("plait").addHandler(handler)
    try:
        with Flow("labelled") as flow:
            task.map(command=[task.command])
        with caplog.at_level(logging.INFO, logger="plait"):
            state = flow.run()
    finally:
        logging.getLogger("plait").removeHandler(handler)
    assert state.is_successful(), state
    (labels,) = seen
    assert labels["team"] == "data" and labels["plait.flow"] == "labelled" and labels["plait.task"] == "DockerRun"
    assert labels["plait.map-index"] == "0" and labels["plait.flow-run-id"]


def test_memory_cpus_and_ulimits_are_applied(busybox_image):
    task = DockerRun(
        image=busybox_image,
        command=sh(
            "ulimit -n; ulimit -u; "
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
        ),
        mem_limit="64m",
        cpus=0.5,
        ulimits={"nofile": 512, "nproc": [300, 400]},
        network_mode="none",
        returns="lines",
    )
    assert task.run() == ["512", "300", str(64 * 1024 * 1024)]


def test_config_defaults_apply_and_task_values_win(busybox_image, plait_config, docker_host):
    plait_config(
        f"""
        [plugins.docker]
        base_url = "{docker_host}"
        network_mode = "none"
        labels = {{ owner = "config" }}
        ulimits = {{ nofile = 700, nproc = 800 }}
        """
    )
    from plait_docker import clear_clients

    clear_clients()
    out = DockerRun(
        image=busybox_image, command=sh("ulimit -n; ip link | grep -c ': eth' || true"), returns="lines"
    ).run()
    assert out == ["700", "0"]  # the config's ulimits, and no network interface but lo
    own = DockerRun(image=busybox_image, command=sh("ulimit -n"), ulimits={"nofile": 600, "nproc": 800}).run()
    assert own == "600"


# --- failures --------------------------------------------------------------------------------------


def test_a_non_zero_exit_fails_the_task_with_the_last_lines_of_output(busybox_image):
    task = DockerRun(
        image=busybox_image,
        command=sh("for i in $(seq 1 30); do echo line $i; done; echo 'disk full' >&2; exit 3"),
        network_mode="none",
    )
    state = run_in_flow(task)
    assert isinstance(state, Failed)
    assert "exited with code 3" in state.message
    assert "line 30" in state.message and "disk full" in state.message
    assert "line 10\n" not in state.message  # only the last 20 lines
    error = state.result
    assert isinstance(error, DockerContainerError) and error.exit_code == 3
    assert error.output.splitlines()[-1] == "disk full"


def test_ok_exit_codes_accept_other_codes(busybox_image):
    task = DockerRun(
        image=busybox_image, command=sh("exit 4"), network_mode="none", returns="exit_code", ok_exit_codes=[0, 4]
    )
    assert task.run() == 4


def test_a_command_missing_from_the_image_fails_clearly(busybox_image):
    state = run_in_flow(DockerRun(image=busybox_image, command=["no-such-program"], network_mode="none"))
    assert isinstance(state, Failed)
    assert "no-such-program" in state.message


def test_a_missing_image_is_pulled_or_refused_clearly(busybox_image):
    never = DockerRun(image="localhost/plait-test/absent:1", command=["true"], pull="never", network_mode="none")
    with pytest.raises(DockerEngineError, match=r"is not on the engine .* build it \(DockerBuild\) or pull it"):
        never.run()
    missing = DockerRun(image="127.0.0.1:9/plait-test/absent:1", command=["true"], network_mode="none")
    with pytest.raises(DockerEngineError, match=r"pulling 127\.0\.0\.1:9/plait-test/absent:1 failed"):
        missing.run()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": 42}, "command must be a string or a list"),
        ({"env": ["A=1"]}, "env must be a dict"),
        ({"env": {"A": object()}}, "must be text, a number or a plait Secret"),
        ({"volumes": {"/tmp": "relative"}}, "must be absolute"),
        ({"volumes": "/tmp:/data"}, "volumes must be a dict or a list"),
        ({"mem_limit": "lots"}, "mem_limit must be bytes or a size"),
        ({"cpus": -1}, "cpus must be a positive number"),
        ({"ulimits": {"nofile": [10, 5]}}, "soft <= hard"),
        ({"returns": "stdout"}, "returns must be one of output, lines, exit_code, result"),
        ({"pull": "sometimes"}, "pull must be one of missing, always, never"),
        ({"image": "bad image"}, "image must be an image name"),
    ],
)
def test_bad_settings_are_refused_when_the_task_is_made(options, message):
    with pytest.raises(DockerConfigError, match=message):
        DockerRun(**{"image": "busybox", **options})


def test_no_image_is_refused_when_it_runs():
    with pytest.raises(DockerConfigError, match="has no image: pass image="):
        DockerRun().run()


# --- live output, timeouts, secrets ----------------------------------------------------------------


def test_output_arrives_live_and_in_order(busybox_image, tmp_path, caplog):
    """The container waits for a file that the test creates only when the log has shown its
    first lines: the task cannot finish unless its output is streamed while it runs."""
    script = (
        "for i in 1 2 3; do echo early $i; done; "
        "i=0; while [ ! -e /data/go ]; do sleep 0.05; i=$((i+1)); "
        "[ $i -gt 1200 ] && echo never released && exit 9; done; "
        "for i in 4 5 6; do echo late $i; echo warn $i >&2; done"
    )
    task = DockerRun(image=busybox_image, command=sh(script), volumes={str(tmp_path): "/data"}, network_mode="none")

    class Release(logging.Handler):
        def emit(self, record):
            if record.getMessage() == "early 3":
                (tmp_path / "go").touch()

    handler = Release()
    logging.getLogger("plait").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="plait"):
            state = run_in_flow(task)
    finally:
        logging.getLogger("plait").removeHandler(handler)
    assert isinstance(state, Success), state.message
    lines = [r.getMessage() for r in caplog.records if r.name == "plait.task"]
    stdout = [line for line in lines if line.split()[0] in ("early", "late")]
    assert stdout == ["early 1", "early 2", "early 3", "late 4", "late 5", "late 6"]
    # Standard error is another pipe: its lines keep their own order; how they interleave with
    # standard output's within a millisecond is up to the engine.
    assert [line for line in lines if line.startswith("warn")] == ["warn 4", "warn 5", "warn 6"]
    assert lines.index("warn 4") > lines.index("early 3")


def test_a_timeout_kills_and_removes_the_container(busybox_image, engine):
    task = DockerRun(
        image=busybox_image, command=sh("echo working; sleep 600"), network_mode="none", timeout=2, kill_grace=0
    )
    state = run_in_flow(task)
    assert isinstance(state, TimedOut), state
    assert "timed out after 2s" in state.message and "was stopped and removed" in state.message
    assert "working" in state.message  # the output so far
    assert engine.containers(all=True, filters={"label": "plait.managed"}) == []


def test_a_secret_env_value_never_reaches_the_log_or_the_error(busybox_image, plait_config, caplog):
    value = "s3cr3t-Value-9f2c"
    plait_config("", DB_PASSWORD=value)
    task = DockerRun(
        image=busybox_image,
        command=sh('echo "password is $DB_PASSWORD"; echo "again $DB_PASSWORD" >&2; exit 1'),
        env={"DB_PASSWORD": Secret("DB_PASSWORD")},
        network_mode="none",
    )
    with caplog.at_level(logging.DEBUG):
        state = run_in_flow(task)
    assert isinstance(state, Failed)
    assert "password is ********" in state.message and "again ********" in state.message
    assert value not in state.message and value not in str(state.result) and value not in state.result.output
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert value not in logged and value not in caplog.text
    assert "password is ********" in caplog.text  # the line was logged, masked
    assert "DB_PASSWORD" in str(task.options()["container"]["env"]) and value not in str(task.options())


def test_threads_run_containers_in_parallel(busybox_image, tmp_path):
    """Two containers each wait for the other's file: they finish only if both run at once."""
    script = (
        "touch /data/$ME; i=0; while [ ! -e /data/$OTHER ]; do sleep 0.05; i=$((i+1)); "
        "[ $i -gt 1200 ] && exit 9; done; echo $ME done"
    )
    task = DockerRun(image=busybox_image, command=sh(script), volumes={str(tmp_path): "/data"}, network_mode="none")
    with Flow("pair") as flow:
        out = task.map(env=[{"ME": "a", "OTHER": "b"}, {"ME": "b", "OTHER": "a"}])
    state = flow.run(executor="threads")
    assert state.is_successful(), state.result[out]
    assert state.result[out].result == ["a done", "b done"]


def test_the_engine_unreachable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")  # clients are per DOCKER_HOST
    with pytest.raises(
        DockerEngineError, match=r"cannot reach the container engine at unix://.*nothing\.sock .*DOCKER_HOST"
    ):
        DockerRun(image="busybox", command=["true"]).run()


@pytest.fixture(autouse=True)
def _engine(docker_env):
    """Every test here talks to the session's Podman service."""
    return docker_env


def test_containers_run_from_worker_processes(busybox_image):
    """The processes executor pickles the task; each forked worker makes its own client."""
    from plait_docker import get_client

    get_client().ping()  # the parent has a client (and its sockets) before the fork
    task = DockerRun(image=busybox_image, network_mode="none")
    with Flow("processes") as flow:
        out = task.map(command=[["echo", "a"], ["echo", "b"], ["echo", "c"]])
    state = flow.run(executor="processes")
    assert state.is_successful(), state.result[out]
    assert state.result[out].result == ["a", "b", "c"]


def test_output_is_complete_when_containers_exit_right_after_printing(busybox_image):
    """Podman can end a followed output stream at the container's exit before the last lines
    (about one container in 80 here, under load); the task reads what the stream missed."""
    task = DockerRun(image=busybox_image, network_mode="none", returns="lines")
    commands = [["sh", "-c", f"echo start {i}; echo middle {i}; echo end {i}"] for i in range(20)]
    for _round in range(2):
        with Flow("bursts") as flow:
            out = task.map(command=commands)
        state = flow.run(executor="threads")
        results = state.result[out].result
        assert results == [[f"start {i}", f"middle {i}", f"end {i}"] for i in range(20)]


def test_the_output_returned_is_whole_when_the_stream_drops_lines_at_the_exit(busybox_image, caplog):
    """20000 lines written just before the exit: Podman's followed stream often ends before
    them, or drops lines from its middle (then counting the bytes it delivered skipped the
    wrong part of the stored log). The lines returned come from the stored log: all, in
    order, once each; the log has every one of them too."""
    caplog.set_level(logging.INFO, logger="plait")
    task = DockerRun(
        image=busybox_image,
        command=sh("echo first; sleep 1; seq 1 20000; printf last"),
        network_mode="none",
        returns="lines",
    )
    expected = ["first", *(str(i) for i in range(1, 20001)), "last"]
    for _round in range(3):
        caplog.clear()
        assert run_in_flow(task).result == expected
        logged = {r.getMessage() for r in caplog.records if r.name.startswith("plait")}
        assert set(expected) <= logged


def test_a_log_stream_left_open_after_the_container_exits_is_cut_and_nothing_is_lost(busybox_image, monkeypatch):
    """Podman can keep a followed log stream open after the container exited: the task must not
    wait on it forever, and the lines the stream did not deliver come from the stored log."""
    import socket
    import threading

    from plait_docker import tasks

    real = tasks.follow_output

    def stream_that_stays_open(api, container_id, follow=True, on_socket=None):
        if not follow:
            yield from real(api, container_id, follow=False)
            return
        frames = list(real(api, container_id))
        yield from frames[:1]  # the first frame arrives; the rest is never sent
        mine, theirs = socket.socketpair()
        try:
            if on_socket is not None:
                on_socket(socket.SocketIO(mine, "rb"))  # what the SDK's raw response socket is
            mine.recv(1)  # blocks until someone shuts the socket: the stream "stays open"
        finally:
            mine.close()
            theirs.close()

    monkeypatch.setattr(tasks, "follow_output", stream_that_stays_open)
    monkeypatch.setattr(tasks, "_STREAM_GRACE", 0.2, raising=False)
    task = DockerRun(
        image=busybox_image, command=sh("echo one; echo two; echo three"), network_mode="none", returns="lines"
    )
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("lines", task.run()), daemon=True)
    runner.start()
    runner.join(120)  # a guard against hanging the suite, not a timing assertion
    assert not runner.is_alive(), "DockerRun waited forever on a log stream its container had left open"
    assert outcome["lines"] == ["one", "two", "three"]
