"""Issue 6's acceptance: examples/s3_to_sql.py lists order files in S3 (a real moto server over
HTTP), loads their rows into SQL (SQLite, and a real PostgreSQL server) and queries a summary,
run with `plait run` in a fresh process; `plait plugins` and `plait tasks` show both plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("plait_s3", reason="plait-s3 is not installed (make test installs every plugin)")
pytest.importorskip("plait_sql", reason="plait-sql is not installed (make test installs every plugin)")

from plait_s3.testing import threaded_moto_s3_server

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "s3_to_sql.py"
PLAIT = str(Path(sys.executable).parent / "plait")
REGIONS = ["east", "north", "south", "west"]
FILES = 1_100  # past S3's 1,000 keys a page: the listing must follow pagination


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with FILES order files (and a file outside the prefix); its settings."""
    import boto3

    env = {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with threaded_moto_s3_server() as endpoint:  # plait run reaches it over HTTP: no process needed
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket="orders")
        for i in range(FILES):
            orders = [{"region": REGIONS[(i + j) % 4], "amount": 1 + (i * 3 + j) % 10} for j in range(3)]
            client.put_object(Bucket="orders", Key=f"orders/2026/{i:05d}.json", Body=json.dumps(orders))
        client.put_object(Bucket="orders", Key="other/ignore.json", Body=b"not orders")
        yield {**env, "PLAIT__PLUGINS__S3__ENDPOINT_URL": endpoint}


def expected_summary(min_amount: int = 0) -> list[str]:
    counts = {r: [0, 0] for r in REGIONS}
    for i in range(FILES):
        for j in range(3):
            amount = 1 + (i * 3 + j) % 10
            if amount >= min_amount:
                counts[REGIONS[(i + j) % 4]][0] += 1
                counts[REGIONS[(i + j) % 4]][1] += amount
    return [f"{r:<6} {n:>5} orders  total {t:>7}" for r, (n, t) in counts.items()]


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PLAIT", "AWS_"))}
    return subprocess.run([PLAIT, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env={**clean, **env})


def report_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "orders  total" in line]


def test_s3_to_sqlite(s3, tmp_path):
    done = run("run", str(EXAMPLE), "--param", "min_amount=5", cwd=tmp_path, env=s3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"loaded {FILES} files" in done.stdout
    assert report_lines(done.stdout) == expected_summary(5)
    assert s3["AWS_SECRET_ACCESS_KEY"] not in done.stdout + done.stderr


def test_s3_to_postgresql_on_threads(s3, postgres_server, tmp_path):
    from sqlalchemy.engine import make_url

    db = make_url(postgres_server.url).set(password=None).render_as_string(hide_password=False)
    env = {**s3, "PGPASSWORD": postgres_server.password}
    done = run("run", str(EXAMPLE), "--param", f"db={db}", "--executor", "threads", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report_lines(done.stdout) == expected_summary()
    # the rows are really in PostgreSQL, one per order, each tagged with its S3 key
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            rows, sources = conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT source) FROM orders")).one()
    finally:
        engine.dispose()
    assert (rows, sources) == (FILES * 3, FILES)
    assert postgres_server.password not in done.stdout + done.stderr


def test_plait_plugins_and_tasks_show_both_plugins(tmp_path):
    plugins = run("plugins", "--json", cwd=tmp_path, env={})
    assert plugins.returncode == 0, plugins.stderr
    by_dist = {p["distribution"]: p for p in json.loads(plugins.stdout)}
    assert {"plait_register_tasks", "plait_register_result_types"} <= set(by_dist["plait-s3"]["hooks"])
    assert "plait_register_tasks" in by_dist["plait-sql"]["hooks"]
    tasks = run("tasks", cwd=tmp_path, env={})
    for name in ("S3Upload", "S3Download", "S3List", "S3Delete", "S3Copy", "SQLQuery", "SQLExecute", "SQLBulkInsert"):
        assert name in tasks.stdout, tasks.stdout
