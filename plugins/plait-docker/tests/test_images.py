"""DockerBuild, DockerPull, DockerPush and DockerRemove against the real Podman service and a real
registry (Debian's docker-registry, with a password)."""

from __future__ import annotations

import logging

import pytest
from plait_docker import (
    DockerBuild,
    DockerConfigError,
    DockerEngineError,
    DockerPull,
    DockerPush,
    DockerRemove,
    DockerRun,
)

from plait import Flow
from plait.states import Failed, Success


@pytest.fixture(autouse=True)
def _engine(docker_env):
    return docker_env


def test_build_from_a_dockerfile_string(busybox_image, caplog):
    build = DockerBuild(
        dockerfile=f'FROM {busybox_image}\nRUN echo built at step two > /built\nCMD ["cat", "/built"]\n',
        tag=["localhost/plait-test/from-text:1", "localhost/plait-test/from-text:latest"],
        network_mode="none",
    )
    with caplog.at_level(logging.INFO, logger="plait"):
        image_id = build.run()
    assert image_id.startswith("sha256:") or len(image_id) >= 12
    assert "STEP 2/3: RUN echo built at step two > /built" in caplog.text
    assert DockerRun(image="localhost/plait-test/from-text:latest", network_mode="none").run() == "built at step two"
    assert DockerRemove(image="localhost/plait-test/from-text:1").run() is True
    assert DockerRemove(image="localhost/plait-test/from-text:latest").run() is True
    assert DockerRemove(image="localhost/plait-test/from-text:latest").run() is False  # gone: nothing to do


def test_build_from_a_folder_with_its_dockerfile_and_dockerignore(busybox_image, tmp_path):
    (tmp_path / "app.sh").write_text("echo from the folder $VERSION\n")
    (tmp_path / "secret.txt").write_text("not for the image\n")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {busybox_image}\nARG VERSION=0\nENV VERSION=$VERSION\nCOPY . /app\n"
        'CMD ["sh", "-c", "sh /app/app.sh; ls /app"]\n'
    )
    image = DockerBuild(path=tmp_path, tag="localhost/plait-test/folder:1", buildargs={"VERSION": "7"}).run()
    lines = DockerRun(image=image, network_mode="none", returns="lines").run()
    assert lines[0] == "from the folder 7"
    assert "app.sh" in lines and "secret.txt" not in lines
    DockerRemove(image="localhost/plait-test/folder:1", force=True).run()


def test_build_a_dockerfile_string_with_a_folder_as_context(busybox_image, tmp_path):
    (tmp_path / "data.txt").write_text("context file\n")
    image = DockerBuild(path=str(tmp_path), dockerfile=f"FROM {busybox_image}\nCOPY data.txt /data.txt\n").run()
    assert DockerRun(image=image, command=["cat", "/data.txt"], network_mode="none").run() == "context file"
    DockerRemove(image=image, force=True).run()


def test_a_failing_build_fails_its_task_with_the_build_output(busybox_image):
    build = DockerBuild(
        dockerfile=f"FROM {busybox_image}\nRUN echo compiling; echo 'error: missing header' >&2; exit 2\n",
        network_mode="none",
    )
    with Flow("broken-build") as flow:
        built = build()
    state = flow.run().result[built]
    assert isinstance(state, Failed)
    assert "the build failed" in state.message and "exit status 2" in state.message
    assert "error: missing header" in state.message and "compiling" in state.message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "nothing to build"),
        ({"dockerfile": "Dockerfile.prod"}, "is the Dockerfile's text .* dockerfile_path='Dockerfile.prod'"),
        ({"path": "/no/such/folder"}, "does not exist"),
        ({"tag": "bad tag"}, "tag must be an image name"),
    ],
)
def test_bad_build_settings_are_clear_errors(options, message):
    with pytest.raises(DockerConfigError, match=message):
        DockerBuild(**options).run()


def test_push_then_pull_through_a_registry_with_a_password(
    busybox_image, docker_registry, podman_service, plait_config, docker_host, caplog
):
    registry = docker_registry.address
    plait_config(
        f"""
        [plugins.docker]
        base_url = "{docker_host}"
        [plugins.docker.registries."{registry}"]
        username = "{docker_registry.username}"
        password_secret = "REGISTRY_PASSWORD"
        """,
        REGISTRY_PASSWORD=docker_registry.password,
    )
    name = f"{registry}/team/hello:1"
    build = DockerBuild(dockerfile=f'FROM {busybox_image}\nCMD ["echo", "hello from the registry"]\n', tag=name)
    with Flow("publish") as flow:
        pushed = DockerPush(name)(upstream_tasks=[build()])
    with caplog.at_level(logging.INFO, logger="plait"):
        state = flow.run()
    assert state.is_successful(), state.result[pushed].message
    digest = state.result[pushed].result
    assert digest.startswith("sha256:") or digest == name

    DockerRemove(image=name).run()
    assert podman_service.cli("image", "exists", name, check=False).returncode != 0
    with Flow("deploy") as flow:
        pulled = DockerPull(f"{registry}/team/hello", tag="1")()
        said = DockerRun(network_mode="none", pull="never")(image=pulled)
    with caplog.at_level(logging.INFO, logger="plait"):
        state = flow.run()
    assert isinstance(state.result[said], Success), state.result[said].message
    assert state.result[said].result == "hello from the registry"
    assert docker_registry.password not in caplog.text
    DockerRemove(image=name).run()


def test_a_wrong_registry_password_fails_clearly_and_is_not_shown(
    busybox_image, docker_registry, plait_config, docker_host
):
    registry = docker_registry.address
    plait_config(
        f"""
        [plugins.docker]
        base_url = "{docker_host}"
        [plugins.docker.registries."{registry}"]
        username = "{docker_registry.username}"
        password_secret = "REGISTRY_PASSWORD"
        """,
        REGISTRY_PASSWORD="Wr0ng-Password-123",
    )
    name = f"{registry}/team/refused:1"
    DockerBuild(dockerfile=f"FROM {busybox_image}\n", tag=name).run()
    with Flow("refused") as flow:
        pushed = DockerPush(name)()
    state = flow.run().result[pushed]
    assert isinstance(state, Failed)
    assert "pushing" in state.message and "Wr0ng-Password-123" not in state.message
    assert "unauthorized" in state.message.lower() or "authentication" in state.message.lower()
    with pytest.raises(DockerEngineError):
        DockerPull(f"{registry}/team/nothing-here:1").run()
    DockerRemove(image=name).run()


def test_remove_a_container_and_bad_remove_settings(busybox_image, engine):
    created = engine.create_container(busybox_image, ["true"], name="plait-test-remove-me")
    assert DockerRemove(container="plait-test-remove-me").run() is True
    assert engine.containers(all=True, filters={"id": created["Id"]}) == []
    with pytest.raises(DockerEngineError, match="does not exist"):
        DockerRemove(container="plait-test-remove-me", missing_ok=False).run()
    with pytest.raises(DockerConfigError, match="give image= or container="):
        DockerRemove().run()
