"""Screenshots of the web UI's main pages for docs/ui.md (`make screenshots`).

Builds a demo database (``plait_server.demo_data``: a day of runs of three flows claimed by two
agents, a failed run, a running one, late and upcoming runs, concurrency limits, a run mapped
over 1,000 items), starts a real
``plait server start`` on it, signs in with headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright) and saves one PNG per page into docs/ui/. Run it again after changing a
page, so the pictures in the docs stay true.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "ui", help="where the PNGs go")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plait-screenshots-") as tmp:
        directory = Path(tmp)
        database = f"sqlite:///{directory / 'server.db'}"
        ids = build(database)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT__")}
        env["PLAIT_CONFIG"] = str(directory / "config.toml")
        (directory / "config.toml").write_text("")
        plait = str(Path(sys.executable).with_name("plait"))
        with open(directory / "server.log", "wb") as log:
            server = subprocess.Popen(
                [plait, "server", "start", "--database", database, "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(url, server, directory / "server.log")
            shoot(url, ids, args.out, args.chromium)
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(30)
    print(f"screenshots in {args.out}")


def build(database: str) -> dict[str, str]:
    from plait_server.data.flows import FlowFilter
    from plait_server.data.runs import FlowRunFilter, TaskRunFilter
    from plait_server.data.store import Store
    from plait_server.db.engine import make_engine
    from plait_server.db.migrate import prepare_schema
    from plait_server.demo_data import big_map_run, fill

    engine = make_engine(database)
    prepare_schema(engine)
    store = Store(engine)
    history = fill(store, runs=300)
    map_run = big_map_run(
        store, 1000, history.flows["image-batch"], finished=False, agent_id=history.agents["agent-eu-1"]
    )
    _, secret = store.keys.create("docs (screenshots)", "admin")
    store.keys.create("ci", "run")
    store.keys.create("dashboard-tv", "read")
    failed = store.runs.list(FlowRunFilter(state_types=["FAILED"]), limit=1).items[0]
    failed_task = store.task_runs.list(TaskRunFilter(flow_run_id=failed.id, state_types=["FAILED"])).items[0]
    etl = store.flows.list(FlowFilter(name="etl-daily")).items[0]
    store.dispose()
    return {
        "key": secret,
        "map_run": map_run,
        "failed_run": failed.id,
        "failed_task": failed_task.id,
        "etl": etl.id,
        "report": history.flows["report"],
    }


def shoot(url: str, ids: dict[str, str], out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    pages = [
        ("login", "/login", None),
        ("dashboard", "/", None),
        ("flows", "/flows", None),
        ("flow", f"/flows/{ids['report']}", None),
        ("flow-runs", "/flow-runs", None),
        ("flow-run-map", f"/flow-runs/{ids['map_run']}", None),
        ("flow-run-unfolded", f"/flow-runs/{ids['map_run']}", "unfold"),
        ("flow-run-failed", f"/flow-runs/{ids['failed_run']}", None),
        ("task-run", f"/task-runs/{ids['failed_task']}", None),
        ("agents", "/agents", None),
        ("api-keys", "/api-keys", None),
        ("concurrency-limits", "/concurrency-limits", None),
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
        page = context.new_page()
        page.goto(url + "/login")
        page.screenshot(path=str(out / "login.png"))
        page.fill("#api_key", ids["key"])
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(url + "/")
        for name, path, action in pages[1:]:
            page.goto(url + path)
            page.wait_for_selector("body[data-ready=true]")
            if action == "unfold":
                page.click('.gantt .row.parent[data-slug="process"] a.fold')
                page.wait_for_selector('.gantt .children[data-slug="process"] .row.child')
            height = min(page.evaluate("document.documentElement.scrollHeight"), 1500)
            page.set_viewport_size({"width": 1280, "height": height})
            page.screenshot(path=str(out / f"{name}.png"))
            page.set_viewport_size({"width": 1280, "height": 860})
            print(f"  {name}.png")
        browser.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"plait server start exited:\n{log.read_text()[-2000:]}")
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"plait server start did not answer:\n{log.read_text()[-2000:]}")


if __name__ == "__main__":
    main()
