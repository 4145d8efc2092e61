"""The alerts flow: fetch pages, some of which fail; the run fails and alerts once.

Nothing in it mentions Slack, webhooks or metrics: with plait-slack, plait-http and
plait-metrics installed and configured, every failing run alerts and is counted. For example::

    # alerts.toml
    [plugins.metrics]
    pushgateway = "http://127.0.0.1:9091"

    [plugins.slack]
    webhook_url_secret = "SLACK_WEBHOOK_URL"

    [plugins.http.webhook]
    url_secret = "ALERT_WEBHOOK_URL"
    signing_key_secret = "ALERT_WEBHOOK_KEY"

    $ PLAIT_CONFIG=alerts.toml SLACK_WEBHOOK_URL=... ALERT_WEBHOOK_URL=... ALERT_WEBHOOK_KEY=... \\
        plait run examples/alerts.py --param pages=50

One Slack message and one webhook document per run, however many pages fail, and the run's
counters and durations in the Pushgateway.
"""

from plait import Flow, Parameter, task


@task
def list_pages(pages):
    return list(range(int(pages)))


@task
def fetch(page):
    if page % 5 == 0:
        raise ValueError(f"page {page} is gone")
    return page


@task
def count(results):
    return len(results)


with Flow("alerts") as flow:
    pages = Parameter("pages", default=20)
    total = count(fetch.map(list_pages(pages)))


if __name__ == "__main__":
    state = flow.run()
    print("state:", state.name)
