"""The web UI with real agents: runs started from the run form and run by ``plait agent start``,
watched live, cancelled and restarted from their page, in a real headless Chromium.

One server (short heartbeats), one agent and one browser serve the module. Flows coordinate
with the tests through files (a task waits for a file the test creates once the page shows
what it should); nothing sleeps to synchronise.
"""

from __future__ import annotations

import re
import textwrap
import uuid
from pathlib import Path

import pytest
from uibrowser import WAIT_MS, launch, sign_in

testing = pytest.importorskip("plait_server.testing")
if not hasattr(testing, "AgentProcess"):
    pytest.skip("this plait-server has no agents", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def orch(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ui-agents")
    server = testing.ServerProcess(
        f"sqlite:///{directory / 'server.db'}",
        directory,
        settings={"heartbeat_interval": 0.5, "scheduler_interval": 0.2, "late_after": 3600.0},
    ).start()
    agent = testing.AgentProcess(server, directory, name=f"ui-agent-{uuid.uuid4().hex[:6]}", cancel_grace=1.0).start()
    yield server
    agent.stop()
    try:
        testing.wait_until(lambda: not testing.run_processes(agents={agent.name}), timeout=30, what="runs to exit")
    finally:
        for pid in testing.run_processes(agents={agent.name}):
            testing.kill_group(pid)
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(WAIT_MS * 3)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    # What the page's Content-Security-Policy refused would be a broken feature.
    p.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield p
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def flow_file(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


def register(server, path: Path, name: str):
    from plait.cli.loading import load_flow
    from plait.registration import flow_metadata
    from plait.storage import FileStorage

    flow = load_flow(f"{path}:{name}")
    return server.client().register_flow(metadata=flow_metadata(flow), storage=FileStorage(path, name).reference())


def wait_for_file_code(path: Path) -> str:
    """Flow code that waits (bounded) for ``path`` to exist: the test's signal to go on."""
    return f'''
        def wait_for_release():
            deadline = time.monotonic() + 120
            while not os.path.exists("{path}"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the test never released the flow")
                time.sleep(0.05)
    '''


def test_a_run_started_from_the_form_turns_green_live_and_its_log_line_shows(page, orch, tmp_path):
    name = f"ui_hello_{uuid.uuid4().hex[:6]}"
    release = tmp_path / "release"
    path = flow_file(
        tmp_path,
        name,
        f"""
        import os
        import time

        import plait
        from plait import Flow, Parameter, task
        {wait_for_file_code(release)}

        @task
        def greet(who):
            wait_for_release()
            plait.context.logger.info("hello %s, from the agent", who)
            return who

        @task
        def shout(greeting):
            return greeting.upper()

        with Flow("{name}") as flow:
            shout(greet(Parameter("who", default="world")))
        """,
    )
    flow = register(orch, path, name)
    sign_in(page, orch, orch.admin_key, f"/flows/{flow.id}")
    page.fill("#param-who", "Ada")
    page.click("#run-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/flow-runs/[0-9a-f-]{36}$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    # The agent claims it and its process starts it: the page follows without a reload.
    expect(page.locator("#run-header .run-state")).to_contain_text("Running")
    expect(page.locator('#schematic g.node[data-slug="greet"]')).to_have_class(re.compile(r"\bstate-running\b"))
    release.touch()
    for slug in ("greet", "shout"):
        expect(page.locator(f'#schematic g.node[data-slug="{slug}"]')).to_have_class(re.compile(r"\bstate-success\b"))
    expect(page.locator("#run-header .run-state")).to_contain_text("Success")
    expect(page.locator("#logbox")).to_contain_text("hello Ada, from the agent")
    # The agent that ran it is named on the page, and listed on the agents page.
    page.reload()
    expect(page.locator("#run-header")).to_contain_text("ui-agent-")
    page.goto(orch.url + "/agents")
    expect(page.locator("table.list")).to_contain_text("ui-agent-")


def test_cancel_stops_a_running_run_from_its_page(page, orch, tmp_path):
    name = f"ui_cancel_{uuid.uuid4().hex[:6]}"
    effects = tmp_path / "effects.txt"
    path = flow_file(
        tmp_path,
        name,
        f"""
        import time
        from plait import Flow, Parameter, task

        @task
        def numbers(n):
            return list(range(n))

        @task
        def step(x):
            time.sleep(0.2)
            with open("{effects}", "a") as f:
                f.write(f"{{x}}\\n")
            return x

        with Flow("{name}") as flow:
            step.map(numbers(Parameter("n", default=500)))
        """,
    )
    flow = register(orch, path, name)
    run = orch.client().create_flow_run(flow_id=flow.id)
    sign_in(page, orch, orch.admin_key, f"/flow-runs/{run.id}")
    expect(page.locator('.gantt .row.parent[data-slug="step"] .st')).to_contain_text("Success")
    page.click("button[data-action=cancel]")
    expect(page.locator("#run-header .run-state")).to_contain_text("Cancelled")
    assert len(effects.read_text().split()) < 500
    # A finished run offers no Cancel, and Restart instead.
    expect(page.locator("button[data-action=cancel]")).to_have_count(0)
    expect(page.locator("button[data-action=restart]")).to_have_count(1)


def test_restart_from_failed_reruns_only_the_failed_tasks(page, orch, tmp_path):
    name = f"ui_restart_{uuid.uuid4().hex[:6]}"
    effects = tmp_path / "effects.txt"
    broken = tmp_path / "broken"
    broken.touch()
    path = flow_file(
        tmp_path,
        name,
        f"""
        import os
        from plait import Flow, task
        from plait.results import LocalResult

        def effect(what):
            with open("{effects}", "a") as f:
                f.write(what + "\\n")

        @task
        def extract():
            effect("extract")
            return [1, 2, 3]

        @task
        def transform(x):
            effect(f"transform-{{x}}")
            if x == 2 and os.path.exists("{broken}"):
                raise ValueError("bad row 2")
            return x * 10

        @task
        def load(xs):
            effect("load")
            return sum(xs)

        with Flow("{name}", result=LocalResult(dir="{tmp_path / "results"}")) as flow:
            load(transform.map(extract()))
        """,
    )
    flow = register(orch, path, name)
    run = orch.client().create_flow_run(flow_id=flow.id)
    sign_in(page, orch, orch.admin_key, f"/flow-runs/{run.id}")
    expect(page.locator("#run-header .run-state")).to_contain_text("Failed")
    transform = page.locator('.gantt .row.parent[data-slug="transform"]')
    expect(transform.locator(".st")).to_contain_text("Failed 1")
    assert sorted(effects.read_text().split()) == ["extract", "transform-1", "transform-2", "transform-3"]

    broken.unlink()
    page.click("button[data-action=restart]")
    expect(page.locator("#run-header .run-state")).to_contain_text("Success")
    expect(transform.locator(".st")).to_contain_text("Success 3")
    # Only the failed child and what depends on it ran again.
    assert sorted(effects.read_text().split()) == [
        "extract",
        "load",
        "transform-1",
        "transform-2",
        "transform-2",
        "transform-3",
    ]


def test_an_admin_sets_and_removes_a_concurrency_limit(page, orch):
    tag = f"ui-tag-{uuid.uuid4().hex[:6]}"
    sign_in(page, orch, orch.admin_key, "/concurrency-limits")
    page.fill("#limit-name", tag)
    page.fill("#limit-max", "2")
    page.click("form[action='/concurrency-limits/set'] button[type=submit]")
    row = page.locator("table.list tr", has_text=tag)
    expect(row).to_contain_text("2")
    assert any(limit["name"] == tag for limit in concurrency_limits(orch))
    row.locator("button").click()
    expect(page.locator("table.list tr", has_text=tag)).to_have_count(0)


def concurrency_limits(server) -> list[dict]:
    answer = server.graphql("{ concurrency_limits { name max_running } }")
    return answer["data"]["concurrency_limits"]
