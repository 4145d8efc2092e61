"""Schema-aware fuzzing (schemathesis, GraphQL) against a real server: no 5xx, no tracebacks.

`make test` sends at least 2,000 generated requests to a server on SQLite; `make fuzz` sets
PLAIT_FUZZ_REQUESTS=10000 and PLAIT_FUZZ_BACKENDS=sqlite,postgres (PostgreSQL refuses values
SQLite takes, such as NUL characters in text).
"""

from __future__ import annotations

import os

import pytest

REQUESTS = int(os.environ.get("PLAIT_FUZZ_REQUESTS", "2000"))
BACKENDS = [b.strip() for b in os.environ.get("PLAIT_FUZZ_BACKENDS", "sqlite").split(",") if b.strip()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_generated_requests_never_get_a_5xx_or_a_traceback(server):
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.graphql import nodes

    # JSON values: strings, numbers, booleans, null (the parser reads objects from variables only).
    schemathesis.graphql.scalar(
        "JSON",
        st.one_of(
            st.text(max_size=20).map(nodes.String),
            st.integers(-10, 10).map(nodes.Int),
            st.booleans().map(nodes.Boolean),
        ),
    )
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    schema = schemathesis.graphql.from_url(f"{server.url}/graphql", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    per_operation = REQUESTS // len(operations) + 1
    session = requests.Session()
    sent = 0
    failures = []

    def fuzz(operation) -> None:
        @settings(
            max_examples=per_operation,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def send(case):
            nonlocal sent
            response = case.call(session=session, headers=headers)
            sent += 1
            if response.status_code >= 500 or "Traceback" in response.text or "INTERNAL_SERVER_ERROR" in response.text:
                failures.append((case.operation.label, response.status_code, case.body, response.text[:300]))

        send()

    # Hypothesis stops early on an operation with few distinct inputs (a query without
    # arguments); rounds go on until the whole number of requests has been sent.
    for _ in range(10):
        for operation in operations:
            fuzz(operation)
        if sent >= REQUESTS:
            break
    print(f"schemathesis sent {sent} requests over {len(operations)} operations; {len(failures)} failed")
    assert not failures, failures[:5]
    assert sent >= REQUESTS, f"only {sent} of {REQUESTS} requests were generated"
