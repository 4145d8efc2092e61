"""Cross-package fixtures: one fresh virtual environment per test session with Plait installed.

The venv gets the core (a real wheel build of ``core/``, so the packaged template is tested
too), pytest, and the small plugin distributions in ``tests/fixtures/dists``; tests install
more into it (rendered plugins). Building it takes a few seconds and happens once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The plugin-discovery cache (plait.hooks.discovery) of test processes stays out of ~/.cache.
if "PLAIT_TEST_CACHE" not in os.environ:
    import tempfile as _tempfile

    os.environ["PLAIT_TEST_CACHE"] = os.environ["XDG_CACHE_HOME"] = _tempfile.mkdtemp(prefix="plait-test-cache-")

ROOT = Path(__file__).resolve().parents[1]
DISTS = Path(__file__).resolve().parent / "fixtures" / "dists"


@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    @property
    def plait(self) -> str:
        return str(self.path / "bin" / "plait")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PLAIT_", "PYTEST_", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def pip_install(self, *targets: str | Path) -> None:
        subprocess.run(
            [self.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *map(str, targets)],
            check=True,
            capture_output=True,
            text=True,
        )

    def run(self, *args: str, cwd: Path | None = None, check: bool = True, **env: str):
        out = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, env=self.env(**env))
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {out.returncode}\n{out.stdout}\n{out.stderr}")
        return out

    def plugins(self, **env: str) -> dict[str, dict]:
        out = self.run(self.plait, "plugins", "--json", **env)
        return {row["name"]: row for row in json.loads(out.stdout)}


@pytest.fixture(scope="session")
def plait_venv(tmp_path_factory) -> Venv:
    path = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    venv = Venv(path)
    try:
        venv.pip_install(f"{ROOT / 'core'}[scaffold]", "pytest>=8", *sorted(DISTS.iterdir()))
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"pip install into the test venv failed:\n{exc.stdout}\n{exc.stderr}") from None
    return venv
