"""``plait docker check | containers | cleanup``, as real commands against the real Podman service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

PLAIT = str(Path(sys.executable).parent / "plait")

KILLED_FLOW = textwrap.dedent(
    """
    from plait import Flow
    from plait_docker import DockerRun

    sleeper = DockerRun(image={image!r}, command=["sh", "-c", "echo container up; sleep 600"], network_mode="none")

    with Flow("killed") as flow:
        sleeper()
    """
)


def plait_cli(*args: str, docker_host: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": docker_host}
    return subprocess.run([PLAIT, *args], capture_output=True, text=True, timeout=120, env=env)


def test_check_names_the_engine_and_an_unreachable_one_is_a_clear_error(docker_host, tmp_path):
    ok = plait_cli("docker", "check", docker_host=docker_host)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{docker_host} (DOCKER_HOST): OK (Podman Engine 4.")
    down = plait_cli("docker", "check", docker_host=f"unix://{tmp_path}/none.sock")
    assert down.returncode == 1
    assert "cannot reach the container engine" in down.stderr and "podman system service" in down.stderr


def test_cleanup_removes_what_a_killed_run_left_behind(docker_host, busybox_image, podman_service, tmp_path):
    script = tmp_path / "flow.py"
    script.write_text(KILLED_FLOW.format(image=busybox_image))
    env = {**os.environ, "DOCKER_HOST": docker_host, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [PLAIT, "run", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        for line in proc.stdout:
            if "container up" in line:
                break
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: the container stays
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    listed = plait_cli("docker", "containers", docker_host=docker_host)
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith("plait-DockerRun-") and "flow killed" in line
    assert "task DockerRun" in line

    dry = plait_cli("docker", "cleanup", "--dry-run", docker_host=docker_host)
    assert dry.stdout.startswith("Would remove 1 container(s): plait-DockerRun-")
    cleaned = plait_cli("docker", "cleanup", docker_host=docker_host)
    assert cleaned.returncode == 0, cleaned.stderr
    assert cleaned.stdout.startswith("Removed 1 container(s): plait-DockerRun-")
    assert podman_service.cli("ps", "-a", "--format", "{{.Names}}").stdout.strip() == ""
    assert (
        plait_cli("docker", "containers", docker_host=docker_host).stdout.strip() == "No containers of Plait's tasks."
    )
