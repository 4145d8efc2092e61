"""API keys: created (shown once), stored as sha256 hashes, scoped, revocable.

Scopes are ordered: ``read`` < ``run`` < ``admin``; a key may do what its scope and the ones
below allow. A key is ``plait_`` + 43 URL-safe characters (256 random bits), so a fast hash is
the right one: nothing is gained by a slow password hash on a secret nobody can guess.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from plait_server.data.common import check_text, new_id
from plait_server.data.driver import Driver
from plait_server.data.records import ApiKeyRecord
from plait_server.db import models
from plait_server.db.models import utcnow
from plait_server.errors import BadInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from plait_server.data.store import Store

__all__ = ["KEY_PREFIX", "SCOPES", "ApiKeys", "allows", "revoke_run_tokens"]

key_t = models.ApiKey.__table__

#: The scopes, weakest first.
SCOPES = ("read", "run", "admin")
KEY_PREFIX = "plait_"
#: ``last_used`` is written at most this often per key (seconds), so reads stay reads.
LAST_USED_EVERY = 60.0


def allows(scope: str, needed: str) -> bool:
    """Whether a key of ``scope`` may do what needs ``needed``."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeys:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._last_written: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self, name: str, scope: str) -> tuple[ApiKeyRecord, str]:
        """A new key: ``(record, secret)``. The secret is shown only now; only its hash is kept."""
        name = check_text(name, "name", 200)
        if scope not in SCOPES:
            raise BadInput(f"scope must be one of {', '.join(SCOPES)}, got {scope!r:.40}", field="scope")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": new_id(),
            "name": name,
            "prefix": secret[:12],
            "key_hash": hash_key(secret),
            "scope": scope,
            "created": utcnow(),
            "revoked": None,
            "last_used": None,
        }
        self.store.write(lambda conn: conn.execute(key_t.insert(), row))
        self.store.changed("api_key", [row["id"]])
        return self.get(row["id"]), secret

    def create_run_token(self, conn: Connection, flow_run_id: str, agent_name: str) -> str:
        """A run-scoped key for one flow run's process, inside the caller's transaction.

        It has scope ``run`` but may only read and report ``flow_run_id``; the server revokes it
        when the run stops being under way (finished, rescheduled or restarted), so a process
        that lost its run can no longer write to it.
        """
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        conn.execute(
            key_t.insert(),
            {
                "id": new_id(),
                "name": f"flow run {flow_run_id} (claimed by {agent_name})"[:200],
                "prefix": secret[:12],
                "key_hash": hash_key(secret),
                "scope": "run",
                "created": utcnow(),
                "revoked": None,
                "last_used": None,
                "flow_run_id": flow_run_id,
            },
        )
        return secret

    def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key: from the next request on, it is refused."""

        def write(conn: Connection) -> None:
            found = conn.execute(select(key_t.c.revoked).where(key_t.c.id == key_id)).first()
            if found is None:
                raise NotFound(f"No API key with id {key_id!r}", id=key_id)
            if found.revoked is None:
                conn.execute(update(key_t).where(key_t.c.id == key_id).values(revoked=utcnow()))

        self.store.write(write)
        self.store.changed("api_key", [key_id])
        return self.get(key_id)

    def get(self, key_id: str) -> ApiKeyRecord:
        with self.store.read() as conn:
            row = conn.execute(_select().where(key_t.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"No API key with id {key_id!r}", id=key_id)
        return ApiKeyRecord(**row._mapping)

    def list(self, include_revoked: bool = True) -> list[ApiKeyRecord]:
        """The keys people made (run-scoped keys, one per claimed flow run, are not listed)."""
        query = _select().where(key_t.c.flow_run_id.is_(None)).order_by(key_t.c.created, key_t.c.id)
        if not include_revoked:
            query = query.where(key_t.c.revoked.is_(None))
        with self.store.read() as conn:
            return [ApiKeyRecord(**r._mapping) for r in conn.execute(query)]

    def count(self) -> int:
        with self.store.read() as conn:
            return conn.execute(select(func.count()).select_from(key_t)).scalar_one()

    def authenticate(self, secret: str) -> ApiKeyRecord | None:
        """The active key whose secret this is, or ``None``; records ``last_used`` (at most once a minute).

        Every request asks the database (one indexed read, on the driver's cursor: it is paid
        per request), so a key revoked by anyone, this process or another, is refused at once.
        """
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            return None
        digest = hash_key(secret)
        with self.store.connect() as conn:
            db = Driver(conn)
            rows = db.fetch(f"SELECT {_COLUMNS} FROM api_key WHERE key_hash = {db.mark}", (digest,))
        if not rows:
            return None
        key_id, name, prefix, scope, created, revoked, last_used, flow_run_id = rows[0]
        if revoked is not None:
            return None
        record = ApiKeyRecord(
            key_id, name, prefix, scope, db.from_db(created), None, db.from_db(last_used), flow_run_id
        )
        if record.flow_run_id is not None:
            return record  # run-scoped keys live as long as one run: no last_used bookkeeping
        now = time.monotonic()
        with self._lock:
            due = now - self._last_written.get(record.id, -LAST_USED_EVERY) >= LAST_USED_EVERY
            if due:
                self._last_written[record.id] = now
        if due:
            stamp = utcnow()
            self.store.write(
                lambda conn: conn.execute(update(key_t).where(key_t.c.id == record.id).values(last_used=stamp))
            )
            record.last_used = stamp
        return record


_COLUMNS = "id, name, prefix, scope, created, revoked, last_used, flow_run_id"


def _select():
    return select(
        key_t.c.id,
        key_t.c.name,
        key_t.c.prefix,
        key_t.c.scope,
        key_t.c.created,
        key_t.c.revoked,
        key_t.c.last_used,
        key_t.c.flow_run_id,
    )


def revoke_run_tokens(conn: Connection, flow_run_ids: list[str]) -> None:
    """Revoke the run-scoped keys of these flow runs (they are no longer under way)."""
    if flow_run_ids:
        conn.execute(
            update(key_t)
            .where(key_t.c.flow_run_id.in_(flow_run_ids), key_t.c.revoked.is_(None))
            .values(revoked=utcnow())
        )
