"""Builds and runs the credits gRPC server: interceptors, servicer, health, scheduler, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from services.common import db
from services.common.auth import JwtVerifier
from services.common.grpcserver import build_server, set_serving
from services.credits.config import CreditsSettings
from services.credits.domain import DOMAIN
from services.credits.ledger import Ledger
from services.credits.service import POLICIES, CreditsServicer

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "creditmeter.credits.v1.CreditsService"


@dataclass
class RunningServer:
    """A started credits server and what must be stopped with it."""

    server: grpc.aio.Server
    port: int
    pool: asyncpg.Pool
    ledger: Ledger
    scheduler: asyncio.Task[None] | None
    health: object

    async def stop(self, grace: float) -> None:
        """Graceful shutdown: NOT_SERVING, stop the scheduler, drain RPCs, close the pool."""
        await set_serving(self.health, [SERVICE_NAME], serving=False)
        if self.scheduler is not None:
            self.scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.scheduler
        await self.server.stop(grace)
        await self.pool.close()


async def _scheduler(ledger: Ledger, interval: int) -> None:
    """Runs due period resets and expiries every ``interval`` seconds, in every replica.

    Replicas racing on one account are safe: each reset happens under the
    account's row lock and re-checks that the period is still due.
    """
    while True:
        try:
            resets = await ledger.run_due_maintenance()
            if resets:
                log.info("period resets", extra={"count": resets})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("maintenance pass failed")
        await asyncio.sleep(interval)


async def create_server(settings: CreditsSettings) -> RunningServer:
    common = settings.common
    await db.ensure_schema(common.database_url, common.db_schema)
    pool = await db.create_pool(
        common.database_url,
        common.db_schema,
        application_name="creditmeter-credits",
        min_size=common.db_pool_min,
        max_size=common.db_pool_max,
    )
    try:
        if common.migrate_on_start:
            await db.migrate(pool, common.db_schema, MIGRATIONS)
        ledger = Ledger(pool)
        server, health = build_server("credits", DOMAIN, JwtVerifier(common.auth), POLICIES)
        pb_grpc.add_CreditsServiceServicer_to_server(CreditsServicer(ledger), server)
        port = server.add_insecure_port(f"{common.grpc_host}:{common.grpc_port}")
        if port == 0:
            raise RuntimeError(f"could not listen on {common.grpc_host}:{common.grpc_port}")
        await server.start()
        await set_serving(health, [SERVICE_NAME], serving=True)
    except BaseException:
        await pool.close()
        raise
    scheduler = None
    if settings.maintenance_interval_seconds > 0:
        scheduler = asyncio.create_task(_scheduler(ledger, settings.maintenance_interval_seconds))
    return RunningServer(server, port, pool, ledger, scheduler, health)
