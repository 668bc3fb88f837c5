"""Builds and runs the credits gRPC server: servicer, health, maintenance scheduler, shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from services.common import bootstrap
from services.common.background import periodically
from services.common.bootstrap import RunningService
from services.credits.config import CreditsSettings
from services.credits.domain import DOMAIN
from services.credits.ledger import Ledger
from services.credits.service import POLICIES, CreditsServicer

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "creditmeter.credits.v1.CreditsService"

#: Kept for callers that name the credits server's type.
RunningServer = RunningService


async def create_server(settings: CreditsSettings) -> RunningService:
    pool = await bootstrap.open_database(settings.common, MIGRATIONS)
    ledger = Ledger(pool)
    running = await bootstrap.start(
        settings.common,
        pool,
        domain=DOMAIN,
        policies=POLICIES,
        service_names=[SERVICE_NAME],
        register=lambda server: pb_grpc.add_CreditsServiceServicer_to_server(
            CreditsServicer(
                ledger, coupon_grant_max_nanos=settings.coupon_grant_max_nanos, coupon_tiers=settings.coupon_tiers
            ),
            server,
        ),
    )
    if settings.maintenance_interval_seconds > 0:
        # Period resets and expiries, in every replica: each reset happens under the
        # account's row lock and re-checks that the period is still due.
        running.tasks.append(
            asyncio.create_task(
                periodically("maintenance", settings.maintenance_interval_seconds, ledger.run_due_maintenance)
            )
        )
    return running
