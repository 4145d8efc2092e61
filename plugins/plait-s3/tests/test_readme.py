"""The README's ``python`` examples run as they are, in order, against the moto server."""

from __future__ import annotations

from pathlib import Path

from plait.testing import run_markdown_examples

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run():
    run_markdown_examples(README, min_blocks=5, restore_environ=False)
