"""The database: models (``models``), engines (``engine``) and migrations (``migrate``)."""
