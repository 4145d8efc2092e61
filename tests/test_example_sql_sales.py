"""examples/sql_sales.py runs with `plait run` on a SQLite file and on a real PostgreSQL server
(the throwaway one from plait-sql's pytest plugin), and prints the summary it queried."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("plait_sql", reason="plait-sql is not installed (make test installs every plugin)")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sql_sales.py"
PLAIT = str(Path(sys.executable).parent / "plait")
SUMMARY = [
    "south   250 sales  total  1002",
    "east    250 sales  total  1000",
    "west    250 sales  total   998",
    "north   250 sales  total   997",
    "per product: {'tea': 334, 'cake': 333, 'scone': 333}",
]


def run_example(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PLAIT, "run", str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def summary_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "sales  total" in line or line.startswith("per product:")]


def test_sql_sales_on_sqlite(tmp_path):
    first = run_example(cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert summary_lines(first.stdout) == SUMMARY
    assert (tmp_path / "sales.db").exists()
    again = run_example("--param", "min_amount=7", cwd=tmp_path)  # the table is cleared and reloaded
    assert again.returncode == 0, again.stdout + again.stderr
    assert summary_lines(again.stdout) == [  # only the 7s count now; 1,000 rows, not 2,000
        "east     36 sales  total   252",
        "south    36 sales  total   252",
        "north    35 sales  total   245",
        "west     35 sales  total   245",
        "per product: {'tea': 334, 'cake': 333, 'scone': 333}",
    ]


def test_sql_sales_on_postgresql_with_threads(postgres_server, tmp_path):
    from sqlalchemy.engine import make_url

    no_password = make_url(postgres_server.url).set(password=None).render_as_string(hide_password=False)
    out = run_example(
        "--param",
        f"db={no_password}",
        "--executor",
        "threads",
        cwd=tmp_path,
        env={"PGPASSWORD": postgres_server.password},  # libpq's own variable
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert summary_lines(out.stdout) == SUMMARY
    assert postgres_server.password not in out.stdout + out.stderr
