"""The web UI in a real headless Chromium (Debian's, /usr/bin/chromium, driven by Playwright)
against a real ``plait server start`` process.

One server and one browser serve the whole module; each test signs in in a context of its own
(a fresh profile: its own cookies). Nothing waits by sleeping: Playwright's ``expect`` waits for
the condition the test is about (a node turning green, a log line appearing).
"""

from __future__ import annotations

import re

import pytest
import requests
from conftest import ServerProcess
from playwright.sync_api import expect, sync_playwright
from uibrowser import WAIT_MS, launch, sign_in

from plait import Flow, Parameter, task
from plait.registration import flow_metadata


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ui-server")
    server = ServerProcess(f"sqlite:///{directory / 'server.db'}", directory).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def keys(ui_server):
    client = ui_server.client()
    _, read = client.create_api_key("ui-reader", "read")
    _, run = client.create_api_key("ui-runner", "run")
    return {"admin": ui_server.admin_key, "read": read, "run": run}


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(WAIT_MS)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    # What the page's Content-Security-Policy refused would be a broken feature.
    p.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield p
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@task
def double(x):
    return 2 * x


@task
def add(x, y):
    return x + y


def register(server, name: str):
    """A flow with a mapped task, a required parameter and an optional one, registered."""
    with Flow(name) as flow:
        count = Parameter("count")
        offset = Parameter("offset", default=1)
        doubled = double.map([1, 2, 3])
        add(count, offset)
        add(doubled, offset)
    registered = server.client().register_flow(metadata=flow_metadata(flow), storage={"type": "none"})
    TASK_COUNTS[registered.id] = len(flow_metadata(flow)["tasks"])
    return registered


TASK_COUNTS: dict[str, int] = {}


def running_run(server, flow_id: str, **parameters):
    """A flow run moved to Running through the API (what an agent's process does)."""
    client = server.client()
    run = client.create_flow_run(flow_id=flow_id, parameters=parameters or {"count": 1})
    graphql(
        server,
        "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { ok } }",
        {
            "s": [
                {"flow_run_id": run.id, "version": 1, "state": {"type": "Submitted"}},
                {"flow_run_id": run.id, "version": 2, "state": {"type": "Running"}},
            ]
        },
    )
    return run


def graphql(server, query: str, variables: dict) -> dict:
    answer = server.graphql(query, variables)
    assert not answer.get("errors"), answer
    return answer["data"]


def task_states(server, run_id: str, items: list[tuple[str, int, int, str]]) -> None:
    """Write task-run states through the API: ``(slug, map_index, version, state)``."""
    graphql(
        server,
        "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { ok error { message } } }",
        {
            "s": [
                {"flow_run_id": run_id, "task_slug": slug, "map_index": index, "version": version, "state": {"type": s}}
                for slug, index, version, s in items
            ]
        },
    )


# --- signing in ----------------------------------------------------------------------------------


def test_signing_in_needs_a_valid_key_and_keeps_it_in_an_httponly_strict_cookie(page, ui_server, keys):
    page.goto(ui_server.url + "/flows")
    expect(page).to_have_url(re.compile(r"/login\?next=/flows"))
    page.fill("#api_key", "plait_not-a-key")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Unknown or revoked API key")

    page.fill("#api_key", keys["admin"])
    page.click("form[action='/login'] button[type=submit]")
    expect(page).to_have_url(ui_server.url + "/flows")
    expect(page.locator("header .who")).to_contain_text("admin")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "plait_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # Page scripts cannot read it.
    assert "plait_session" not in page.evaluate("document.cookie")

    page.click("header form[action='/logout'] button")
    expect(page).to_have_url(ui_server.url + "/login")
    page.goto(ui_server.url + "/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_a_revoked_key_is_signed_out_at_once(page, ui_server):
    client = ui_server.client()
    key_id, secret = client.create_api_key("soon-revoked", "read")
    sign_in(page, ui_server, secret)
    client.revoke_api_key(key_id)
    page.goto(ui_server.url + "/flows")
    expect(page).to_have_url(re.compile(r"/login"))


def test_an_open_live_stream_stops_when_its_key_is_revoked(ui_server):
    flow = register(ui_server, "ui-stream-revoked")
    run = running_run(ui_server, flow.id)
    client = ui_server.client()
    key_id, secret = client.create_api_key("stream-reader", "read")
    headers = {"Authorization": f"Bearer {secret}"}
    cursors = requests.get(f"{ui_server.url}/flow-runs/{run.id}.json", headers=headers, timeout=30).json()["cursors"]
    url = f"{ui_server.url}/flow-runs/{run.id}/events?s={cursors['state']}&l={cursors['log']}"
    with requests.get(url, headers=headers, stream=True, timeout=(10, 60)) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == b"retry: 1000"
        # While the key is valid, a state streams in.
        task_states(ui_server, run.id, [("add", -1, 0, "Running")])
        seen = b""
        while b'"Running"' not in seen:
            seen += next(lines) + b"\n"
        # Revoked: the stream sends nothing more (not the state written next) and ends.
        client.revoke_api_key(key_id)
        task_states(ui_server, run.id, [("add", -1, 1, "Success")])
        rest = b"\n".join(lines)
    assert b"event:" not in rest, rest
    # Its page reconnecting is refused.
    assert requests.get(url, headers=headers, timeout=30).status_code == 401


# --- pages ---------------------------------------------------------------------------------------


def test_every_page_renders_with_its_data(page, ui_server, keys):
    flow = register(ui_server, "ui-pages")
    run = running_run(ui_server, flow.id, count=7)
    task_states(ui_server, run.id, [("double", -1, 0, "Running"), ("double", 0, 0, "Running")])
    sign_in(page, ui_server, keys["admin"])
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator(".hours .hour")).to_have_count(24)

    page.goto(ui_server.url + "/flows")
    expect(page.locator("table.list")).to_contain_text("ui-pages")

    page.goto(f"{ui_server.url}/flows/{flow.id}")
    # The schematic, laid out by dagre: one node per task, the mapped one stacked.
    expect(page.locator("#schematic svg g.node")).to_have_count(TASK_COUNTS[flow.id])
    expect(page.locator('#schematic g.node.mapped[data-slug="double"]')).to_have_count(1)
    # The run form: the required parameter marked, the optional one prefilled with its default.
    expect(page.locator("label[for='param-count'] .required")).to_have_count(1)
    expect(page.locator("#param-offset")).to_have_value("1")

    page.goto(ui_server.url + "/flow-runs")
    expect(page.locator("table.list")).to_contain_text(run.name)

    page.goto(f"{ui_server.url}/flow-runs/{run.id}")
    expect(page.locator("#run-header")).to_contain_text("Running")
    expect(page.locator(".kv")).to_contain_text("7")
    expect(page.locator('.gantt .row.parent[data-slug="double"]')).to_contain_text("Running 1")

    headings = {"/agents": "Agents", "/concurrency-limits": "Concurrency limits", "/api-keys": "API keys"}
    for path, heading in headings.items():
        page.goto(ui_server.url + path)
        expect(page.locator("h1")).to_have_text(heading)


def test_the_run_form_starts_a_run_with_typed_parameters(page, ui_server, keys):
    flow = register(ui_server, "ui-form")
    sign_in(page, ui_server, keys["run"], f"/flows/{flow.id}")
    # A missing required parameter is refused by the browser; a bad number by the server.
    page.fill("#param-offset", "")
    page.fill("#param-count", "41")
    page.click("#run-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/flow-runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".kv")).to_contain_text("41")
    stored = ui_server.client().flow_run(run_id)
    # The value typed is sent as a number (its type comes from the default), the empty optional
    # parameter is left to the flow's default.
    assert stored.parameters == {"count": 41}


def test_a_state_written_through_the_api_appears_live_on_an_open_flow_run_page(page, ui_server, keys):
    flow = register(ui_server, "ui-live")
    run = running_run(ui_server, flow.id)
    sign_in(page, ui_server, keys["read"], f"/flow-runs/{run.id}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    node = page.locator('#schematic g.node[data-slug="add"]')
    expect(node).to_have_count(1)

    task_states(ui_server, run.id, [("add", -1, 0, "Running")])
    expect(node).to_have_class(re.compile(r"\bstate-running\b"))
    expect(page.locator('.gantt .row.parent[data-slug="add"] .st')).to_contain_text("Running")

    task_states(ui_server, run.id, [("add", -1, 1, "Success")])
    expect(node).to_have_class(re.compile(r"\bstate-success\b"))

    # Mapped children: counted under their folded parent, live.
    task_states(ui_server, run.id, [("double", i, 0, "Running") for i in range(3)])
    expect(page.locator('.gantt .row.parent[data-slug="double"] .st')).to_contain_text("Running 3")
    task_states(ui_server, run.id, [("double", i, 1, "Success") for i in range(2)])
    expect(page.locator('.gantt .row.parent[data-slug="double"] .st')).to_contain_text("Success 2")
    # The task became mapped while the page was open: it unfolds all the same.
    page.locator('.gantt .row.parent[data-slug="double"] a.fold').click()
    expect(page.locator('.gantt .children[data-slug="double"] .row.child')).to_have_count(3)

    # A log line streams in, and the flow run's own state changes the header.
    line = {"flow_run_id": run.id, "message": "hello from the live test", "task_slug": "add"}
    ui_server.client().write_run_logs([line])
    expect(page.locator("#log-live")).to_contain_text("hello from the live test")
    graphql(
        ui_server,
        "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { ok } }",
        {"s": [{"flow_run_id": run.id, "version": 3, "state": {"type": "Failed", "message": "it broke"}}]},
    )
    expect(page.locator("#run-header")).to_contain_text("it broke")


def test_mapped_children_unfold_on_click_and_page(page, ui_server, keys):
    flow = register(ui_server, "ui-fold")
    run = running_run(ui_server, flow.id)
    task_states(ui_server, run.id, [("double", -1, 0, "Mapped")] + [("double", i, 0, "Running") for i in range(3)])
    sign_in(page, ui_server, keys["read"], f"/flow-runs/{run.id}")
    parent = page.locator('.gantt .row.parent[data-slug="double"]')
    expect(parent.locator(".st")).to_contain_text("Running 3")
    children = page.locator('.gantt .children[data-slug="double"] .row.child')
    expect(children).to_have_count(0)
    parent.locator("a.fold").click()
    expect(children).to_have_count(3)
    expect(children.nth(2)).to_contain_text("double[2]")
    # A child's state streams into its unfolded row too.
    task_states(ui_server, run.id, [("double", 2, 1, "Success")])
    expect(children.nth(2).locator(".st")).to_contain_text("Success")
    parent.locator("a.fold").click()
    expect(page.locator('.gantt .children[data-slug="double"]')).to_be_hidden()


def test_the_cancel_button_cancels_a_running_run(page, ui_server, keys):
    flow = register(ui_server, "ui-cancel")
    run = running_run(ui_server, flow.id)
    sign_in(page, ui_server, keys["run"], f"/flow-runs/{run.id}")
    page.click("button[data-action=cancel]")
    expect(page.locator("#run-header .run-state")).to_contain_text("Cancelling")
    assert ui_server.client().flow_run(run.id).state == "Cancelling"


def test_a_bad_value_in_the_run_form_is_explained_and_the_form_keeps_what_was_typed(page, ui_server, keys):
    with Flow("ui-form-json") as flow:
        add(Parameter("items", default=[1, 2]), Parameter("scale", default=2))
    registered = ui_server.client().register_flow(metadata=flow_metadata(flow), storage={"type": "none"})
    sign_in(page, ui_server, keys["run"], f"/flows/{registered.id}")
    page.fill("#param-items", "[1, 2,")
    page.fill("#param-scale", "3")
    page.click("#run-form button[type=submit]")
    expect(page.locator(".field.invalid")).to_contain_text("expected JSON")
    expect(page.locator("#param-items")).to_have_value("[1, 2,")
    expect(page.locator("#param-scale")).to_have_value("3")
    # Nothing was created.
    assert ui_server.client().flow_runs(flow_id=registered.id)[1] == 0


def test_an_admin_creates_a_key_sees_it_once_and_revokes_it(page, ui_server, keys):
    sign_in(page, ui_server, keys["admin"], "/api-keys")
    page.fill("#key-name", "made-in-the-ui")
    page.select_option("#key-scope", "read")
    page.click("form[action='/api-keys/create'] button[type=submit]")
    secret = page.locator("#new-key").inner_text().strip()
    assert secret.startswith("plait_")
    headers = {"Authorization": f"Bearer {secret}"}
    assert requests.get(ui_server.url + "/flows.json", headers=headers, timeout=30).status_code == 200
    # Shown once: the list never shows it again.
    page.goto(ui_server.url + "/api-keys")
    expect(page.locator("body")).not_to_contain_text(secret)
    row = page.locator("table.list tr", has_text="made-in-the-ui")
    row.locator("button", has_text="Revoke").click()
    expect(page.locator("table.list tr", has_text="made-in-the-ui")).to_contain_text("revoked")
    assert requests.get(ui_server.url + "/flows.json", headers=headers, timeout=30).status_code == 401


def test_an_admin_pauses_and_resumes_a_schedule(page, ui_server, keys):
    from datetime import timedelta

    from plait.schedules import IntervalSchedule

    with Flow("ui-schedule", schedule=IntervalSchedule(interval=timedelta(hours=1))) as flow:
        double(Parameter("x", default=1))
    registered = ui_server.client().register_flow(metadata=flow_metadata(flow), storage={"type": "none"})
    sign_in(page, ui_server, keys["admin"], f"/flows/{registered.id}")
    expect(page.locator("ol.times li")).to_have_count(10)
    page.get_by_role("button", name="Pause the schedule").click()
    expect(page.get_by_role("button", name="Turn the schedule on")).to_be_visible()
    assert not schedule_active(ui_server, registered.id)
    page.get_by_role("button", name="Turn the schedule on").click()
    expect(page.get_by_role("button", name="Pause the schedule")).to_be_visible()
    assert schedule_active(ui_server, registered.id)


def schedule_active(server, flow_id: str) -> bool:
    return graphql(server, "query($id: ID!) { flow(id: $id) { schedule_active } }", {"id": flow_id})["flow"][
        "schedule_active"
    ]


# --- without JavaScript --------------------------------------------------------------------------


def test_pages_read_without_javascript(browser, ui_server, keys):
    flow = register(ui_server, "ui-nojs")
    run = running_run(ui_server, flow.id)
    task_states(ui_server, run.id, [("double", -1, 0, "Mapped")] + [("double", i, 0, "Running") for i in range(3)])
    ui_server.client().write_run_logs([{"flow_run_id": run.id, "message": "a line without js"}])
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        sign_in(page, ui_server, keys["read"], f"/flows/{flow.id}")
        # No schematic without JavaScript, but the same structure as a table.
        expect(page.locator("#schematic table.fallback")).to_contain_text("double")
        page.goto(f"{ui_server.url}/flow-runs/{run.id}")
        expect(page.locator("#log-lines")).to_contain_text("a line without js")
        page.click('.gantt .row.parent[data-slug="double"] a.fold')
        expect(page.locator('.gantt .children[data-slug="double"] .row.child')).to_have_count(3)
    finally:
        context.close()


# --- JSON from the same views ----------------------------------------------------------------------


def test_every_page_answers_json_with_a_key_and_401_without(ui_server, keys):
    flow = register(ui_server, "ui-json")
    run = running_run(ui_server, flow.id, count=3)
    headers = {"Authorization": f"Bearer {keys['read']}"}
    for path in (
        "/index.json",
        "/flows.json",
        f"/flows/{flow.id}.json",
        "/flow-runs.json",
        f"/flow-runs/{run.id}.json",
    ):
        assert requests.get(ui_server.url + path, timeout=30).status_code == 401
        answer = requests.get(ui_server.url + path, headers=headers, timeout=30)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert answer.headers["content-type"].startswith("application/json")
    data = requests.get(f"{ui_server.url}/flow-runs/{run.id}.json", headers=headers, timeout=30).json()
    assert data["flow_run"]["parameters"] == {"count": 3} and data["flow_run"]["state"] == "Running"
    assert requests.get(f"{ui_server.url}/flow-runs/nope.json", headers=headers, timeout=30).status_code == 404
    # An admin page is refused to a read key, in JSON as in HTML.
    assert requests.get(ui_server.url + "/api-keys.json", headers=headers, timeout=30).status_code == 403


# --- several server processes on one PostgreSQL ----------------------------------------------------


def test_a_state_written_through_another_server_process_appears_live(browser, tmp_path, request):
    """Two ``plait server start`` on one PostgreSQL database: a page open on the first shows a
    state written through the second (the stream polls the database, not only its own writes)."""
    from conftest import new_pg_database

    database = new_pg_database(request.getfixturevalue("postgres_server"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = ServerProcess(database, tmp_path / "a").start()
    second = ServerProcess(database, tmp_path / "b")
    # One database, one set of keys: the second server finds the first one's admin key.
    (tmp_path / "b" / "config.toml").write_text(f'[server]\napi_key = "{first.admin_key}"\n')
    try:
        second.start()
        flow = register(second, "ui-two-servers")
        run = running_run(second, flow.id)
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        try:
            sign_in(page, first, first.admin_key, f"/flow-runs/{run.id}")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            task_states(second, run.id, [("add", -1, 0, "Running")])
            expect(page.locator('#schematic g.node[data-slug="add"]')).to_have_class(re.compile(r"\bstate-running\b"))
            second.client().write_run_logs([{"flow_run_id": run.id, "message": "written through the other server"}])
            expect(page.locator("#log-live")).to_contain_text("written through the other server")
        finally:
            context.close()
    finally:
        second.stop()
        first.stop()


def test_a_database_outage_answers_503_and_an_open_page_goes_on_live_once_it_is_back(browser, tmp_path):
    from plait.testing import PostgresServer, PostgresUnavailable

    try:
        postgres = PostgresServer().start()
    except PostgresUnavailable as exc:  # pragma: no cover - a machine without PostgreSQL
        pytest.skip(str(exc))
    server = ServerProcess(postgres.url, tmp_path)
    context = None
    try:
        server.start()
        flow = register(server, "ui-outage")
        run = running_run(server, flow.id)
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        sign_in(page, server, server.admin_key, f"/flow-runs/{run.id}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        token = page.locator("form[action$='/cancel'] input[name=csrf_token]").get_attribute("value")

        postgres.halt()
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        answer = requests.get(f"{server.url}/flows", headers=headers, timeout=60)
        assert answer.status_code == 503 and "database does not answer" in answer.text
        answer = requests.get(f"{server.url}/flows.json", headers=headers, timeout=60)
        assert answer.status_code == 503 and "database does not answer" in answer.json()["error"]
        # A button pressed meanwhile is answered the same way, and changes nothing.
        answer = page.request.post(f"{server.url}/flow-runs/{run.id}/cancel", form={"csrf_token": token})
        assert answer.status == 503 and "try again shortly" in answer.text()

        postgres.resume()
        task_states(server, run.id, [("add", -1, 0, "Running")])
        # The page left open goes on live, without a reload.
        expect(page.locator('#schematic g.node[data-slug="add"]')).to_have_class(re.compile(r"\bstate-running\b"))
        assert server.client().flow_run(run.id).state == "Running"
        # No request failed with an internal error on the way (the scheduler may log its own).
        log = server.log.read_text()
        assert "Exception in ASGI application" not in log and "UI action failed" not in log
        assert "the database did not answer a web UI request" in log
    finally:
        if context is not None:
            context.close()
        server.stop()
        postgres.stop()


def test_the_flow_runs_list_filters_by_flow_state_label_and_time_and_pages(ui_server, keys):
    flow = register(ui_server, "ui-filters")
    client = ui_server.client()
    tagged = [client.create_flow_run(flow_id=flow.id, parameters={"count": i}, labels=["nightly"]) for i in range(3)]
    client.create_flow_run(flow_id=flow.id, parameters={"count": 9}, labels=["adhoc"])
    running = running_run(ui_server, flow.id)
    headers = {"Authorization": f"Bearer {keys['read']}"}

    def ids(**query) -> set[str]:
        answer = requests.get(ui_server.url + "/flow-runs.json", params=query, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        return {r["id"] for r in answer.json()["runs"]}

    group = flow.flow_group_id
    assert ids(flow=group, label="nightly") == {r.id for r in tagged}
    assert ids(flow=group, state="RUNNING") == {running.id}
    assert ids(flow=group, state="Running") == {running.id}
    assert ids(flow=group, before="2000-01-01T00:00") == set()
    assert len(ids(flow=group, after="2000-01-01T00:00")) == 5
    first = requests.get(ui_server.url + "/flow-runs.json", params={"flow": group}, headers=headers, timeout=30).json()
    assert first["total"] == 5 and first["offset"] == 0
    second = requests.get(
        ui_server.url + "/flow-runs.json", params={"flow": group, "offset": 4}, headers=headers, timeout=30
    ).json()
    assert len(second["runs"]) == 1 and not second["has_more"]
    # A bad time is a clear 400, not a server error.
    answer = requests.get(ui_server.url + "/flow-runs.json", params={"after": "yesterday"}, headers=headers, timeout=30)
    assert answer.status_code == 400 and "after" in answer.json()["error"]


def test_the_follow_switch_keeps_the_newest_log_line_in_view_and_off_leaves_the_reader_where_they_are(
    page, ui_server, keys
):
    flow = register(ui_server, "ui-follow")
    run = running_run(ui_server, flow.id)
    client = ui_server.client()
    sign_in(page, ui_server, keys["read"], f"/flow-runs/{run.id}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#follow")).to_be_checked()  # on for a run under way
    logbox = page.locator("#logbox")

    client.write_run_logs([{"flow_run_id": run.id, "message": f"first batch {i}"} for i in range(80)])
    expect(page.locator("#log-live")).to_contain_text("first batch 79")
    assert logbox.evaluate("b => b.scrollHeight > b.clientHeight && b.scrollHeight - b.scrollTop - b.clientHeight < 2")

    page.uncheck("#follow")
    logbox.evaluate("b => { b.scrollTop = 0; }")
    client.write_run_logs([{"flow_run_id": run.id, "message": f"second batch {i}"} for i in range(80)])
    expect(page.locator("#log-live")).to_contain_text("second batch 79")
    assert logbox.evaluate("b => b.scrollTop") == 0


def test_logs_open_with_the_first_200_lines_and_load_more_on_demand_filtered(page, ui_server, keys):
    flow = register(ui_server, "ui-logs")
    run = running_run(ui_server, flow.id)
    client = ui_server.client()
    client.write_run_logs(
        [
            {"flow_run_id": run.id, "message": f"line {i}", "task_slug": "add", "level": 40 if i % 10 == 0 else 20}
            for i in range(450)
        ]
    )
    sign_in(page, ui_server, keys["read"], f"/flow-runs/{run.id}")
    lines = page.locator("#log-lines tr[data-id]")
    expect(lines).to_have_count(200)
    page.get_by_role("link", name="Load the next lines").click()
    expect(lines).to_have_count(400)
    page.get_by_role("link", name="Load the next lines").click()
    expect(lines).to_have_count(450)
    expect(page.get_by_role("link", name="Load the next lines")).to_have_count(0)
    expect(lines.last).to_contain_text("line 449")
    # ERROR and up: one line in ten.
    page.select_option("select[name=level]", "40")
    page.click("#logs form button[type=submit]")
    expect(lines).to_have_count(45)
    expect(lines.first).to_contain_text("ERROR")
