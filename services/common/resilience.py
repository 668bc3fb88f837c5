"""Surviving a database restart: one retry on a dead connection, and health that tells the truth.

When PostgreSQL restarts, every pooled connection dies with it. A request that
meets a dead connection (or a server still starting) is retried ONCE, after
the pool's old connections are expired and the database answers again (waiting
at most ``reconnect_wait`` seconds). That is safe because every RPC is
idempotent: reads trivially, and every mutating RPC by its ``request_id`` (or
event id), so a request whose first attempt did commit replays its result.

The health probe asks the database ``SELECT 1`` every few seconds and turns
gRPC health NOT_SERVING while it does not answer, SERVING again when it does,
so load balancers and ``grpc_health_probe`` stop sending traffic meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health

from services.common import db
from services.common.grpcserver import Behaviour, set_serving

log = logging.getLogger(__name__)


async def wait_for_database(pool: asyncpg.Pool, seconds: float) -> bool:
    """Polls until the database answers (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while True:
        if await db.reachable(pool, within=min(2.0, max(0.1, deadline - time.monotonic()))):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


class DatabaseRetry:
    """Innermost step of the handler chain: retries a unary handler once when its database connection died."""

    def __init__(self, pool: asyncpg.Pool, reconnect_wait: float) -> None:
        self._pool = pool
        self._wait = reconnect_wait
        self._expired_at = 0.0

    async def _expire(self) -> None:
        # Every connection opened before the restart is dead too: replace them all,
        # once per incident rather than once per failed request.
        now = time.monotonic()
        if now - self._expired_at > 1.0:
            self._expired_at = now
            await self._pool.expire_connections()

    def __call__(self, behaviour: Behaviour, method: str) -> Behaviour:
        """``behaviour`` retried once on a dead connection (unary calls only: a sent stream cannot be replayed)."""

        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behaviour(request, context)
            except TimeoutError:
                raise  # a full pool or a slow database: waiting again would only double the wait
            except db.DEAD_CONNECTION_ERRORS as error:
                log.warning(
                    "database connection lost; retrying once",
                    extra={"rpc": method, "error": type(error).__name__},
                )
            await self._expire()
            await wait_for_database(self._pool, self._wait)
            return await behaviour(request, context)

        return run


async def watch_database(
    dsn: str,
    health_servicer: health.aio.HealthServicer,
    service_names: Sequence[str],
    interval: float,
) -> None:
    """Keeps gRPC health in step with the database's reachability (runs until cancelled).

    It uses a connection of its own, not the pool: a pool busy with slow requests
    is not an unreachable database, and the probe must not queue behind them.
    """
    serving = True
    conn: asyncpg.Connection | None = None
    try:
        while True:
            await asyncio.sleep(interval)
            within = min(2.0, interval)
            try:
                async with asyncio.timeout(within):
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(dsn, timeout=within)
                    await conn.fetchval("SELECT 1")
                up = True
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                up = False
                if conn is not None:
                    conn.terminate()
                    conn = None
            if up != serving:
                serving = up
                log.warning("database " + ("reachable again: SERVING" if up else "unreachable: NOT_SERVING"))
                await set_serving(health_servicer, service_names, serving=up)
    finally:
        if conn is not None:
            conn.terminate()
