"""A Prefect 1 flow ported to Plait by changing its imports (docs/coming-from-prefect.md).

Daily sales per region: the regions are mapped, each fetch is retried on a network hiccup,
results are checkpointed to S3, a failure alerts Slack, and the flow runs every day at 06:00
London time. Only the imports (and the Slack helper's arguments) differ from the Prefect 1 flow.
"""

from datetime import timedelta

import pendulum
from plait_s3 import S3Result
from plait_slack import slack_notifier

import plait
from plait import Flow, Parameter, signals, task, unmapped
from plait.schedules import CronSchedule
from plait.secrets import Secret

# Prefect 1: slack_notifier(only_states=[Failed], webhook_secret="SLACK_WEBHOOK_URL")
alert = slack_notifier(only_states=["Failed"], webhook_url=Secret("SLACK_WEBHOOK_URL").get())

PRICES = {"eu": 12.5, "us": 10.0, "apac": 8.0}


@task
def list_regions():
    return sorted(PRICES)


@task(max_retries=2, retry_delay=timedelta(seconds=0), task_run_name="fetch-{region}-{day}")
def fetch(region, day):
    if region == "apac" and plait.context.task_run_count == 1:
        raise ConnectionError("apac endpoint timed out")  # retried, as in Prefect 1
    units = 3 if day.endswith("-01") else 2
    return {"region": region, "day": day, "revenue": units * PRICES[region]}


@task(state_handlers=[alert])
def check(sale, minimum):
    if sale["revenue"] < minimum:
        raise signals.FAIL(f"{sale['region']} sold only {sale['revenue']:.2f} on {sale['day']}")
    return sale


@task(state_handlers=[alert])
def report(sales):
    lines = [f"{s['region']}: {s['revenue']:.2f}" for s in sales]
    plait.context.logger.info("daily sales: %s", ", ".join(lines))
    return sum(s["revenue"] for s in sales)


schedule = CronSchedule("0 6 * * *", start_date=pendulum.datetime(2026, 1, 1, tz="Europe/London"))

with Flow("daily-sales", schedule=schedule, result=S3Result(bucket="sales-results")) as flow:
    day = Parameter("day")  # no default: required, as in Prefect 1
    minimum = Parameter("minimum", default=10.0)
    sales = fetch.map(list_regions(), day=unmapped(day))
    checked = check.map(sales, minimum=unmapped(minimum))
    total = report(checked)

if __name__ == "__main__":
    flow.run()  # on the schedule; `plait run examples/prefect_port.py --param day=...` runs once
