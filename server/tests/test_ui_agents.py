"""The web UI with a real agent: runs started from the run form and run by ``plait agent start``,
watched live, cancelled and restarted from their page; what a ``read`` key sees and what a
forged form post gets; agents and concurrency limits backed by the orchestration's own data.
All in a real headless Chromium against a real ``plait server start``.

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
import requests
from plait_server import testing
from playwright.sync_api import expect, sync_playwright
from uibrowser import WAIT_MS, launch, sign_in

#: An agent not heard from for this long is marked lost (the module's agent polls every 0.2 s).
LOST_AFTER = 10.0


@pytest.fixture(scope="module")
def orch(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ui-agents")
    server = testing.ServerProcess(
        f"sqlite:///{directory / 'server.db'}",
        directory,
        settings={
            "heartbeat_interval": 0.5,
            "scheduler_interval": 0.2,
            "late_after": 3600.0,
            "agent_lost_after": LOST_AFTER,
        },
    ).start()
    # An agent that registers and is never heard from again: lost after LOST_AFTER seconds.
    server.client().register_agent("ui-ghost-agent", labels=["gpu"])
    agent = testing.AgentProcess(server, directory, name=f"ui-agent-{uuid.uuid4().hex[:6]}", cancel_grace=1.0).start()
    server.agent_name = agent.name
    yield server
    agent.stop()
    try:
        testing.wait_until(lambda: not testing.run_processes(agents={agent.name}), timeout=30, what="runs to exit")
    finally:
        for pid in testing.run_processes(agents={agent.name}):
            testing.kill_group(pid)
        server.stop()


@pytest.fixture(scope="module")
def keys(orch):
    client = orch.client()
    _, read = client.create_api_key("ui-agents-reader", "read")
    _, run = client.create_api_key("ui-agents-runner", "run")
    return {"admin": orch.admin_key, "read": read, "run": run}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
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


def waiting_flow(orch, directory: Path, prefix: str, tags: tuple[str, ...] = ()):
    """A registered flow whose task ``hold`` waits for ``directory/release``; (flow, release)."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    release = directory / "release"
    path = flow_file(
        directory,
        name,
        f"""
        import os
        import time

        from plait import Flow, task
        {wait_for_file_code(release)}

        @task(tags={list(tags)!r})
        def hold():
            wait_for_release()
            return 1

        @task
        def after(x):
            return x + 1

        with Flow("{name}") as flow:
            after(hold())
        """,
    )
    return register(orch, path, name), release


def wait_for_state(orch, run_id: str, state: str) -> None:
    testing.wait_until(lambda: orch.client().flow_run(run_id).state == state, timeout=60, what=f"{state} run")


def running_hold(orch, flow):
    """A run of a ``waiting_flow``, started by the agent, whose ``hold`` task is running."""
    run = orch.client().create_flow_run(flow_id=flow.id)
    testing.wait_until(
        lambda: any(t.task_slug == "hold" and t.state == "Running" for t in orch.client().task_runs(run.id)[0]),
        timeout=60,
        what="the hold task to run",
    )
    return run


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
    # The agent that ran it is named on the page (it came with the live header, no reload).
    expect(page.locator("#run-header")).to_contain_text(orch.agent_name)
    page.reload()
    expect(page.locator("#run-header")).to_contain_text(orch.agent_name)
    expect(page.locator(".kv")).to_contain_text("Ada")

    # Run again: a new run with the same parameters, run by the agent in its turn.
    first = page.url
    page.click("button[data-action=run-again]")
    expect(page).not_to_have_url(first)
    expect(page.locator("#run-header .run-state")).to_contain_text("Success")
    expect(page.locator("#logbox")).to_contain_text("hello Ada, from the agent")
    again = orch.client().flow_run(page.url.rsplit("/", 1)[1])
    assert again.parameters == {"who": "Ada"} and again.flow_id == flow.id


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


def test_the_dashboard_and_the_agents_page_show_each_agent_and_when_it_was_last_seen(page, orch, keys):
    sign_in(page, orch, keys["read"])
    live = page.locator(f'.card tr[data-agent="{orch.agent_name}"]')
    expect(live).to_contain_text("ago")
    expect(live.locator(".badge")).to_have_count(0)
    # The agent that registered and went silent is marked lost once LOST_AFTER has passed
    # (a page shows the time it was rendered at: reload until then).
    ghost = page.locator('tr[data-agent="ui-ghost-agent"]')
    reload_until(page, lambda: ghost.locator(".badge").count() == 1)
    expect(ghost).to_contain_text("lost")
    expect(ghost).to_contain_text("gpu")

    page.goto(orch.url + "/agents")
    row = page.locator(f'table.list tr[data-agent="{orch.agent_name}"]')
    expect(row).to_contain_text("local")
    expect(row.locator(".badge")).to_have_count(0)
    expect(page.locator('table.list tr[data-agent="ui-ghost-agent"] .badge')).to_have_text("lost")
    agents = requests.get(orch.url + "/agents.json", headers=bearer(keys["read"]), timeout=30).json()["agents"]
    assert {a["agent"]["name"]: a["lost"] for a in agents} == {orch.agent_name: False, "ui-ghost-agent": True}


def test_an_agents_running_count_and_a_limits_use_come_from_the_runs_under_way(page, orch, keys, tmp_path):
    tag = f"ui-tag-{uuid.uuid4().hex[:6]}"
    sign_in(page, orch, keys["admin"], "/concurrency-limits")
    page.fill("#limit-name", tag)
    page.fill("#limit-max", "2")
    page.click("form[action='/concurrency-limits/set'] button[type=submit]")
    row = page.locator("table.list tr", has_text=tag)
    expect(row.locator("td").nth(2)).to_have_text("0")
    expect(row.locator("td").nth(3)).to_have_text("2")
    assert {limit["name"]: limit["max_running"] for limit in concurrency_limits(orch)}[tag] == 2

    # A task with the tag holds one of its slots while it runs; its agent holds the run.
    flow, release = waiting_flow(orch, tmp_path, "ui_limited", tags=(tag,))
    run = running_hold(orch, flow)
    page.reload()
    expect(row.locator("td").nth(2)).to_have_text("1")
    page.goto(orch.url + "/agents")
    running = page.locator(f'table.list tr[data-agent="{orch.agent_name}"] td').nth(4)
    expect(running).to_have_text("1")

    release.touch()
    wait_for_state(orch, run.id, "Success")
    page.goto(orch.url + "/concurrency-limits")
    expect(row.locator("td").nth(2)).to_have_text("0")
    row.locator("button", has_text="Remove").click()
    expect(page.locator("table.list tr", has_text=tag)).to_have_count(0)
    assert tag not in {limit["name"] for limit in concurrency_limits(orch)}


# --- what a read key may do, and forged posts ------------------------------------------------------


def test_a_read_key_sees_no_button_that_changes_anything(page, orch, keys, tmp_path):
    flow, release = waiting_flow(orch, tmp_path, "ui_read")
    run = running_hold(orch, flow)
    try:
        # The same run page offers an admin Cancel (and a run key the run form).
        sign_in(page, orch, keys["admin"], f"/flow-runs/{run.id}")
        expect(page.locator("button[data-action=cancel]")).to_have_count(1)
        page.goto(f"{orch.url}/flows/{flow.id}")
        expect(page.locator("#run-form")).to_have_count(1)
        page.context.clear_cookies()

        sign_in(page, orch, keys["read"])
        paths = (
            "/",
            "/flows",
            f"/flows/{flow.id}",
            "/flow-runs",
            f"/flow-runs/{run.id}",
            "/agents",
            "/concurrency-limits",
        )
        for path in paths:
            page.goto(orch.url + path)
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            # The only form that posts is signing out, and no button acts on its own.
            posts = page.locator("form[method=post]")
            expect(posts).to_have_count(1)
            expect(posts.first).to_have_attribute("action", "/logout")
            expect(page.locator("button[data-action]")).to_have_count(0)
        expect(page.locator("header nav")).not_to_contain_text("API keys")
        page.goto(orch.url + "/api-keys")
        expect(page.locator(".error")).to_contain_text("scope admin")
    finally:
        release.touch()
    wait_for_state(orch, run.id, "Success")


def test_forged_and_unauthorised_posts_are_refused_and_change_nothing(page, orch, keys, tmp_path):
    flow, release = waiting_flow(orch, tmp_path, "ui_forged")
    run = running_hold(orch, flow)
    try:
        # A post carrying the session cookie but no CSRF token (what a forged cross-site form
        # would send, if SameSite did not stop the cookie) is refused; so is a wrong token.
        sign_in(page, orch, keys["admin"])
        cancel = f"{orch.url}/flow-runs/{run.id}/cancel"
        response = page.request.post(cancel, form={"x": "1"})
        assert response.status == 403 and "CSRF" in response.text()
        response = page.request.post(cancel, form={"csrf_token": "0" * 64})
        assert response.status == 403
        response = page.request.post(f"{orch.url}/flows/{flow.id}/runs", form={"x": "1"})
        assert response.status == 403

        # A read key with a valid token of its own is refused by the API's own permission check.
        session = requests.Session()
        sign_in_requests(session, orch, keys["read"])
        token = csrf_of(session, orch, f"/flow-runs/{run.id}")
        answer = session.post(cancel, data={"csrf_token": token})
        assert answer.status_code == 403
        assert orch.client().flow_run(run.id).state == "Running"
        assert orch.client().flow_runs(flow_id=flow.id)[1] == 1
    finally:
        release.touch()
    # Nothing was cancelled: the run ends as it would have.
    wait_for_state(orch, run.id, "Success")


def reload_until(page, condition, timeout: float = 60.0) -> None:
    """Reload ``page`` until ``condition()`` holds (for what a page shows as of when it was rendered)."""

    def check() -> bool:
        page.reload()
        page.wait_for_load_state()
        return condition()

    testing.wait_until(check, timeout=timeout, interval=0.5, what="the page to show it")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sign_in_requests(session: requests.Session, server, key: str) -> None:
    form = session.get(server.url + "/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)
    answer = session.post(server.url + "/login", data={"login_token": token, "api_key": key}, allow_redirects=False)
    assert answer.status_code == 303


def csrf_of(session: requests.Session, server, path: str) -> str:
    page = session.get(server.url + path).text
    return re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page).group(1)


def concurrency_limits(server) -> list[dict]:
    answer = server.graphql("{ concurrency_limits { name max_running } }")
    return answer["data"]["concurrency_limits"]
