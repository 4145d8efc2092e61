"""The README's ```python examples run, in order in one namespace, against the real Podman
service (and, for the Docker agent's example, a real ``plait server start``)."""

from __future__ import annotations

import logging
from pathlib import Path

from plait.testing import run_markdown_examples

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(docker_env, busybox_image, plait_image, engine, tmp_path, monkeypatch, caplog):
    from plait_server.testing import ServerProcess, wait_until

    monkeypatch.chdir(tmp_path)
    server = ServerProcess(f"sqlite:///{tmp_path / 'server.db'}", tmp_path, settings={"late_after": 3600.0}).start()
    namespace = {
        "__name__": "readme",
        "BUSYBOX": busybox_image,
        "PLAIT_IMAGE": plait_image,
        "SERVER_URL": server.url,
        "API_KEY": server.admin_key,
    }
    try:
        with caplog.at_level(logging.INFO, logger="plait"):
            run_markdown_examples(README, namespace, min_blocks=6)
    finally:
        agent = namespace.get("agent")
        if agent is not None:  # an example that failed half-way: stop its agent
            agent.stop()
            namespace["polling"].join(30)
        server.stop()
    # the secrets example: the container printed the password, the log shows it masked
    assert "connecting with ********" in caplog.text
    assert "pw-4e8f2a9c" not in caplog.text
    assert engine.containers(all=True, filters={"label": "plait.managed"}) == []
    # the agent's run's container: removed by the engine once its process ended
    wait_until(lambda: not engine.containers(all=True, filters={"label": "plait.agent"}), timeout=60, what="removal")
