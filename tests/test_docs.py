"""The ```python examples in the README and the concept pages run, and their asserts hold.

Each page's blocks run in order in one namespace (later examples reuse earlier names).
Fragments that are not meant to run use ```py or ```console instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plait.testing import run_markdown_examples

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/concepts.md", "docs/architecture.md", "docs/reliability.md"]


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    minimum = 0 if page == "docs/architecture.md" else 1
    run_markdown_examples(ROOT / page, {"__name__": f"docs_{Path(page).stem}"}, min_blocks=minimum)
