"""`make bench` keeps running: every benchmark module run.py pulls in imports, and the map-memory
table it prints at its end works at a small size (a broken import there once ended `make bench`
with a traceback after minutes of figures)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_name_run_py_imports_from_a_sibling_benchmark_exists():
    tree = ast.parse((BENCH / "run.py").read_text())
    siblings = {p.stem for p in BENCH.glob("*.py")}
    checked = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in siblings:
            module = ast.parse((BENCH / f"{node.module}.py").read_text())
            defined = {
                n.name for n in module.body if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
            } | {t.id for n in module.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
            defined |= {a.asname or a.name for n in module.body if isinstance(n, ast.ImportFrom) for a in n.names}
            for alias in node.names:
                assert alias.name in defined, f"benchmarks/run.py imports {alias.name} from {node.module}.py"
                checked += 1
    assert checked >= 2


def test_the_map_memory_table_prints_a_row_per_executor():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from bench_map_memory import print_table; "
        "print_table(2000, ['local', 'threads'])"
    )
    env = {**os.environ, "PLAIT_LOAD_PLUGINS": ""}
    result = subprocess.run(
        [sys.executable, "-c", code, str(BENCH)], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["local"], ["threads"])]
    assert [r[0] for r in rows] == ["local", "threads"] and rows[1][-1].endswith("x"), result.stdout
