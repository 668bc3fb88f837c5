"""Starting and stopping a service the same way everywhere.

``open_database`` creates the service's schema, its pool and applies its
migrations; ``start`` builds the gRPC server with the handler chain and
health, registers the servicers, listens, and marks the service SERVING.
``RunningService.stop`` is the graceful shutdown: NOT_SERVING, background tasks
cancelled, in-flight RPCs drained, outgoing channels and the pool closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2_grpc

from services.common import db
from services.common.auth import JwtVerifier
from services.common.config import ServiceSettings
from services.common.grpcserver import MethodPolicy, build_server, listen, set_serving
from services.common.resilience import DatabaseRetry, watch_database


@dataclass
class RunningService:
    """A started service and everything that must be stopped with it."""

    server: grpc.aio.Server
    port: int
    pool: asyncpg.Pool
    health: health.aio.HealthServicer
    service_names: Sequence[str]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: The plaintext health-only server for probes, when configured.
    health_server: grpc.aio.Server | None = None
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def stop(self, grace: float) -> None:
        # Background tasks first: the database watcher must not flip health back to SERVING.
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await set_serving(self.health, self.service_names, serving=False)
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        for channel in self.channels:
            await channel.close()
        for close in self.closers:
            await close()
        await self.pool.close()


async def open_database(settings: ServiceSettings, migrations: Path) -> asyncpg.Pool:
    await db.ensure_schema(settings.database_url, settings.db_schema)
    pool = await db.create_pool(
        settings.database_url,
        settings.db_schema,
        application_name=f"creditmeter-{settings.service_name}",
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        acquire_timeout_seconds=settings.db_acquire_timeout_seconds,
    )
    try:
        if settings.migrate_on_start:
            await db.migrate(pool, settings.db_schema, migrations)
    except BaseException:
        await pool.close()
        raise
    return pool


async def start(
    settings: ServiceSettings,
    pool: asyncpg.Pool,
    *,
    domain: str,
    policies: Mapping[str, MethodPolicy],
    service_names: Sequence[str],
    register: Callable[[grpc.aio.Server], None],
) -> RunningService:
    """Serves on the configured address; closes the pool if start-up fails."""
    verifier = JwtVerifier(settings.auth)
    try:
        server, health_servicer = build_server(
            settings.service_name,
            domain,
            verifier,
            policies,
            retry=DatabaseRetry(pool, settings.db_reconnect_wait_seconds),
        )
        register(server)
        port = listen(server, f"{settings.grpc_host}:{settings.grpc_port}", settings.tls)
        if port == 0:
            raise RuntimeError(f"could not listen on {settings.grpc_host}:{settings.grpc_port}")
        await server.start()
        await set_serving(health_servicer, service_names, serving=True)
    except BaseException:
        await verifier.aclose()
        await pool.close()
        raise
    running = RunningService(server, port, pool, health_servicer, service_names)
    running.closers.append(verifier.aclose)
    if settings.health_port:
        # Health only, no API: probes reach it without the client certificate mTLS demands.
        running.health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, running.health_server)
        if running.health_server.add_insecure_port(f"{settings.grpc_host}:{settings.health_port}") == 0:
            await running.stop(0)
            raise RuntimeError(f"could not listen on {settings.grpc_host}:{settings.health_port} for health")
        await running.health_server.start()
    if settings.db_health_interval_seconds > 0:
        running.tasks.append(
            asyncio.create_task(
                watch_database(
                    settings.database_url, health_servicer, service_names, settings.db_health_interval_seconds
                )
            )
        )
    return running
