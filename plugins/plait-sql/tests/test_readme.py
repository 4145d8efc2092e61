"""The README's ```python examples run, in order in one namespace, and their asserts hold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_readme_examples_run(tmp_path, monkeypatch):
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # the examples use sqlite:///shop.db, a file in the current folder
    namespace: dict = {"__name__": "readme"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"README.md (python block {number})", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"README.md python block {number} failed: {exc!r}\n{code}") from exc
    assert (tmp_path / "shop.db").exists()
