"""asyncpg pools, one schema per service, and the forward-only migrations runner.

Every pool bounds both waits a request can hit in the database layer: a
statement timeout (server side, ``statement_timeout``) and a pool-acquire
timeout (client side). Connections are kept warm (idle ones are never closed
below ``min_size``) and are not reset by a round trip on every release; see
:func:`create_pool`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
_MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def _check_schema(schema: str) -> str:
    if not _SCHEMA_RE.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def ensure_schema(dsn: str, schema: str) -> None:
    """Creates the service's schema if it does not exist yet."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_check_schema(schema)}")
    finally:
        await conn.close()


#: Errors that mean the connection (or the server behind it) is gone, not that the
#: request was wrong: a PostgreSQL restart, a dropped socket, a server still starting
#: or not there (OSError: refused, or no unix socket file), or a pooled connection
#: whose protocol was left mid-error by the server's shutdown message
#: (InternalClientError). TimeoutError is an OSError too but is NOT one of them: a
#: full pool is not a dead database (callers check for it first).
DEAD_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
    OSError,
)


class Pool(asyncpg.Pool):
    """An asyncpg pool whose ``acquire`` waits at most ``acquire_timeout`` seconds by default.

    ``Pool.execute``/``fetch``/… go through ``acquire`` too, so no caller can wait
    for a connection forever when the database is slow or the pool exhausted; the
    wait ends in ``TimeoutError`` (UNAVAILABLE ``DATABASE_UNAVAILABLE`` at the API).
    """

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (one extra round trip per request).

    The pool still rolls back a transaction left open and drops listeners before
    calling this. Our code leaves no session state behind: settings come from
    ``server_settings`` at connect time, and the migrations runner releases its
    session-level advisory lock and RESETs the statement timeout it lifted. py-spy showed the default reset at ≈5-7%
    of the credits process under load.
    """


async def create_pool(
    dsn: str,
    schema: str,
    *,
    application_name: str,
    min_size: int = 2,
    max_size: int = 20,
    statement_timeout_ms: int = 30_000,
    acquire_timeout_seconds: float = 30.0,
) -> Pool:
    """A pool whose connections see only the service's own schema (and public).

    ``statement_timeout_ms`` (0 = none) cancels any statement running longer;
    ``acquire_timeout_seconds`` bounds the wait for a free connection.
    """
    pool = Pool(
        dsn,
        acquire_timeout=acquire_timeout_seconds,
        init_size=min_size,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        # Warm: idle connections are never closed, so a burst never pays for new ones.
        max_inactive_connection_lifetime=0,
        reset=keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        server_settings={
            "search_path": f"{_check_schema(schema)},public",
            "application_name": application_name,
            # Timestamps are always handled in UTC.
            "timezone": "UTC",
            "statement_timeout": str(statement_timeout_ms),
        },
    )
    await pool
    return pool


async def reachable(pool: asyncpg.Pool, within: float = 2.0) -> bool:
    """Whether the database answers ``SELECT 1`` within ``within`` seconds (used by health)."""
    try:
        async with asyncio.timeout(within):
            async with pool.acquire(timeout=within) as conn:
                await conn.fetchval("SELECT 1")
        return True
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
        return False


def _migrations(folder: Path) -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION_RE.match(path.name)
        if not match:
            raise ValueError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append((int(match.group(1)), path.name, path.read_text()))
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations in {folder} must be numbered 0001, 0002, … without gaps")
    return found


async def migrate(pool: asyncpg.Pool, schema: str, folder: Path) -> list[str]:
    """Applies the migrations in ``folder`` that have not run yet, in order.

    Each migration runs in its own transaction under an advisory lock, so
    replicas starting together apply each one exactly once. A migration that
    already ran but whose file changed is refused: migrations are forward-only.
    Returns the names applied now.
    """
    _check_schema(schema)
    lock_key = int.from_bytes(hashlib.sha256(f"migrate:{schema}".encode()).digest()[:8], "big", signed=True)
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        # Migrations (and waiting for another replica's) may take longer than a request's
        # statement timeout; RESET restores the connection's configured value after.
        await conn.execute("SET statement_timeout = 0")
        try:
            await conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
            try:
                done = {
                    r["version"]: (r["name"], r["checksum"])
                    for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
                }
                for version, name, sql in _migrations(folder):
                    checksum = hashlib.sha256(sql.encode()).hexdigest()
                    if version in done:
                        if done[version][1] != checksum:
                            raise RuntimeError(
                                f"migration {name} was changed after it was applied; add a new migration instead"
                            )
                        continue
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                            version,
                            name,
                            checksum,
                        )
                    applied_now.append(name)
                    log.info("applied migration", extra={"migration": name, "schema": schema})
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
        finally:
            await conn.execute("RESET statement_timeout")
    return applied_now
