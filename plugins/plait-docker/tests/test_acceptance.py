"""Issue 17's acceptance, against the real Podman service: a flow that builds an image and maps
a container over 20 inputs on threads, and Ctrl-C on a real ``plait run`` leaving nothing behind."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from plait_docker import DockerBuild, DockerContainerError, DockerRemove, DockerRun

from plait import Flow, Parameter, task, unmapped
from plait.states import Failed, Success

PLAIT = str(Path(sys.executable).parent / "plait")


def test_build_then_map_a_container_over_20_inputs_on_threads(docker_env, busybox_image, engine, caplog):
    build = DockerBuild(
        dockerfile=(
            f"FROM {busybox_image}\n"
            "RUN printf '#!/bin/sh\\nn=$1\\necho start $n\\necho square $((n * n))\\n"
            '[ "$n" = 13 ] && echo unlucky $n >&2 && exit 13\\necho end $n\\n\' > /square.sh && chmod +x /square.sh\n'
        ),
        tag="localhost/plait-test/squares:1",
        network_mode="none",
    )
    square = DockerRun(network_mode="none", returns="lines")

    @task
    def commands(n):
        return [["/square.sh", str(i)] for i in range(n)]

    with Flow("squares") as flow:
        image = build()
        outputs = square.map(image=unmapped(image), command=commands(Parameter("n", default=20)))

    with caplog.at_level(logging.INFO, logger="plait"):
        state = flow.run(executor="threads")

    assert isinstance(state.result[image], Success), state.result[image].message
    assert any(r.getMessage().startswith("STEP 2/2: RUN printf") for r in caplog.records)  # the build's log
    mapped = state.result[outputs]
    children = mapped.map_states
    assert len(children) == 20
    for i, child in enumerate(children):
        if i == 13:
            assert isinstance(child, Failed)
            assert isinstance(child.result, DockerContainerError) and child.result.exit_code == 13
            assert "exited with code 13" in child.message and "unlucky 13" in child.message
        else:
            assert isinstance(child, Success), child.message
            assert child.result == [f"start {i}", f"square {i * i}", f"end {i}"]
    # each child's lines reach the log in the order the container printed them
    for i in range(20):
        lines = [
            r.getMessage() for r in caplog.records if getattr(r, "map_index", None) == i and r.name == "plait.task"
        ]
        printed = [line for line in lines if line.split()[0] in ("start", "square", "end", "unlucky")]
        expected = [f"start {i}", f"square {i * i}"] + ([f"unlucky {i}"] if i == 13 else [f"end {i}"])
        assert printed == expected, (i, lines)
    assert engine.containers(all=True, filters={"label": "plait.managed"}) == []
    assert DockerRemove(image="localhost/plait-test/squares:1").run() is True


INTERRUPTED_FLOW = textwrap.dedent(
    """
    from plait import Flow
    from plait_docker import DockerRun

    sleeper = DockerRun(
        image={image!r},
        command=["sh", "-c", "echo container $N started; sleep 600"],
        network_mode="none",
    )

    with Flow("interrupted") as flow:
        sleeper.map(env=[{{"N": str(i)}} for i in range(3)])
    """
)


@pytest.mark.usefixtures("ctrl_c_reaches_subprocesses")  # also when pytest runs in the background
@pytest.mark.parametrize("executor", ["threads", "local"])
def test_ctrl_c_on_plait_run_leaves_no_container_behind(docker_host, podman_service, busybox_image, tmp_path, executor):
    script = tmp_path / "flow.py"
    script.write_text(INTERRUPTED_FLOW.format(image=busybox_image))
    env = {**os.environ, "DOCKER_HOST": docker_host, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [PLAIT, "run", str(script), "--executor", executor],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    seen: list[str] = []
    try:
        wanted = 3 if executor == "threads" else 1  # the local executor runs one container at a time
        for line in proc.stdout:
            seen.append(line)
            if sum("started" in x and "container" in x for x in seen) >= wanted:
                break
        else:
            pytest.fail("plait run ended before its containers started:\n" + "".join(seen))
        running = json.loads(podman_service.cli("ps", "--format", "json").stdout or "[]")
        assert len(running) == wanted
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(seen) + rest
    assert proc.returncode != 0, output
    assert "Cancelled" in output or "interrupted" in output.lower(), output
    listed = podman_service.cli("ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.strip()
    assert listed == "", f"containers left behind:\n{listed}\n{output}"


SECRET_FLOW = textwrap.dedent(
    """
    from plait import Flow
    from plait.secrets import Secret
    from plait_docker import DockerRun

    leak = DockerRun(
        image={image!r},
        command=["sh", "-c", 'echo "token=$API_TOKEN"; echo "stderr token=$API_TOKEN" >&2; exit 1'],
        env={{"API_TOKEN": Secret("API_TOKEN")}},
        network_mode="none",
    )

    with Flow("leaky") as flow:
        leak()
    """
)


def test_a_secret_env_value_never_appears_in_plait_run_output(docker_host, busybox_image, tmp_path):
    """What a user sees on the terminal: the live log, the failure, the summary table."""
    value = "tok-7Yq2-secret-Zz91"
    script = tmp_path / "flow.py"
    script.write_text(SECRET_FLOW.format(image=busybox_image))
    proc = subprocess.run(
        [PLAIT, "run", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DOCKER_HOST": docker_host, "API_TOKEN": value},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "exited with code 1" in output, output
    assert "token=********" in output
    assert value not in output
