"""asyncpg pools, one schema per service, and the forward-only migrations runner."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

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


async def create_pool(
    dsn: str, schema: str, *, application_name: str, min_size: int = 2, max_size: int = 20
) -> asyncpg.Pool:
    """A pool whose connections see only the service's own schema (and public)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={
            "search_path": f"{_check_schema(schema)},public",
            "application_name": application_name,
            # Timestamps are always handled in UTC.
            "timezone": "UTC",
        },
    )
    assert pool is not None
    return pool


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
    return applied_now
