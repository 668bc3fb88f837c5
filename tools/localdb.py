"""The database URL the stack uses: DATABASE_URL when set, else the embedded PostgreSQL (pgserver)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from services.common.config import LOCAL_DIR

DATABASE = "creditmeter"
MAX_CONNECTIONS = 400


def start_embedded(pgdata: Path, database: str = DATABASE) -> tuple[Any, str]:
    """Starts (or joins) the embedded server at ``pgdata``; returns (server handle, URL of ``database``).

    pgserver counts the processes holding a handle and stops the server when
    the last of them exits or calls ``cleanup()``.
    """
    import pgserver

    if not database.isidentifier():
        raise ValueError(f"invalid database name {database!r}")
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    if "(1 row)" in server.psql(f"SELECT 1 WHERE current_setting('max_connections')::int < {MAX_CONNECTIONS};"):
        # Every service keeps a pool; the default 100 connections is too few for the
        # whole stack plus tests. The setting needs a restart, done once per data folder.
        server.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};")
        server.cleanup()
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {database};")
    return server, server.get_uri(database)


def database_url() -> tuple[str, Any | None]:
    """(URL, embedded server handle or None when an external database is configured)."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return configured, None
    server, url = start_embedded(LOCAL_DIR / "pgdata")
    return url, server
