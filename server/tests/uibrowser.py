"""What the web UI's browser tests share: Debian's Chromium driven by Playwright, and signing in."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Chromium's flags for a sandbox-less, network-quiet headless run.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long the browser waits for a condition before the test fails (not a timing assertion:
#: the UI normally shows a change within a second; this bounds a broken one).
WAIT_MS = 20_000


def chromium() -> str:
    """The system's Chromium (Playwright cannot download its own here); skip, or fail under CI."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    found = shutil.which("chromium")
    if found is None:
        why = "Chromium is not installed (apt-get install chromium; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI never passes by skipping the browser tests
        pytest.skip(why)
    return found


def launch(playwright):
    """A headless Chromium; launch() gives it a fresh, temporary user-data-dir of its own."""
    return playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)


def sign_in(page, server, key: str, then: str = "/") -> None:
    page.goto(f"{server.url}/login?next={then}")
    page.fill("#api_key", key)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(re.compile(re.escape(server.url + then.split("?")[0])))
