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
from services.common.grpcserver import Behaviour, _wrap, set_serving

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


class DatabaseRetryInterceptor(grpc.aio.ServerInterceptor):
    """Innermost interceptor: retries a handler once when its database connection died under it."""

    def __init__(self, pool: asyncpg.Pool, reconnect_wait: float) -> None:
        self._pool = pool
        self._wait = reconnect_wait

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        pool, wait, method = self._pool, self._wait, details.method

        def wrapper(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await behaviour(request, context)
                except db.DEAD_CONNECTION_ERRORS as error:
                    log.warning(
                        "database connection lost; retrying once",
                        extra={"rpc": method, "error": type(error).__name__},
                    )
                # Every connection opened before the restart is dead too: replace them all.
                await pool.expire_connections()
                await wait_for_database(pool, wait)
                return await behaviour(request, context)

            return run

        return _wrap(handler, wrapper)


async def watch_database(
    pool: asyncpg.Pool,
    health_servicer: health.aio.HealthServicer,
    service_names: Sequence[str],
    interval: float,
) -> None:
    """Keeps gRPC health in step with the database's reachability (runs until cancelled)."""
    serving = True
    while True:
        await asyncio.sleep(interval)
        up = await db.reachable(pool, within=min(2.0, interval))
        if up != serving:
            serving = up
            if not up:
                await pool.expire_connections()
            log.warning("database " + ("reachable again: SERVING" if up else "unreachable: NOT_SERVING"))
            await set_serving(health_servicer, service_names, serving=up)
