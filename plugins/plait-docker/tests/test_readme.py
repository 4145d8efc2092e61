"""The README's ```python examples run, in order in one namespace, against the real Podman service."""

from __future__ import annotations

import logging
from pathlib import Path

from plait.testing import run_markdown_examples

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(docker_env, busybox_image, engine, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="plait"):
        run_markdown_examples(README, {"__name__": "readme", "BUSYBOX": busybox_image}, min_blocks=5)
    # the secrets example: the container printed the password, the log shows it masked
    assert "connecting with ********" in caplog.text
    assert "pw-4e8f2a9c" not in caplog.text
    assert engine.containers(all=True, filters={"label": "plait.managed"}) == []
