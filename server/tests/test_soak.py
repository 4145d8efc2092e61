"""Three scheduler replicas (``plait server scheduler``) against one PostgreSQL database, flows
on 1-second schedules: zero duplicate runs (counted with SQL), and losing a replica loses no run.

``make soak`` runs it for 5 minutes with 500 flows; ``make test`` for ``PLAIT_SOAK_SECONDS``
(default 12) with ``PLAIT_SOAK_FLOWS`` (default 200) flows: the same claims (the replicas race
for every flow at every pass, one is killed halfway), in less time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

from plait_server.testing import PLAIT, kill_group, wait_until
from sqlalchemy import func, select

from plait import Flow, task
from plait.registration import flow_metadata
from plait.schedules import IntervalSchedule

SECONDS = float(os.environ.get("PLAIT_SOAK_SECONDS", "12"))
FLOWS = int(os.environ.get("PLAIT_SOAK_FLOWS", "200"))
REPLICAS = 3


@task
def tick():
    return 1


def test_three_scheduler_replicas_create_every_run_once(postgres_server, tmp_path):
    from conftest import new_pg_database
    from plait_server.data import Store
    from plait_server.db import models
    from plait_server.db.engine import make_engine
    from plait_server.db.migrate import prepare_schema

    database = new_pg_database(postgres_server)
    store = Store(make_engine(database))
    prepare_schema(store.engine)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(FLOWS):
        with Flow(f"soak-{i}", schedule=IntervalSchedule(timedelta(seconds=1), start_date=start)) as flow:
            tick()
        store.flows.register(metadata=flow_metadata(flow), storage={"type": "module", "module": "x", "flow": flow.name})
    config = tmp_path / "config.toml"
    config.write_text("[server]\nscheduler_interval = 0.5\nheartbeat_interval = 30.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAIT__")}
    env["PLAIT_CONFIG"] = str(config)
    replicas = []
    try:
        for i in range(REPLICAS):
            log = open(tmp_path / f"replica-{i}.log", "wb")  # noqa: SIM115 - closed with the process
            replicas.append(
                (
                    subprocess.Popen(
                        [*PLAIT, "server", "scheduler", "--database", database],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        start_new_session=True,
                    ),
                    log,
                )
            )
        run_t = models.FlowRun.__table__

        def runs() -> int:
            with store.read() as conn:
                return conn.execute(select(func.count()).select_from(run_t)).scalar_one()

        wait_until(lambda: runs() >= FLOWS * 10, timeout=120, interval=0.5, what="the first pass")
        first_pass_seen = datetime.now(UTC)  # every flow's first run is due by now (+ one interval)
        deadline = time.monotonic() + SECONDS
        killed = False
        while time.monotonic() < deadline:  # the soak itself: let the replicas work
            if not killed and time.monotonic() > deadline - SECONDS / 2:
                os.kill(replicas[0][0].pid, signal.SIGKILL)  # lose a replica halfway
                killed = True
            time.sleep(0.5)
        ended = datetime.now(UTC)
        for process, _ in replicas[1:]:
            assert process.poll() is None, "a replica died on its own"
            process.send_signal(signal.SIGTERM)
        for process, log in replicas:
            process.wait(30)
            log.close()
        with store.read() as conn:
            duplicates = conn.execute(
                select(run_t.c.flow_group_id, run_t.c.scheduled_start_time, func.count())
                .group_by(run_t.c.flow_group_id, run_t.c.scheduled_start_time)
                .having(func.count() > 1)
            ).all()
            spans = conn.execute(
                select(
                    run_t.c.flow_group_id,
                    func.min(run_t.c.scheduled_start_time),
                    func.max(run_t.c.scheduled_start_time),
                    func.count(),
                ).group_by(run_t.c.flow_group_id)
            ).all()
            total = conn.execute(select(func.count()).select_from(run_t)).scalar_one()
        assert duplicates == []
        assert len(spans) == FLOWS
        for group, first, last, count in spans:
            seconds = int((last - first).total_seconds())
            assert count == seconds + 1, f"flow group {group}: {count} runs for {seconds + 1} seconds (a gap)"
            # no run was skipped at the start: the first is due no later than one interval after the
            # first pass was seen (replicas may start late on a loaded machine; that is not a gap)
            assert first <= first_pass_seen + timedelta(seconds=1) and last >= ended, (group, first, last, ended)
        print(
            f"\nsoak: {REPLICAS} replicas (one killed halfway), {FLOWS} flows, {SECONDS:g}s: "
            f"{total} runs, 0 duplicates, no gap"
        )
    finally:
        for process, log in replicas:
            if process.poll() is None:
                kill_group(process)
            log.close()
        store.dispose()
