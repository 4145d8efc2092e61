"""Sales summary with plait-sql: create a table, load rows in batches, query a summary.

Run it on a SQLite file (the default) or on any database SQLAlchemy knows::

    plait run examples/sql_sales.py
    PGPASSWORD=... plait run examples/sql_sales.py -p db=postgresql+psycopg://shop@localhost/shop -e threads

(Keep passwords off the command line: libpq reads ``PGPASSWORD``, or name the database in
``[plugins.sql.connections.NAME]`` with a ``password_secret``; see plugins/plait-sql/README.md.)

- ``create`` makes the table if it is missing (``SQLExecute``);
- ``load`` inserts the rows ``extract`` returns, ``batch_size`` at a time, in one transaction
  (``SQLBulkInsert``): a refused row leaves the table as it was;
- ``per_region`` queries a summary with a bound parameter (``SQLQuery``);
- ``product_counts`` maps one query over the products: every mapped run shares the process's
  connection pool for the URL.
"""

from plait_sql import SQLBulkInsert, SQLExecute, SQLQuery

from plait import Flow, Parameter, task, unmapped

PRODUCTS = ["tea", "cake", "scone"]


@task
def extract(n):
    """``n`` sales rows, as dicts (one key per column)."""
    regions = ["north", "south", "east", "west"]
    return [
        {"region": regions[i % len(regions)], "product": PRODUCTS[i % len(PRODUCTS)], "amount": 1 + i % 7}
        for i in range(n)
    ]


create = SQLExecute(
    "CREATE TABLE IF NOT EXISTS sales (region VARCHAR(20), product VARCHAR(20), amount INTEGER)", name="create"
)
clear = SQLExecute("DELETE FROM sales", name="clear")
load = SQLBulkInsert(table="sales", batch_size=100, name="load")
per_region = SQLQuery(
    "SELECT region, COUNT(*) AS sales, SUM(amount) AS total FROM sales "
    "WHERE amount >= :min_amount GROUP BY region ORDER BY total DESC, region",
    name="per_region",
)
product_count = SQLQuery(
    "SELECT COUNT(*) AS n FROM sales WHERE product = :product", fetch="one", row_type="tuple", name="product_count"
)


@task
def show(summary, counts):
    for row in summary:
        print(f"{row['region']:<6} {row['sales']:>4} sales  total {row['total']:>5}")
    print("per product:", dict(zip(PRODUCTS, (n for (n,) in counts), strict=True)))
    return summary


with Flow("sql-sales") as flow:
    db = Parameter("db", default="sqlite:///sales.db")
    created = create(url=db)
    cleared = clear(url=db, upstream_tasks=[created])
    loaded = load(rows=extract(Parameter("n", default=1000)), url=db, upstream_tasks=[cleared])
    summary = per_region(url=db, params={"min_amount": Parameter("min_amount", default=1)}, upstream_tasks=[loaded])
    # Mapping runs once per item of each argument: the URL is the same for all, so unmapped.
    counts = product_count.map(
        params=[{"product": p} for p in PRODUCTS], url=unmapped(db), upstream_tasks=[unmapped(loaded)]
    )
    report = show(summary, counts)


if __name__ == "__main__":
    state = flow.run()
    print(state)
