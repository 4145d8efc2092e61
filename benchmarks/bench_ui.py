"""The web UI in headless Chromium: page timings and live-update delay.

Run it with ``.venv/bin/python benchmarks/bench_ui.py`` (``make bench-ui``; ``--quick`` for a
smaller database). It needs ``server[test]`` (Playwright) and Debian's ``chromium``, which
``make test`` installs. It prints tables and asserts nothing.

The database (SQLite) is built through the data layer (``plait_server.demo_data``): 10,000
finished runs over the last 24 hours (``--runs``), 300 runs with task runs and logs claimed by
two agents, and one run (claimed by an agent) of a flow whose task is mapped over 10,000 items
(``--map``): every child with its
``Running`` and ``Success`` states and a log line (30,000 states and 10,000 log lines for that
run). A real ``plait server start`` serves it; Chromium (``/usr/bin/chromium`` through
Playwright) signs in and loads each page ``--repeat`` times. From the browser's own
Navigation Timing and Paint Timing entries:

- ``ttfb``: the response's first byte (``responseStart``), i.e. the server's time to render;
- ``fcp``: first contentful paint;
- ``dcl``: ``domContentLoadedEventEnd`` (the page parsed, its deferred scripts run);
- ``ready``: the UI's ``plait:ready`` mark (schematic laid out and drawn, Gantt placed);
- ``load``: ``loadEventEnd``; and the HTML's size.

Live updates: with the map run's page open, a state is written through the API (GraphQL over
HTTP, like an agent's report) and the page notes when it applied it (``window.plaitLive``):
the delay from the write's start to the page's update, median and max of 20. Then a burst: the
30,000 states of another 10,000-item map run written as fast as one client can, with the page
open: how long after the last write the page shows the final counts (``lag``).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from _common import machine

PLAIT = str(Path(sys.executable).with_name("plait"))
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
TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
  const ready = performance.getEntriesByName('plait:ready')[0];
  return {ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
          fcp: paint['first-contentful-paint'] || null, ready: ready ? ready.startTime : null,
          size: nav.transferSize || nav.encodedBodySize};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="finished runs in the last 24 hours")
    parser.add_argument("--map", type=int, default=10_000, help="items of the big map run")
    parser.add_argument("--repeat", type=int, default=5, help="loads of each page (the median is shown)")
    parser.add_argument("--quick", action="store_true", help="1,000 runs, a 2,000-item map, 3 loads")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.map, args.repeat = 1000, 2000, 3
    from importlib.metadata import version

    print(machine(f"playwright {version('playwright')}", f"chromium {chromium_version(args.chromium)}"))
    with tempfile.TemporaryDirectory(prefix="plait-bench-ui-") as tmp:
        directory = Path(tmp)
        database = f"sqlite:///{directory / 'server.db'}"
        started = time.perf_counter()
        ids = build(database, args.runs, args.map)
        took = time.perf_counter() - started
        print(f"database: {args.runs} + 300 runs, a {args.map}-item map run ({took:.0f} s to build)")
        server, url = start_server(directory, database)
        try:
            measure(url, ids, args)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def build(database: str, runs: int, items: int) -> dict[str, str]:
    from plait_server.data.store import Store
    from plait_server.db.engine import make_engine
    from plait_server.db.migrate import prepare_schema
    from plait_server.demo_data import big_map_run, fill, many_runs

    engine = make_engine(database)
    prepare_schema(engine)
    store = Store(engine)
    history = fill(store, runs=300)
    many_runs(store, runs, [history.flows["etl-daily"], history.flows["image-batch"]])
    map_run = big_map_run(store, items, history.flows["image-batch"], agent_id=history.agents["agent-eu-1"])
    live_run = store.runs.create(flow_id=history.flows["image-batch"], name="live-target")[0].id
    burst_run = store.runs.create(flow_id=history.flows["image-batch"], name="burst-target")[0].id
    _, secret = store.keys.create("bench", "admin")
    store.dispose()
    return {
        "key": secret,
        "map_run": map_run,
        "live_run": live_run,
        "burst_run": burst_run,
        "flow": history.flows["image-batch"],
    }


def start_server(directory: Path, database: str) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (directory / "config.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT__")}
    env["PLAIT_CONFIG"] = str(directory / "config.toml")
    log = open(directory / "server.log", "wb")  # noqa: SIM115 - the server writes to it until it stops
    server = subprocess.Popen(
        [PLAIT, "server", "start", "--database", database, "--port", str(port), "--log-level", "warning"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return server, url
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def measure(url: str, ids: dict[str, str], args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    pages = [
        ("dashboard", "/"),
        ("flow runs (page 1 of 10,300)", "/flow-runs"),
        (f"flow run, {args.map}-item map", f"/flow-runs/{ids['map_run']}"),
        ("flow (schematic, run form)", f"/flows/{ids['flow']}"),
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        # bypass_csp: Playwright's wait_for_function evaluates strings, which the pages' CSP forbids.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.goto(url + "/login")
        page.fill("#api_key", ids["key"])
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(url + "/")

        print()
        print(f"{'page':34} {'ttfb ms':>8} {'fcp ms':>8} {'dcl ms':>8} {'ready ms':>9} {'load ms':>8} {'html kB':>8}")
        for name, path in pages:
            rows = []
            for _ in range(args.repeat):
                page.goto(url + path, wait_until="load")
                page.wait_for_selector("body[data-ready=true]")
                rows.append(page.evaluate(TIMING))
            med = {k: statistics.median(r[k] for r in rows if r[k] is not None) for k in rows[0] if k != "size"}
            size = rows[-1]["size"] / 1024
            print(
                f"{name:34} {med['ttfb']:8.0f} {med['fcp']:8.0f} {med['dcl']:8.0f} {med['ready']:9.0f} "
                f"{med['load']:8.0f} {size:8.0f}"
            )

        live(url, ids, page)
        burst(url, ids, page, args.map)
        browser.close()


def live(url: str, ids: dict[str, str], page) -> None:
    """The delay from a state write through the API to the open page applying it."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ids['key']}"
    run_id = ids["live_run"]
    gql(
        session,
        url,
        FLOW_STATES,
        {
            "s": [
                {"flow_run_id": run_id, "version": 1, "state": {"type": "Submitted"}},
                {"flow_run_id": run_id, "version": 2, "state": {"type": "Running"}},
            ]
        },
    )
    page.goto(f"{url}/flow-runs/{run_id}")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function("window.plaitLive === undefined || window.plaitLive.applied >= 0")
    delays = []
    for i in range(20):
        applied = page.evaluate("(window.plaitLive || {applied: 0}).applied")
        sent = time.time() * 1000
        gql(
            session,
            url,
            TASK_STATES,
            {
                "s": [
                    {
                        "flow_run_id": run_id,
                        "task_slug": "process",
                        "map_index": i,
                        "version": 0,
                        "state": {"type": "Running"},
                    }
                ]
            },
        )
        page.wait_for_function(f"window.plaitLive && window.plaitLive.applied > {applied}")
        delays.append(page.evaluate("window.plaitLive.at") - sent)
    print()
    print(
        f"live: a state written through the API shown on the open page after {statistics.median(delays):.0f} ms "
        f"(median of 20; max {max(delays):.0f} ms)"
    )


def burst(url: str, ids: dict[str, str], page, items: int) -> None:
    """A map run's 30,000 states written as fast as possible with its page open."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ids['key']}"
    run_id = ids["burst_run"]
    gql(
        session,
        url,
        FLOW_STATES,
        {
            "s": [
                {"flow_run_id": run_id, "version": 1, "state": {"type": "Submitted"}},
                {"flow_run_id": run_id, "version": 2, "state": {"type": "Running"}},
            ]
        },
    )
    page.goto(f"{url}/flow-runs/{run_id}")
    page.wait_for_selector("body[data-ready=true]")
    started = time.perf_counter()

    def write(chunk: range) -> None:
        for version, state in ((0, "Pending"), (1, "Running"), (2, "Success")):
            gql(
                session,
                url,
                TASK_STATES,
                {
                    "s": [
                        {
                            "flow_run_id": run_id,
                            "task_slug": "process",
                            "map_index": i,
                            "version": version,
                            "state": {"type": state},
                        }
                        for i in chunk
                    ]
                },
            )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, [range(i, min(i + 100, items)) for i in range(0, items, 100)]))
    written = time.perf_counter() - started
    page.wait_for_function(
        f"""() => {{
            const row = document.querySelector('.gantt .row.parent[data-slug="process"]');
            const b = row && row.querySelector('[data-count-state="Success"]');
            return b && b.textContent.trim() === 'Success {items}'; }}""",
        timeout=120_000,
    )
    shown = time.perf_counter() - started
    applied = page.evaluate("window.plaitLive.applied")
    print(
        f"burst: {3 * items} states written in {written:.1f} s ({3 * items / written:.0f}/s); the open page showed "
        f"the final counts {max(shown - written, 0) * 1000:.0f} ms after the last write ({applied} updates applied)"
    )


FLOW_STATES = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { ok } }"
TASK_STATES = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { ok } }"


def gql(session: requests.Session, url: str, query: str, variables: dict) -> None:
    answer = session.post(url + "/graphql", json={"query": query, "variables": variables}, timeout=60)
    body = answer.json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL error: {body['errors'][0]}")


def chromium_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.split()[1] if len(out.split()) > 1 else out.strip()


if __name__ == "__main__":
    main()
