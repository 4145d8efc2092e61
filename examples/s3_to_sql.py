"""Orders from S3 into SQL: list the order files in a bucket, load their rows, query a summary.

Uses plait-s3 and plait-sql; nothing in the flow says where S3 or the database is:

    # S3 endpoint and credentials: boto3's usual chain, or [plugins.s3] in the Plait config
    export PLAIT__PLUGINS__S3__ENDPOINT_URL=http://127.0.0.1:5000   # e.g. a moto or MinIO server
    plait run examples/s3_to_sql.py -p bucket=orders -p db=sqlite:///orders.db
    PGPASSWORD=... plait run examples/s3_to_sql.py -p db=postgresql+psycopg://shop@localhost/shop -e threads

Each object under ``prefix`` is a JSON list of orders ``{"region": ..., "amount": ...}``;
``S3List`` follows pagination, ``S3Download`` is mapped over the keys (one download per
file), the rows are flattened into one batch insert (one transaction), and the summary is a
bound-parameter query.
"""

import json

from plait_s3 import S3Download, S3List
from plait_sql import SQLBulkInsert, SQLExecute, SQLQuery

from plait import Flow, Parameter, flatten, task, unmapped

create = SQLExecute(
    "CREATE TABLE IF NOT EXISTS orders (source VARCHAR(200), region VARCHAR(20), amount INTEGER)", name="create"
)
clear = SQLExecute("DELETE FROM orders", name="clear")
load = SQLBulkInsert(table="orders", batch_size=500, name="load")
summary = SQLQuery(
    "SELECT region, COUNT(*) AS orders, SUM(amount) AS total FROM orders "
    "WHERE amount >= :min_amount GROUP BY region ORDER BY region",
    name="summary",
)


@task
def parse(raw, key):
    """The rows of one order file, each tagged with the key it came from."""
    return [{"source": key, "region": o["region"], "amount": int(o["amount"])} for o in json.loads(raw)]


@task
def report(rows, files):
    print(f"loaded {len(files)} files")
    for row in rows:
        print(f"{row['region']:<6} {row['orders']:>5} orders  total {row['total']:>7}")
    return rows


with Flow("s3-to-sql") as flow:
    bucket = Parameter("bucket", default="orders")
    db = Parameter("db", default="sqlite:///orders.db")
    keys = S3List(name="list")(prefix=Parameter("prefix", default="orders/"), bucket=bucket)
    raws = S3Download(name="download").map(key=keys, bucket=unmapped(bucket))
    rows = parse.map(raws, keys)
    ready = clear(url=db, upstream_tasks=[create(url=db)])
    loaded = load(rows=flatten(rows), url=db, upstream_tasks=[ready])
    result = summary(url=db, params={"min_amount": Parameter("min_amount", default=0)}, upstream_tasks=[loaded])
    done = report(result, keys)


if __name__ == "__main__":
    flow.run()
