"""The README's ```python blocks run, in order, in one namespace, and their asserts hold."""

from __future__ import annotations

from pathlib import Path

from plait.testing import run_markdown_examples

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    try:
        run_markdown_examples(README, namespace, min_blocks=4)
    finally:
        if "api" in namespace:
            namespace["api"].stop()
            namespace["receiver"].stop()
