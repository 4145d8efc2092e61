"""The test infrastructure itself: a Podman service leaves nothing behind, and the Python image
for the Docker agent runs ``plait run``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from plait_docker import DockerRun
from plait_docker.podman import PodmanService, busybox_path


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def test_a_stopped_service_leaves_no_process_mount_or_file_behind(podman_service):
    service = PodmanService()
    try:
        service.start()
        directory = str(service.directory)
        service.cli("build", "--network", "none", "--tag", "localhost/left:1", _busybox_context(service))
        service.cli("run", "-d", "--network", "none", "--name", "still-running", "localhost/left:1", "sleep", "600")
        assert "still-running" in service.cli("ps").stdout
        assert _processes_mentioning(directory)  # the service and the container's conmon
    finally:
        service.stop()
    assert _processes_mentioning(directory) == []
    assert directory not in Path("/proc/self/mounts").read_text()
    assert not Path(directory).exists()


def _busybox_context(service: PodmanService) -> str:
    import shutil

    assert service.directory is not None
    context = service.directory / "busybox-context"
    context.mkdir()
    shutil.copy2(busybox_path(), context / "busybox")
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    )
    return str(context)


def test_a_service_that_cannot_start_says_why(tmp_path):
    from plait_docker.podman import PodmanUnavailable

    service = PodmanService(runtime="no-such-runtime")
    with pytest.raises(PodmanUnavailable, match="no-such-runtime"):
        service.start()


def test_plait_runs_a_flow_inside_the_python_image(docker_env, plait_image, tmp_path):
    """The image the Docker agent will start runs flows: Python, Plait and its CLI are there."""
    (tmp_path / "flow.py").write_text(
        textwrap.dedent(
            """
            from plait import Flow, task

            @task
            def double(x):
                return 2 * x

            @task
            def total(xs):
                return sum(xs)

            with Flow("in-a-container") as flow:
                total(double.map([1, 2, 3, 4]))
            """
        )
    )
    tmp_path.chmod(0o755)
    run = DockerRun(
        image=plait_image,
        command=["plait", "run", "/flows/flow.py", "--executor", "threads"],
        volumes={str(tmp_path): {"bind": "/flows", "mode": "ro"}},
        network_mode="none",
        returns="result",
    )
    result = run.run()
    text = result.stdout + result.stderr
    assert result.exit_code == 0, text
    assert "Success" in text or "SUCCESS" in text, text
    check = "import plait, sys; print(plait.__version__, sys.version_info >= (3, 11))"
    version = DockerRun(image=plait_image, command=["python3", "-c", check], network_mode="none").run()
    import plait

    assert version == f"{plait.__version__} True"


def test_the_plait_image_is_cached(podman_service, plait_image):
    from plait_docker.testing import cache_dir

    archives = list(cache_dir().glob("plait-deps-*.tar"))
    assert len(archives) == 1, archives
    assert list(cache_dir().glob("debian-bookworm-python-*.tar"))
