"""The hook reference stays honest: every hookspec is documented with its signature in
docs/hooks.md, and nothing documented there is missing from the specs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from plait.hooks import specs

ROOT = Path(__file__).resolve().parents[1]
HOOKS_PAGE = ROOT / "docs" / "hooks.md"


def hookspecs() -> dict[str, str]:
    """``{name: "name(arg, ...)"}`` for every hookspec."""
    out = {}
    for name in dir(specs):
        fn = getattr(specs, name)
        if name.startswith("plait_") and callable(fn):
            out[name] = f"{name}({', '.join(inspect.signature(fn).parameters)})"
    return out


def test_every_hookspec_is_documented_with_its_signature():
    page = HOOKS_PAGE.read_text()
    headings = re.findall(r"^### `(plait_\w+\([^)]*\))`$", page, re.M)
    expected = hookspecs()
    assert sorted(headings) == sorted(expected.values())


def test_every_hookspec_has_a_reference_docstring():
    for name in hookspecs():
        doc = inspect.getdoc(getattr(specs, name)) or ""
        assert "Called" in doc, f"{name}'s docstring does not say when it is called"
