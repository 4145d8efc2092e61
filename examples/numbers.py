"""The numbers flow: fetch a list, square each item, add them up.

Run it with ``plait run examples/numbers.py --param n=10``.
"""

from datetime import timedelta

import plait
from plait import Flow, Parameter, task, unmapped


@task(max_retries=3, retry_delay=timedelta(seconds=1))
def fetch(n):
    plait.context.logger.info("fetching %s numbers", n)
    return list(range(int(n)))


@task
def square(x, offset):
    return x * x + offset


@task
def total(xs):
    return sum(xs)


with Flow("numbers") as flow:
    n = Parameter("n", default=10)
    squares = square.map(fetch(n), offset=unmapped(1))
    result = total(squares)


if __name__ == "__main__":
    state = flow.run()
    print("total:", state.result[result].result)
