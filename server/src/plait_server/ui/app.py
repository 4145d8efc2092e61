"""The web UI's routes: server-rendered pages, JSON from the same views, live updates by SSE.

Every page is a view that gathers its data from the data layer (``Store``: the same reads the
GraphQL API makes) and renders a Jinja2 template; the same URL with ``.json`` appended answers
the view's data as JSON. Pages work without JavaScript for reading; htmx (partial updates) and
the SSE extension (live states and logs) make them live.

Writes (run a flow, cancel, restart, keys, schedules, limits) execute the GraphQL API's own
mutations, in process, with the signed-in key: the same rules and the same authorisation as
any API client. Forms carry a CSRF token (``auth.py``); a ``read`` key is shown no button that
changes anything, and a post it makes anyway is refused by the mutation's permission check.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

import anyio.to_thread
import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from plait_server.data.flows import FlowFilter
from plait_server.data.keys import allows
from plait_server.data.runs import FlowRunFilter
from plait_server.data.states import FINISHED, STATE_TYPES, state_type
from plait_server.db.models import utcnow
from plait_server.errors import ApiError, BadInput, NotFound
from plait_server.ui import auth
from plait_server.ui.forms import FormError, parameter_fields, parse_parameters
from plait_server.ui.live import ChangeHub, FlowRunFeed

if TYPE_CHECKING:
    from strawberry import Schema

    from plait_server.data.records import ApiKeyRecord, FlowRecord, FlowRunRecord
    from plait_server.data.store import Store

__all__ = ["WebUI"]

logger = logging.getLogger("plait_server.ui")

STATIC = Path(__file__).parent / "static"
#: Log lines shown when a flow-run page opens (more load on demand).
FIRST_LOG_LINES = 200
#: Mapped children shown per page when a mapped task is unfolded.
CHILDREN_PAGE = 200
#: Runs per page in the flow-runs list.
RUNS_PAGE = 50
#: The biggest form body accepted (a run form with big JSON parameters fits).
MAX_FORM_BYTES = 1024 * 1024
#: How often an open flow-run page's stream looks for writes made by other server processes.
POLL_INTERVAL = 0.5
#: How often an open stream checks that its key is still valid (seconds).
REAUTHENTICATE_EVERY = 30.0
#: How often an open stream tries the database again while it does not answer (seconds).
OUTAGE_RETRY = 1.0
#: The least time between two updates a stream sends (bursts of writes are coalesced).
MIN_SEND_INTERVAL = 0.1
#: Errors that mean the database does not answer (restarting, unreachable, busy past the
#: retries): a page answers 503 and asks to try again, an open stream waits for it.
DATABASE_DOWN = (OperationalError, PoolTimeout)
UNAVAILABLE = "The server's database does not answer; try again shortly."
LEVELS = [(0, "all levels"), (10, "DEBUG and up"), (20, "INFO and up"), (30, "WARNING and up"), (40, "ERROR and up")]
LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


@dataclass(slots=True)
class Session:
    """The signed-in user: their API key (the record and the secret) and what it allows."""

    key: ApiKeyRecord
    secret: str

    @property
    def csrf(self) -> str:
        return auth.csrf_token(self.secret)

    @property
    def can_run(self) -> bool:
        return allows(self.key.scope, "run")

    @property
    def is_admin(self) -> bool:
        return allows(self.key.scope, "admin")


class ActionError(Exception):
    """A form's action was refused; shown to the user with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class WebUI:
    """The UI of one server process over ``store``; ``schema`` executes its writes."""

    def __init__(self, store: Store, schema: Schema) -> None:
        self.store = store
        self.schema = schema
        self.hub = ChangeHub(store)
        self.env = Environment(
            loader=PackageLoader("plait_server.ui", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        from plait_server import __version__

        self.env.globals.update(
            version=__version__,
            state_types=STATE_TYPES,
            levels=LEVELS,
            level_name=lambda n: LEVEL_NAMES.get(n, str(n)),
            type_of=_type_of,
            hour_delta=timedelta(hours=1),
        )
        self.env.filters.update(
            when=_when,
            ago=_ago,
            duration=_duration,
            state_class=lambda t: f"state-{(t or 'none').lower()}",
            tojson_attr=lambda v: Markup(json.dumps(v, default=str)),
            query=_query,
            ms=_ms,
        )

    # -- the routes -----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        page = self._page
        act = self._action
        return [
            Route("/", page(self.dashboard), methods=["GET"]),
            Route("/index.json", page(self.dashboard), methods=["GET"]),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", act(self.logout, "read"), methods=["POST"]),
            Route("/flows.json", page(self.flows), methods=["GET"]),
            Route("/flows", page(self.flows), methods=["GET"]),
            Route("/flows/{flow_id}.json", page(self.flow), methods=["GET"]),
            Route("/flows/{flow_id}", page(self.flow), methods=["GET"]),
            Route("/flows/{flow_id}/runs", act(self.create_run, "run"), methods=["POST"]),
            Route("/flows/{flow_id}/schedule", act(self.set_schedule, "admin"), methods=["POST"]),
            Route("/flow-runs.json", page(self.flow_runs), methods=["GET"]),
            Route("/flow-runs", page(self.flow_runs), methods=["GET"]),
            Route("/flow-runs/{run_id}.json", page(self.flow_run), methods=["GET"]),
            Route("/flow-runs/{run_id}", page(self.flow_run), methods=["GET"]),
            Route("/flow-runs/{run_id}/events", self.events, methods=["GET"]),
            Route("/flow-runs/{run_id}/logs", page(self.log_lines), methods=["GET"]),
            Route("/flow-runs/{run_id}/tasks/{slug}/children", page(self.children), methods=["GET"]),
            Route("/flow-runs/{run_id}/cancel", act(self.cancel_run, "run"), methods=["POST"]),
            Route("/flow-runs/{run_id}/restart", act(self.restart_run, "run"), methods=["POST"]),
            Route("/flow-runs/{run_id}/run-again", act(self.run_again, "run"), methods=["POST"]),
            Route("/task-runs/{task_run_id}.json", page(self.task_run), methods=["GET"]),
            Route("/task-runs/{task_run_id}", page(self.task_run), methods=["GET"]),
            Route("/agents.json", page(self.agents), methods=["GET"]),
            Route("/agents", page(self.agents), methods=["GET"]),
            Route("/api-keys.json", page(self.api_keys, "admin"), methods=["GET"]),
            Route("/api-keys", page(self.api_keys, "admin"), methods=["GET"]),
            Route("/api-keys/create", act(self.create_key, "admin"), methods=["POST"]),
            Route("/api-keys/{key_id}/revoke", act(self.revoke_key, "admin"), methods=["POST"]),
            Route("/concurrency-limits.json", page(self.limits), methods=["GET"]),
            Route("/concurrency-limits", page(self.limits), methods=["GET"]),
            Route("/concurrency-limits/set", act(self.set_limit, "admin"), methods=["POST"]),
            Route("/concurrency-limits/delete", act(self.delete_limit, "admin"), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]

    def start(self) -> None:
        self.hub.start()

    def stop(self) -> None:
        self.hub.stop()

    # -- plumbing: sessions, pages, actions -----------------------------------------------------

    def _session(self, request: Request) -> Session | None:
        """The signed-in session (a cookie; or a bearer key, for the JSON views), checked now."""
        secret = auth.session_secret(request)
        if secret is None:
            header = request.headers.get("authorization") or ""
            kind, _, value = header.partition(" ")
            secret = value.strip() if kind.lower() == "bearer" else None
        if not secret:
            return None
        key = self.store.keys.authenticate(secret)
        if key is None or key.flow_run_id is not None:
            return None  # unknown, revoked, or a run-scoped key (it is for one run's process)
        return Session(key, secret)

    def _page(self, view: Any, scope: str = "read") -> Any:
        """A GET endpoint: sign-in required; ``view(request, session)`` returns a response, or
        ``(template, context)`` whose context's ``data`` is the ``.json`` answer."""

        def endpoint(request: Request) -> Response:
            try:
                return answer(request)
            except DATABASE_DOWN as exc:
                return self._unavailable(request, exc)

        def answer(request: Request) -> Response:
            wants_json = request.url.path.endswith(".json")
            session = self._session(request)
            if session is None:
                if wants_json or request.headers.get("hx-request"):
                    return _json({"error": "Sign in: send Authorization: Bearer <API key>"}, 401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            if not allows(session.key.scope, scope):
                return self._error(request, session, 403, f"This page needs an API key with scope {scope}.")
            try:
                result = view(request, session)
            except NotFound as exc:
                return self._error(request, session, 404, exc.message)
            except ApiError as exc:
                return self._error(request, session, 400, exc.message)
            if isinstance(result, Response):
                return result
            template, context = result
            if wants_json:
                return _json(context.get("data", {}))
            return self.render(request, session, template, context)

        return endpoint

    def _action(self, action: Any, scope: str) -> Any:
        """A POST endpoint: sign-in, the CSRF token and the scope checked, then
        ``action(request, session, form)`` (on a worker thread) returns the response."""

        async def endpoint(request: Request) -> Response:
            try:
                form = await _read_form(request)
            except ActionError as exc:
                return HTMLResponse(exc.message, status_code=exc.status)
            try:
                return await answer(request, form)
            except DATABASE_DOWN as exc:
                return await anyio.to_thread.run_sync(self._unavailable, request, exc)

        async def answer(request: Request, form: dict[str, str]) -> Response:
            session = await anyio.to_thread.run_sync(self._session, request)
            if session is None:
                return HTMLResponse("Sign in first.", status_code=401)
            if not auth.csrf_valid(session.secret, form.get("csrf_token")):
                logger.warning("refused a form post to %s without a valid CSRF token", request.url.path)
                return await anyio.to_thread.run_sync(
                    partial(
                        self._error,
                        request,
                        session,
                        403,
                        "This form is missing its CSRF token or the token is not valid: reload the page and "
                        "try again. (Forms can only be sent from the Plait UI's own pages.)",
                    )
                )
            if not allows(session.key.scope, scope):
                return await anyio.to_thread.run_sync(
                    partial(self._error, request, session, 403, f"This needs an API key with scope {scope}.")
                )
            try:
                return await anyio.to_thread.run_sync(action, request, session, form)
            except ActionError as exc:
                return await anyio.to_thread.run_sync(partial(self._error, request, session, exc.status, exc.message))

        return endpoint

    def render(
        self, request: Request, session: Session | None, template: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        body = self.env.get_template(template).render(
            request=request, session=session, path=request.url.path, now=utcnow(), **context
        )
        return HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS)

    def _unavailable(self, request: Request, exc: BaseException) -> Response:
        """503: the database does not answer (nothing was changed; the page asks to try again)."""
        logger.warning("the database did not answer a web UI request for %s (503): %s", request.url.path, _reason(exc))
        return self._error(request, None, 503, UNAVAILABLE)

    def _error(self, request: Request, session: Session | None, status: int, message: str) -> Response:
        if request.url.path.endswith(".json") or request.headers.get("hx-request"):
            return _json({"error": message}, status)
        return self.render(request, session, "error.html", {"status": status, "message": message}, status)

    def mutate(self, session: Session, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Execute one of the API's mutations with the session's key; ``ActionError`` if refused."""
        from plait_server.api.context import Context

        result = self.schema.execute_sync(
            document, variable_values=variables, context_value=Context(self.store, session.key)
        )
        if result.errors:
            error = result.errors[0]
            original = error.original_error
            if isinstance(original, ApiError):
                status = {"NOT_FOUND": 404, "FORBIDDEN": 403}.get(original.code, 400)
                raise ActionError(original.message, status)
            code = (error.extensions or {}).get("code")
            if code == "FORBIDDEN":
                raise ActionError(error.message, 403)
            if isinstance(original, DATABASE_DOWN):
                raise original  # the caller answers 503: nothing was written
            if original is not None and not isinstance(original, ApiError):
                logger.error("UI action failed: %s", document.split("(")[0], exc_info=original)
                raise ActionError("The server could not do this; see its log.", 500)
            raise ActionError(error.message)
        return result.data or {}

    # -- sign in and out ------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """The sign-in page (GET) and the sign-in itself (POST: an API key)."""
        if request.method == "GET":
            return self._login_page(request, _safe_next(request.query_params.get("next")), None, 200)
        try:
            form = await _read_form(request)
        except ActionError as exc:
            return HTMLResponse(exc.message, status_code=exc.status)
        target = _safe_next(form.get("next"))
        if not auth.login_token_valid(request, form.get("login_token")):
            return self._login_page(request, target, "The sign-in form expired: try again.", 403)
        secret = (form.get("api_key") or "").strip()
        try:
            key = await anyio.to_thread.run_sync(self.store.keys.authenticate, secret) if secret else None
        except DATABASE_DOWN as exc:
            return await anyio.to_thread.run_sync(self._unavailable, request, exc)
        if key is None or key.flow_run_id is not None:
            return self._login_page(request, target, "Unknown or revoked API key.", 401)
        response = RedirectResponse(target, status_code=303)
        auth.set_session(response, request, secret)
        response.delete_cookie(auth.LOGIN_COOKIE, path="/login")
        return response

    def _login_page(self, request: Request, target: str, error: str | None, status: int) -> Response:
        token = auth.new_login_token()
        body = self.env.get_template("login.html").render(
            request=request, session=None, path="/login", now=utcnow(), next=target, error=error, login_token=token
        )
        response = HTMLResponse(body, status_code=status, headers=_PAGE_HEADERS)
        auth.set_login_cookie(response, request, token)
        return response

    def logout(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        response = RedirectResponse("/login", status_code=303)
        auth.set_session(response, request, None)
        return response

    # -- the dashboard --------------------------------------------------------------------------

    def dashboard(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        s = self.store.summaries
        now = utcnow()
        first_hour = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
        counts = s.runs_by_hour(first_hour, first_hour + timedelta(hours=24))
        hours = []
        for i in range(24):
            start = first_hour + timedelta(hours=i)
            by_type = {c.state_type: c.count for c in counts if c.hour == start}
            hours.append({"hour": start, "counts": by_type, "total": sum(by_type.values())})
        late_after = timedelta(seconds=self.store.policy.late_after)
        late, late_total = s.late_runs(late_after)
        agents = self._agents()
        day_ago = now - timedelta(hours=24)
        data = {
            "hours": hours,
            "max_per_hour": max([h["total"] for h in hours] + [1]),
            "failing_flows": s.failing_flows(now - timedelta(hours=24)),
            "late_runs": late,
            "late_total": late_total,
            "late_after": late_after.total_seconds(),
            "upcoming_runs": s.upcoming_runs(10),
            # Agents seen in the last day (the Agents page lists every one ever registered).
            "agents": [a for a in agents if a["agent"].last_seen >= day_ago],
            "agents_older": sum(1 for a in agents if a["agent"].last_seen < day_ago),
            "totals_24h": _totals(counts),
        }
        return "dashboard.html", {"data": data, **data}

    def _agents(self) -> list[dict[str, Any]]:
        """Agents, most recently seen first, with the runs each holds and whether it is lost
        (not heard from for ``agent_lost_after`` seconds)."""
        running = self.store.agents.running_counts()
        lost_after = self.store.policy.agent_lost_after
        now = utcnow()
        return [
            {"agent": a, "running": running.get(a.id, 0), "lost": (now - a.last_seen).total_seconds() > lost_after}
            for a in self.store.agents.list()
        ]

    # -- flows ----------------------------------------------------------------------------------

    def flows(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        q = request.query_params
        offset = _int(q.get("offset"), 0)
        page = self.store.flows.list(
            FlowFilter(project=q.get("project") or None, name_like=q.get("q") or None),
            order_by="NAME",
            descending=False,
            limit=100,
            offset=offset,
        )
        groups = [f.flow_group_id for f in page.items]
        last = self.store.summaries.last_runs(groups, 10)
        upcoming = self.store.summaries.next_runs(groups, 3)
        rows = [
            {
                "flow": f,
                "last_runs": list(reversed(last.get(f.flow_group_id, []))),
                "next_runs": upcoming.get(f.flow_group_id, []),
            }
            for f in page.items
        ]
        data = {"flows": rows, "total": page.total, "offset": offset, "limit": page.limit, "has_more": page.has_more}
        return "flows.html", {
            "data": _strip_flows(data),
            **data,
            "q": q.get("q") or "",
            "project": q.get("project") or "",
        }

    def flow(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        flow = self.store.flows.get(request.path_params["flow_id"])
        tasks = self.store.flows.tasks(flow.id)
        versions = self.store.flows.versions(flow.flow_group_id)
        next_times, schedule_error = _next_times(flow, 10)
        scheduled = self.store.summaries.upcoming_runs(10, flow.flow_group_id)
        recent = self.store.runs.list(FlowRunFilter(flow_group_id=flow.flow_group_id), limit=10)
        fields = parameter_fields(flow.parameters)
        data = {
            "flow": _flow_data(flow),
            "tasks": tasks,
            "versions": [_flow_data(v) for v in versions],
            "next_times": next_times,
            "scheduled_runs": scheduled,
            "recent_runs": recent.items,
            "parameters": fields,
        }
        context = {
            "data": data,
            "flow": flow,
            "tasks": tasks,
            "versions": versions,
            "next_times": next_times,
            "schedule_error": schedule_error,
            "scheduled_runs": scheduled,
            "recent_runs": recent.items,
            "fields": fields,
            "schematic": _schematic(flow, tasks),
            "form_values": {},
            "form_errors": {},
        }
        return "flow.html", context

    def create_run(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        flow = self.store.flows.get(request.path_params["flow_id"])
        fields = parameter_fields(flow.parameters)
        try:
            parameters = parse_parameters(fields, form)
        except FormError as exc:
            return self._flow_form_error(request, session, flow, form, exc.errors, None)
        labels = [x.strip() for x in (form.get("labels") or "").split(",") if x.strip()]
        variables: dict[str, Any] = {
            "input": {
                "flow_id": flow.id,
                "parameters": parameters,
                "name": (form.get("name") or "").strip() or None,
                "labels": labels or None,
                "idempotency_key": (form.get("idempotency_key") or "").strip() or None,
            }
        }
        try:
            data = self.mutate(session, CREATE_RUN, variables)
        except ActionError as exc:
            if exc.status == 400:
                return self._flow_form_error(request, session, flow, form, {}, exc.message)
            raise
        return RedirectResponse(f"/flow-runs/{data['create_flow_run']['flow_run']['id']}", status_code=303)

    def _flow_form_error(
        self,
        request: Request,
        session: Session,
        flow: FlowRecord,
        form: dict[str, str],
        errors: dict[str, str],
        message: str | None,
    ) -> Response:
        _, context = self.flow(request, session)
        context.update(form_values=form, form_errors=errors, form_message=message)
        return self.render(request, session, "flow.html", context, status=400)

    def set_schedule(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        flow = self.store.flows.get(request.path_params["flow_id"])
        active = form.get("active") == "true"
        self.mutate(session, SET_SCHEDULE, {"group": flow.flow_group_id, "active": active})
        return RedirectResponse(f"/flows/{flow.id}", status_code=303)

    # -- flow runs ------------------------------------------------------------------------------

    def flow_runs(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        q = request.query_params
        offset = max(_int(q.get("offset"), 0), 0)
        state = q.get("state") or ""
        where = FlowRunFilter(
            flow_group_id=q.get("flow") or None,
            labels=[x.strip() for x in (q.get("label") or "").split(",") if x.strip()] or None,
            scheduled_after=_time_param(q.get("after"), "after"),
            scheduled_before=_time_param(q.get("before"), "before"),
        )
        if state in STATE_TYPES:
            where.state_types = [state]
        elif state:
            where.states = [state]
        page = self.store.runs.list(where, order_by="SCHEDULED_START_TIME", limit=RUNS_PAGE, offset=offset)
        names = self.store.summaries.flow_names([r.flow_id for r in page.items])
        flows = self.store.flows.list(FlowFilter(), order_by="NAME", descending=False, limit=1000)
        data = {
            "runs": [{**_run_data(r), "flow_name": names.get(r.flow_id, ("?", 0))[0]} for r in page.items],
            "total": page.total,
            "offset": offset,
            "limit": page.limit,
            "has_more": page.has_more,
        }
        filters = {k: q.get(k) or "" for k in ("flow", "state", "label", "after", "before")}
        context = {
            "data": data,
            "runs": page.items,
            "names": names,
            "page": page,
            "filters": filters,
            "flows": flows.items,
        }
        return "flow_runs.html", context

    def flow_run(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        run_id = request.path_params["run_id"]
        s = self.store.summaries
        # The live feed's cursors first: whatever changes after them is sent again, never lost.
        state_cursor = s.state_cursor(run_id)
        log_cursor = s.log_cursor(run_id)
        run = self.store.runs.get(run_id)
        flow = self.store.flows.get(run.flow_id)
        tasks = self.store.flows.tasks(flow.id)
        groups = s.task_groups(run_id)
        q = request.query_params
        level = _int(q.get("level"), 0)
        task_filter = q.get("task") or None
        logs, more_logs = s.logs(
            run_id, limit=FIRST_LOG_LINES, min_level=level or None, task_slug=task_filter, until=log_cursor
        )
        open_slug = q.get("open")
        children: list[Any] = []
        children_total = 0
        children_offset = max(_int(q.get("children_offset"), 0), 0)
        if open_slug:
            children, children_total = s.mapped_children(run_id, open_slug, CHILDREN_PAGE, children_offset)
        agent = self._agent_name(run.agent_id)
        gantt = _gantt(run, tasks, groups)
        data = {
            "flow_run": _run_data(run),
            "flow": {"id": flow.id, "name": flow.name, "version": flow.version, "project": flow.project},
            "agent": agent,
            "task_runs": gantt["rows"],
            "logs": logs,
            "more_logs": more_logs,
            "cursors": {"state": state_cursor, "log": log_cursor},
        }
        query = {"level": level or "", "task": task_filter or ""}
        context = {
            "data": data,
            "run": run,
            "flow": flow,
            "agent": agent,
            "gantt": gantt,
            "schematic": _schematic(flow, tasks, groups),
            "logs": logs,
            "more_logs": more_logs,
            "level": level,
            "task_filter": task_filter or "",
            "task_slugs": [t.slug for t in tasks],
            "state_cursor": state_cursor,
            "log_cursor": log_cursor,
            "events_url": f"/flow-runs/{run_id}/events?" + urlencode({**query, "s": state_cursor, "l": log_cursor}),
            "logs_query": urlencode({k: v for k, v in query.items() if v}),
            "open_slug": open_slug,
            "children": children,
            "children_total": children_total,
            "children_offset": children_offset,
            "children_page": CHILDREN_PAGE,
            "finished": run.state_type in FINISHED,
        }
        return "flow_run.html", context

    def _agent_name(self, agent_id: str | None) -> str | None:
        if agent_id is None:
            return None
        try:
            return self.store.agents.get(agent_id).name
        except NotFound:
            return agent_id

    def log_lines(self, request: Request, session: Session) -> Response:
        """More log lines (a fragment for htmx, or a JSON page): ``after`` a log id, up to ``until``."""
        run_id = request.path_params["run_id"]
        q = request.query_params
        self.store.runs.get(run_id)
        level = _int(q.get("level"), 0)
        task_filter = q.get("task") or None
        after = _int(q.get("after"), 0)
        until = _int(q.get("until"), 0) or None
        logs, more = self.store.summaries.logs(
            run_id, after=after, limit=FIRST_LOG_LINES, min_level=level or None, task_slug=task_filter, until=until
        )
        if request.url.path.endswith(".json") or "application/json" in request.headers.get("accept", ""):
            return _json({"logs": logs, "has_more": more, "cursor": logs[-1].id if logs else after})
        body = self.env.get_template("_log_rows.html").render(
            logs=logs,
            more=more,
            run_id=run_id,
            until=until,
            logs_query=urlencode({k: v for k, v in {"level": level or "", "task": task_filter or ""}.items() if v}),
            level_name=self.env.globals["level_name"],
        )
        return HTMLResponse(body, headers=_NO_STORE)

    def children(self, request: Request, session: Session) -> Response:
        """One page of a mapped task's children, as Gantt rows (the unfolded part)."""
        run_id = request.path_params["run_id"]
        slug = request.path_params["slug"]
        offset = max(_int(request.query_params.get("offset"), 0), 0)
        run = self.store.runs.get(run_id)
        children, total = self.store.summaries.mapped_children(run_id, slug, CHILDREN_PAGE, offset)
        if request.headers.get("accept", "").startswith("application/json"):
            return _json({"task_runs": children, "total": total, "offset": offset})
        groups = self.store.summaries.task_groups(run_id)
        span = _span(run, groups)
        body = self.env.get_template("_children.html").render(
            run=run,
            slug=slug,
            children=children,
            total=total,
            offset=offset,
            page=CHILDREN_PAGE,
            span=span,
            bar=partial(_bar, span),
        )
        return HTMLResponse(body, headers=_NO_STORE)

    def cancel_run(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        run_id = request.path_params["run_id"]
        self.mutate(session, CANCEL_RUN, {"id": run_id})
        return RedirectResponse(f"/flow-runs/{run_id}", status_code=303)

    def restart_run(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        run_id = request.path_params["run_id"]
        self.mutate(session, RESTART_RUN, {"id": run_id})
        return RedirectResponse(f"/flow-runs/{run_id}", status_code=303)

    def run_again(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """A new run of the same flow with the same parameters (the newest version if this one is archived)."""
        run = self.store.runs.get(request.path_params["run_id"])
        flow = self.store.flows.get(run.flow_id)
        target = {"flow_id": flow.id} if not flow.archived else {"flow_group_id": flow.flow_group_id}
        variables = {"input": {**target, "parameters": run.parameters, "labels": run.labels}}
        data = self.mutate(session, CREATE_RUN, variables)
        return RedirectResponse(f"/flow-runs/{data['create_flow_run']['flow_run']['id']}", status_code=303)

    # -- live updates ---------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        """The flow run's changes as Server-Sent Events: ``states`` (JSON for the schematic and the
        Gantt), ``run`` (the run's header, HTML) and ``logs`` (new log rows, HTML).

        While the database does not answer, a stream that is open waits for it; a new one is
        refused with 503, and the page's SSE extension tries again (0.5 s, 1 s, 2 s ... 64 s)."""
        try:
            return await self._open_stream(request)
        except DATABASE_DOWN as exc:
            return await anyio.to_thread.run_sync(self._unavailable, request, exc)

    async def _open_stream(self, request: Request) -> Response:
        session = await anyio.to_thread.run_sync(self._session, request)
        if session is None:
            return Response("Sign in first.", status_code=401)
        run_id = request.path_params["run_id"]
        q = request.query_params
        state_cursor, log_cursor = _int(q.get("s"), 0), _int(q.get("l"), 0)
        resumed = request.headers.get("last-event-id", "")
        if resumed.count(":") == 1:
            state_cursor, log_cursor = (_int(x, 0) for x in resumed.split(":"))
        try:
            run = await anyio.to_thread.run_sync(self.store.runs.get, run_id)
        except NotFound as exc:
            return Response(exc.message, status_code=404)
        feed = FlowRunFeed(
            self.store,
            run_id,
            state_cursor,
            log_cursor,
            min_level=_int(q.get("level"), 0) or None,
            task_slug=q.get("task") or None,
        )
        flow = await anyio.to_thread.run_sync(self.store.flows.get, run.flow_id)
        return StreamingResponse(
            self._stream(request, session, feed, flow),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, request: Request, session: Session, feed: FlowRunFeed, flow: FlowRecord) -> Any:
        yield b"retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        last_sent = 0.0
        last_ping = last_auth = loop.time()
        key_changes = self.hub.key_changes
        outage = False
        while not self.hub.closing.is_set():
            wait = max(MIN_SEND_INTERVAL - (loop.time() - last_sent), 0)
            if wait:
                await asyncio.sleep(wait)
            try:
                changes = await anyio.to_thread.run_sync(feed.read)
                last_sent = loop.time()
                # The key again, before anything is sent: at once after a key was revoked in this
                # process, every REAUTHENTICATE_EVERY seconds otherwise (another process revoked it).
                if key_changes != self.hub.key_changes or last_sent - last_auth > REAUTHENTICATE_EVERY or outage:
                    key_changes = self.hub.key_changes
                    if await anyio.to_thread.run_sync(self.store.keys.authenticate, session.secret) is None:
                        return
                    last_auth = loop.time()
            except DATABASE_DOWN as exc:
                # Keep the page's connection and read again shortly: the database may be
                # restarting. The page gets what changed meanwhile once it answers.
                if not outage:
                    reason = _reason(exc)
                    logger.warning("live feed of flow run %s waits for the database: %s", feed.flow_run_id, reason)
                outage = True
                last_sent = loop.time()
                if last_sent - last_ping > 15:
                    yield b": keep-alive\n\n"
                    last_ping = last_sent
                if await request.is_disconnected():
                    return
                await asyncio.sleep(OUTAGE_RETRY)
                continue
            except Exception:
                logger.exception("live feed of flow run %s failed", feed.flow_run_id)
                return
            outage = False
            chunks = self._events_for(session, changes, feed, flow)
            if chunks:
                yield "".join(chunks).encode()
                last_ping = last_sent
                if changes.more_logs:
                    continue
            elif last_sent - last_ping > 15:
                yield b": keep-alive\n\n"
                last_ping = last_sent
            if await request.is_disconnected():
                return
            await self.hub.wait(POLL_INTERVAL)

    def _events_for(self, session: Session, changes: Any, feed: FlowRunFeed, flow: FlowRecord) -> list[str]:
        out = []
        event_id = f"{feed.state_cursor}:{feed.log_cursor}"
        if changes.run is not None or changes.task_runs:
            payload = {
                "run": _run_live(changes.run) if changes.run is not None else None,
                "tasks": [_task_live(t) for t in changes.task_runs],
                "counts": changes.child_counts,
            }
            out.append(_sse("states", orjson.dumps(payload).decode(), event_id))
        if changes.run is not None:
            html = self.env.get_template("_run_header.html").render(
                run=changes.run,
                flow=flow,
                session=session,
                agent=self._agent_name(changes.run.agent_id),
                finished=changes.run.state_type in FINISHED,
            )
            out.append(_sse("run", html, event_id))
        if changes.logs:
            html = self.env.get_template("_log_rows.html").render(
                logs=changes.logs, more=False, level_name=self.env.globals["level_name"]
            )
            out.append(_sse("logs", html, event_id))
        return out

    # -- task runs, agents, keys, limits --------------------------------------------------------

    def task_run(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        task_run = self.store.task_runs.get(request.path_params["task_run_id"])
        run = self.store.runs.get(task_run.flow_run_id)
        flow = self.store.flows.get(run.flow_id)
        history = self.store.task_runs.history(task_run.id)
        steps = []
        for i, h in enumerate(history):
            nxt = history[i + 1].timestamp if i + 1 < len(history) else None
            steps.append({"state": h, "lasted": (nxt - h.timestamp).total_seconds() if nxt else None})
        logs, more = self.store.summaries.logs(
            run.id, limit=1000, task_slug=task_run.task_slug, map_index=task_run.map_index
        )
        task = next((t for t in self.store.flows.tasks(flow.id) if t.slug == task_run.task_slug), None)
        data = {"task_run": task_run, "history": history, "logs": logs, "more_logs": more}
        context = {
            "data": data,
            "task_run": task_run,
            "run": run,
            "flow": flow,
            "task": task,
            "steps": steps,
            "logs": logs,
            "more_logs": more,
        }
        return "task_run.html", context

    def agents(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        agents = self._agents()
        data = {"agents": agents, "agent_lost_after": self.store.policy.agent_lost_after}
        return "agents.html", {"data": data, "agents": agents, "lost_after": self.store.policy.agent_lost_after}

    def api_keys(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        keys = self.store.keys.list()
        data = {"api_keys": keys}
        return "api_keys.html", {"data": data, "keys": keys, "created": None}

    def create_key(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        name = (form.get("name") or "").strip()
        scope = form.get("scope") or "read"
        data = self.mutate(session, CREATE_KEY, {"name": name, "scope": scope})
        created = data["create_api_key"]
        keys = self.store.keys.list()
        # The secret is shown once, in this answer only (never stored, never in a URL).
        return self.render(request, session, "api_keys.html", {"keys": keys, "created": created})

    def revoke_key(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        self.mutate(session, REVOKE_KEY, {"id": request.path_params["key_id"]})
        return RedirectResponse("/api-keys", status_code=303)

    def limits(self, request: Request, session: Session) -> tuple[str, dict[str, Any]]:
        limits = self.store.concurrency.list()
        data = {"concurrency_limits": limits}
        return "limits.html", {"data": data, "limits": limits}

    def set_limit(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        try:
            max_running = int(form.get("max_running") or "")
        except ValueError:
            raise ActionError("The limit must be a whole number.") from None
        kind = "LABEL" if form.get("kind") == "label" else "TAG"
        self.mutate(session, SET_LIMIT, {"name": (form.get("name") or "").strip(), "max": max_running, "kind": kind})
        return RedirectResponse("/concurrency-limits", status_code=303)

    def delete_limit(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        kind = "LABEL" if form.get("kind") == "label" else "TAG"
        self.mutate(session, DELETE_LIMIT, {"name": form.get("name") or "", "kind": kind})
        return RedirectResponse("/concurrency-limits", status_code=303)


# --- the mutations the UI executes (the API's own) -----------------------------------------------

CREATE_RUN = "mutation ($input: CreateFlowRunInput!) { create_flow_run(input: $input) { flow_run { id } created } }"
CANCEL_RUN = "mutation ($id: ID!) { cancel_flow_run(flow_run_id: $id) { id state } }"
RESTART_RUN = "mutation ($id: ID!) { restart_flow_run(flow_run_id: $id) { id state } }"
SET_SCHEDULE = (
    "mutation ($group: ID!, $active: Boolean!) { set_schedule_active(flow_group_id: $group, active: $active) { id } }"
)
CREATE_KEY = (
    "mutation ($name: String!, $scope: String!) { create_api_key(name: $name, scope: $scope) "
    "{ key api_key { id name scope prefix } } }"
)
REVOKE_KEY = "mutation ($id: ID!) { revoke_api_key(id: $id) { id } }"
SET_LIMIT = (
    "mutation ($name: String!, $max: Int!, $kind: LimitKind!) "
    "{ set_concurrency_limit(name: $name, max_running: $max, kind: $kind) { id } }"
)
DELETE_LIMIT = "mutation ($name: String!, $kind: LimitKind!) { delete_concurrency_limit(name: $name, kind: $kind) }"

_NO_STORE = {"Cache-Control": "no-store"}
#: Every HTML page: no framing (clickjacking), scripts from this server only, no sniffing.
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# --- helpers -------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """The first line of a database error, for the log (never a connection URL, which may hold a password)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines and "://" not in lines[0] else type(exc).__name__


async def _read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (what the UI's forms send), bounded."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ActionError("Send the form as application/x-www-form-urlencoded.", 415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ActionError("The form is too large.", 413)
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=1000))
    except (UnicodeDecodeError, ValueError):
        raise ActionError("The form could not be read.", 400) from None


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, default=_default),
        status_code=status,
        media_type="application/json",
        headers=_NO_STORE,
    )


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "__slots__") or hasattr(value, "__dict__"):
        names = getattr(value, "__slots__", None) or vars(value)
        return {n: getattr(value, n) for n in names if not n.startswith("_")}
    raise TypeError


def _sse(event: str, data: str, event_id: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\nid: {event_id}\n{lines}\n"


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _time_param(value: str | None, what: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{what}: expected a date and time such as 2024-06-01T12:00, got {value!r:.40}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _type_of(state: str) -> str:
    """A state name's type (the colour it is shown in); unknown names are shown as pending."""
    try:
        return state_type(state)
    except ApiError:
        return "PENDING"


def _totals(counts: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        out[c.state_type] = out.get(c.state_type, 0) + c.count
    return out


def _query(params: dict[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def _when(value: datetime | None, seconds: bool = True) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    delta = (utcnow() - value).total_seconds()
    future = delta < 0
    delta = abs(delta)
    if delta < 60:
        text = f"{int(delta)} s"
    elif delta < 3600:
        text = f"{int(delta // 60)} min"
    elif delta < 86400:
        text = f"{int(delta // 3600)} h"
    else:
        text = f"{int(delta // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


def _duration(start: datetime | None, end: datetime | None = None) -> str:
    if start is None:
        return ""
    seconds = ((end or utcnow()) - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _ms(value: datetime | None) -> str:
    return "" if value is None else str(int(value.timestamp() * 1000))


def _next_times(flow: FlowRecord, n: int) -> tuple[list[datetime], str | None]:
    """The flow's next ``n`` scheduled times, from its registered schedule (the core's schedules:
    the same clocks, filters and time zones the scheduler uses)."""
    if not flow.schedule:
        return [], None
    try:
        from plait.schedules import Schedule

        events = Schedule.deserialize(flow.schedule).next(n)
    except Exception as exc:  # a schedule from a newer core, say: show the flow anyway
        return [], f"The schedule cannot be read by this server ({type(exc).__name__}: {exc})"
    return [getattr(e, "start_time", e) for e in events], None


def _flow_data(flow: FlowRecord) -> dict[str, Any]:
    return {
        "id": flow.id,
        "flow_group_id": flow.flow_group_id,
        "project": flow.project,
        "name": flow.name,
        "version": flow.version,
        "schedule": flow.schedule,
        "schedule_active": flow.schedule_active,
        "parameters": flow.parameters,
        "labels": flow.labels,
        "archived": flow.archived,
        "created": flow.created,
    }


def _strip_flows(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "flows": [{**row, "flow": _flow_data(row["flow"])} for row in data["flows"]]}


def _run_data(run: FlowRunRecord) -> dict[str, Any]:
    return {
        f: getattr(run, f)
        for f in (
            "id",
            "name",
            "flow_id",
            "flow_group_id",
            "state",
            "state_type",
            "state_message",
            "scheduled_start_time",
            "start_time",
            "end_time",
            "parameters",
            "context",
            "labels",
            "agent_id",
            "run_count",
            "version",
        )
    }


def _run_live(run: FlowRunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "state": run.state,
        "state_type": run.state_type,
        "message": run.state_message,
        "start": _epoch(run.start_time),
        "end": _epoch(run.end_time),
    }


def _task_live(t: Any) -> list[Any]:
    return [
        t.id,
        t.task_slug,
        t.map_index,
        t.state,
        t.state_type,
        _epoch(t.start_time),
        _epoch(t.end_time),
        t.run_count,
    ]


def _epoch(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _schematic(flow: FlowRecord, tasks: list[Any], groups: list[Any] | None = None) -> dict[str, Any]:
    """The flow's graph for the schematic (laid out in the browser by dagre): nodes with their
    kind, mapped flag and (for a run) state; edges with their mapped flag."""
    definition = flow.definition or {}
    kinds = {t.get("slug"): str(t.get("type") or "") for t in definition.get("tasks") or [] if isinstance(t, dict)}
    by_slug = {g.slug: g for g in groups or []}
    nodes = []
    for t in tasks:
        kind = kinds.get(t.slug, "")
        node: dict[str, Any] = {
            "slug": t.slug,
            "name": t.name,
            "mapped": t.mapped,
            "kind": "parameter" if kind.endswith("Parameter") else "constant" if kind.endswith("Constant") else "task",
            "tags": t.tags,
        }
        group = by_slug.get(t.slug)
        if group is not None:
            node["state"] = group.run.state if group.run else None
            node["state_type"] = group.run.state_type if group.run else None
            node["id"] = group.run.id if group.run else None
            if group.children:
                node["children"] = group.children
                node["counts"] = group.counts
        nodes.append(node)
    edges = [
        {"from": e.get("upstream"), "to": e.get("downstream"), "mapped": bool(e.get("mapped")), "key": e.get("key")}
        for e in definition.get("edges") or []
        if isinstance(e, dict)
    ]
    return {"nodes": nodes, "edges": edges}


def _span(run: FlowRunRecord, groups: list[Any]) -> tuple[float, float]:
    """The Gantt's time axis (epoch ms): from the run's start to its end (or now)."""
    starts = [g.run.start_time for g in groups if g.run and g.run.start_time] + [
        g.first_start for g in groups if g.first_start
    ]
    ends = [g.run.end_time for g in groups if g.run and g.run.end_time] + [g.last_end for g in groups if g.last_end]
    start = run.start_time or (min(starts) if starts else None)
    end = run.end_time or (max(ends) if ends and run.state_type in FINISHED else None) or utcnow()
    if start is None:
        return (end.timestamp() * 1000, end.timestamp() * 1000 + 1)
    s, e = start.timestamp() * 1000, end.timestamp() * 1000
    return (s, max(e, s + 1))


def _bar(span: tuple[float, float], start: datetime | None, end: datetime | None) -> dict[str, float] | None:
    """Left and width (percent of the axis) of a bar from ``start`` to ``end`` (or now)."""
    if start is None:
        return None
    s0, s1 = span
    total = s1 - s0
    a = (start.timestamp() * 1000 - s0) / total * 100
    b = ((end or utcnow()).timestamp() * 1000 - s0) / total * 100
    a = min(max(a, 0.0), 100.0)
    b = min(max(b, a), 100.0)
    return {"left": round(a, 3), "width": round(max(b - a, 0.3), 3)}


def _gantt(run: FlowRunRecord, tasks: list[Any], groups: list[Any]) -> dict[str, Any]:
    """Rows for the Gantt: every task in the order of the flow's tasks (by first start, then
    slug), a mapped task's children folded into one row with their counts by state."""
    span = _span(run, groups)
    by_slug = {g.slug: g for g in groups}
    known = {t.slug: t for t in tasks}
    rows = []
    for slug, group in by_slug.items():
        r = group.run
        start = group.first_start if group.children else (r.start_time if r else None)
        if r and r.start_time and (start is None or r.start_time < start):
            start = r.start_time
        end = group.last_end if group.children else (r.end_time if r else None)
        if r and r.end_time and (end is None or r.end_time > end):
            end = r.end_time
        finished = (
            r is not None
            and r.state_type in FINISHED
            and (not group.children or sum(group.counts.values()) == group.children)
        )
        task = known.get(slug)
        rows.append(
            {
                "slug": slug,
                "name": task.name if task else slug,
                "id": r.id if r else None,
                "state": r.state if r else "Pending",
                "state_type": r.state_type if r else "PENDING",
                "start": start,
                "end": end if finished or group.children else (r.end_time if r else None),
                "bar": _bar(span, start, end if end else None),
                "children": group.children,
                "counts": dict(sorted(group.counts.items(), key=lambda kv: -kv[1])),
                "run_count": r.run_count if r else 0,
                "mapped": bool(group.children) or (task.mapped if task else False),
            }
        )
    rows.sort(key=lambda row: (row["start"] is None, row["start"] or utcnow(), row["slug"]))
    return {"rows": rows, "span": span, "bar": partial(_bar, span)}
