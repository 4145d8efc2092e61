"""Logs: the batched write and the cursor-paged read."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from plait_server.api.common import plain_input
from plait_server.api.context import needs
from plait_server.data.logs import LogInput as LogRow
from plait_server.data.records import LogRecord


@strawberry.type(description="A log record of a flow run.")
class Log:
    id: strawberry.ID
    flow_run_id: strawberry.ID
    task_run_id: strawberry.ID | None
    task_slug: str | None
    map_index: int | None
    level: int = strawberry.field(description="Python's logging levels: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR.")
    logger: str
    timestamp: datetime
    message: str

    @classmethod
    def of(cls, r: LogRecord) -> Log:
        return cls(**{f: getattr(r, f) for f in cls.__annotations__})


@strawberry.type(description="Logs in order; pass `cursor` as `after` to get the next ones.")
class LogPage:
    items: list[Log]
    cursor: str | None
    has_more: bool


@plain_input
@strawberry.input
class LogInput:
    flow_run_id: strawberry.ID
    message: str
    level: int = 20
    logger: str = "plait"
    timestamp: datetime | None = None
    task_run_id: strawberry.ID | None = None
    task_slug: str | None = None
    map_index: int | None = None


@strawberry.type
class WriteLogsResult:
    count: int


@strawberry.type
class LogQueries:
    @strawberry.field(extensions=needs("read"), description="A flow run's logs, in order, up to 1,000 per page.")
    def logs(
        self,
        info: Info,
        flow_run_id: strawberry.ID,
        after: str | None = None,
        limit: int = 1000,
        task_run_id: strawberry.ID | None = None,
        min_level: int | None = None,
    ) -> LogPage:
        page = info.context.store.logs.read(
            flow_run_id, after=after, limit=limit, task_run_id=task_run_id, min_level=min_level
        )
        return LogPage(items=[Log.of(r) for r in page.items], cursor=page.cursor, has_more=page.has_more)


@strawberry.type
class LogMutations:
    @strawberry.mutation(
        extensions=needs("run", run_key=True), description="Store up to 1,000 log records in one call."
    )
    def write_run_logs(self, info: Info, logs: list[LogInput]) -> WriteLogsResult:
        for run_id in {x.flow_run_id for x in logs}:
            info.context.own_run(run_id)
        rows = [
            LogRow(
                flow_run_id=x.flow_run_id,
                message=x.message,
                level=x.level,
                logger=x.logger,
                timestamp=x.timestamp,
                task_run_id=x.task_run_id,
                task_slug=x.task_slug,
                map_index=x.map_index,
            )
            for x in logs
        ]
        return WriteLogsResult(count=info.context.store.logs.write(rows))
