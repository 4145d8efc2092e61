"""Daily orders: retries, mapping over mapped results, a skip, a trigger and a state handler.

Run it with ``plait run examples/orders.py --param days=4`` (add ``--executor threads`` to
fetch the days concurrently).

- ``fetch`` is mapped over the days; the fetch for day 2 fails once with a network error
  and succeeds on its retry (``max_retries``);
- ``revenue`` is mapped over ``fetch``'s children: child ``i`` runs as soon as fetch ``i``
  finished (depth-first), not after every fetch;
- a day without orders raises ``SKIP``;
- ``report`` uses the ``all_finished`` trigger, so it runs even if a day failed;
- ``log_failures`` is a state handler that logs every failed task run.
"""

from datetime import timedelta

import plait
from plait import Flow, Parameter, signals, task, triggers

ORDERS = {1: [12.5, 30.0], 2: [8.0], 3: [], 4: [99.9, 0.1, 5.0]}


def log_failures(task, old_state, new_state):
    if new_state.is_failed():
        plait.get_logger("orders").warning("%s failed: %s", task.name, new_state.message)


@task
def list_days(days):
    return list(range(1, days + 1))


@task(max_retries=2, retry_delay=timedelta(seconds=0.1), state_handlers=[log_failures])
def fetch(day):
    if day == 2 and plait.context.task_run_count == 1:
        raise ConnectionError("network hiccup")  # the retry succeeds
    return ORDERS.get(day, [])


@task
def revenue(orders):
    if not orders:
        raise signals.SKIP("no orders that day")
    return round(sum(orders), 2)


@task(trigger=triggers.all_finished)
def report(totals):
    # a skipped day's item is its SKIP signal, a failed day's its error (as in Prefect 1)
    days = [t for t in totals if not isinstance(t, BaseException)]
    plait.context.logger.info("%d days with orders, revenue %.2f", len(days), sum(days))
    return round(sum(days), 2)


with Flow("orders") as flow:
    days = Parameter("days", default=4)
    totals = revenue.map(fetch.map(list_days(days)))
    report(totals)


if __name__ == "__main__":
    state = flow.run()
    print("revenue:", state.result[flow.get_tasks(name="report")[0]].result)
