"""The ```python examples in the README and the concept pages run, and their asserts hold.

Each page's blocks run in order in one namespace (later examples reuse earlier names).
Fragments that are not meant to run use ```py or ```console instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/concepts.md", "docs/architecture.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((ROOT / page).read_text())


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if page != "docs/architecture.md":
        assert blocks, f"{page} has no ```python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{Path(page).stem}"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{page} (python block {number})", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page}, python block {number} failed: {exc!r}\n{code}") from exc
