"""Measure Plait against Prefect 1's own test suite, through a thin import shim.

    .venv/bin/python benchmarks/prefect_compat/run.py /path/to/prefect1/tests [--details] [-k EXPR]

Each test module runs in its own pytest process with ``plugin.py`` (the shim, the executor
fixtures, a per-test time limit), and every test case is classified:

- passed;
- not applicable: the case tests something Plait does not have and does not claim (the rules,
  each with its reason, are in ``classification.py``); left out of the rate;
- failed, missing API: the test used a Prefect name Plait does not have, or called a Plait
  name with an argument it does not take;
- failed, behaviour: everything else (Plait has the API and does something else).

The pass rate is passed / (cases - not applicable). Nothing is downloaded: README.md says how
to fetch Prefect 1's tests. This is not part of ``make test``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import classification  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tests", type=Path, help="the tests/ folder of Prefect 1 (see README.md)")
    parser.add_argument("--details", action="store_true", help="list every failing case with its error")
    parser.add_argument(
        "--list",
        choices=["missing", "behaviour", "na", "passed"],
        action="append",
        default=[],
        help="list the cases of one category (repeatable)",
    )
    parser.add_argument("-k", default=None, help="only modules whose path contains this text")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per test (default 20)")
    parser.add_argument("--json", type=Path, default=None, help="also write every case's outcome here")
    args = parser.parse_args()

    tests = args.tests.resolve()
    if not tests.is_dir():
        parser.error(f"{tests} is not a folder: fetch Prefect 1's tests first (benchmarks/prefect_compat/README.md)")
    modules = sorted(p for p in tests.rglob("test_*.py"))
    if args.k:
        modules = [m for m in modules if args.k in str(m.relative_to(tests))]
    if not modules:
        parser.error(f"no test_*.py under {tests}")

    python = sys.executable
    records: list[dict] = []
    started = time.monotonic()
    for module in modules:
        rel = module.relative_to(tests).as_posix()
        records.extend(_run_module(python, tests, rel, args.timeout))
        print(f"  ran {rel}", file=sys.stderr)
    elapsed = time.monotonic() - started

    rows = _classify(records)
    _print_table(rows, elapsed, python)
    for category in args.list:
        _print_cases(rows, category)
    if args.details:
        _print_cases(rows, "missing")
        _print_cases(rows, "behaviour")
    if args.json:
        with args.json.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
    return 0


def _run_module(python: str, root: Path, rel: str, timeout: float) -> list[dict]:
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as tmp:
        report = tmp.name
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["PREFECT_COMPAT_REPORT"] = report
    env["PREFECT_COMPAT_TIMEOUT"] = str(timeout)
    env.setdefault("PLAIT_LOAD_PLUGINS", "")  # the engine alone, as the benchmarks measure it
    cmd = [
        python,
        "-m",
        "pytest",
        "-p",
        "plugin",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "-o",
        "addopts=",
        "--rootdir",
        str(root),
        rel,
    ]
    try:
        subprocess.run(
            cmd,
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=max(600.0, timeout * 50),
        )
    except subprocess.TimeoutExpired:
        pass
    out: list[dict] = []
    with open(report, encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
    os.unlink(report)
    # a module that does not import: its test functions count as failed, one each per
    # literal parametrization (an estimate; the report says so)
    for rec in list(out):
        if rec["outcome"] == "collection-error":
            out.remove(rec)
            for name in _static_cases(root / rel):
                out.append(
                    {
                        "nodeid": f"{rel}::{name}",
                        "outcome": "failed",
                        "when": "collection",
                        "error": "module does not import: " + rec.get("error", ""),
                    }
                )
    return out


def _static_cases(path: Path) -> list[str]:
    """Test case names of a module, read from its source (for a module that does not import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []

    def count(fn: ast.FunctionDef) -> int:
        n = 1
        for dec in fn.decorator_list:
            if (
                isinstance(dec, ast.Call)
                and isinstance(dec.func, ast.Attribute)
                and dec.func.attr == "parametrize"
                and len(dec.args) >= 2
                and isinstance(dec.args[1], (ast.List, ast.Tuple))
            ):
                n *= max(1, len(dec.args[1].elts))
        return n

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                visit(node.body, f"{prefix}{node.name}::")
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                n = count(node)
                names.extend(f"{prefix}{node.name}" + (f"[{i}]" if n > 1 else "") for i in range(n))

    visit(tree.body, "")
    return names


def _classify(records: list[dict]) -> list[dict]:
    rows = []
    for rec in records:
        nodeid = rec["nodeid"]
        outcome = rec["outcome"]
        reason = classification.not_applicable(nodeid, rec)
        if outcome in ("skipped", "xfailed"):
            category = "skipped"
        elif reason is not None:
            category = "na"
        elif outcome in ("passed", "xpassed"):
            category = "passed"
        else:
            category = classification.failure_kind(nodeid, rec)
        row = dict(rec, category=category, module=nodeid.split("::")[0])
        if reason is not None:
            row["na_reason"] = reason
        rows.append(row)
    return rows


def _print_table(rows: list[dict], elapsed: float, python: str) -> None:
    import platform

    import plait

    per: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        per[r["module"]][r["category"]] += 1
    print(
        f"Plait {plait.__version__} against Prefect 1's tests; Python {platform.python_version()}, "
        f"{platform.node()}; {time.strftime('%Y-%m-%d %H:%M')}; {elapsed:.0f} s"
    )
    header = f"{'module':38} {'cases':>5} {'n/a':>5} {'apply':>5} {'pass':>5} {'api':>5} {'behav':>5} {'rate':>6}"
    print(header)
    print("-" * len(header))
    total: Counter = Counter()
    for module in sorted(per):
        c = per[module]
        total.update(c)
        print(_row(module, c))
    print("-" * len(header))
    print(_row("all", total))
    print(
        "cases: collected test cases (skipped ones not counted); n/a: not applicable (classification.py);"
        " api: failed on a missing or renamed API; behav: failed on behaviour; rate: pass / apply"
    )


def _row(name: str, c: Counter) -> str:
    cases = sum(v for k, v in c.items() if k != "skipped")
    na = c["na"]
    apply = cases - na
    rate = f"{100 * c['passed'] / apply:5.1f}%" if apply else "    -"
    return f"{name:38} {cases:5} {na:5} {apply:5} {c['passed']:5} {c['missing']:5} {c['behaviour']:5} {rate:>6}"


def _print_cases(rows: list[dict], category: str) -> None:
    print(f"\n## {category}")
    for r in rows:
        if r["category"] == category:
            extra = r.get("na_reason") if category == "na" else (r.get("missing") or r.get("error", ""))
            print(f"{r['nodeid']}  |  {extra}")


if __name__ == "__main__":
    sys.exit(main())
