"""The README's ```python blocks run, in order, in one namespace, and their asserts hold."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_readme_examples_run(monkeypatch, tmp_path):
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)
    namespace: dict = {"__name__": "readme"}
    try:
        for number, code in enumerate(blocks, 1):
            try:
                exec(compile(code, f"README.md (python block {number})", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"README.md, python block {number} failed: {exc!r}\n{code}") from exc
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from plait.config import reset_config

        reset_config()
        if "slack" in namespace:
            namespace["slack"].stop()
