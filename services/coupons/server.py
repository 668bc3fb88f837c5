"""Builds and runs the coupons gRPC server: servicer, credits client, recovery passes, shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import grpc
from creditmeter.coupons.v1 import coupons_pb2_grpc as pb_grpc

from services.common import bootstrap
from services.common.auth import token_source_for
from services.common.background import periodically
from services.common.bootstrap import RunningService
from services.common.grpcserver import connect
from services.coupons.config import CouponsSettings
from services.coupons.domain import DOMAIN
from services.coupons.service import POLICIES, CouponsServicer
from services.coupons.workflow import Coupons
from services.credits.client import CreditsClient

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "creditmeter.coupons.v1.CouponsService"


def build_workflow(settings: CouponsSettings, pool: asyncpg.Pool, channel: grpc.aio.Channel) -> Coupons:
    """The coupon use cases over a pool and a channel to the credits service."""
    return Coupons(
        pool,
        CreditsClient(channel, settings.credits_timeout_seconds, DOMAIN),
        max_failed_attempts=settings.max_failed_attempts,
        attempt_window_seconds=settings.attempt_window_seconds,
        max_failed_attempts_per_address=settings.max_failed_attempts_per_address,
        revert_max_delay_seconds=settings.revert_max_delay_seconds,
    )


async def create_server(settings: CouponsSettings) -> RunningService:
    pool = await bootstrap.open_database(settings.common, MIGRATIONS)
    channel = connect(settings.credits_address, token_source_for(settings.common.auth, "coupons"), settings.common.tls)
    coupons = build_workflow(settings, pool, channel)
    if settings.dev_seed:
        await coupons.seed_dev()
    running = await bootstrap.start(
        settings.common,
        pool,
        domain=DOMAIN,
        policies=POLICIES,
        service_names=[SERVICE_NAME],
        register=lambda server: pb_grpc.add_CouponsServiceServicer_to_server(CouponsServicer(coupons), server),
    )
    running.channels.append(channel)
    if settings.recovery_interval_seconds > 0:
        interval = settings.recovery_interval_seconds
        running.tasks.append(
            asyncio.create_task(periodically("pending redemptions", interval, coupons.recover_pending))
        )
        running.tasks.append(asyncio.create_task(periodically("ended trials", interval, coupons.revert_due_trials)))
        running.tasks.append(asyncio.create_task(periodically("attempt counters", interval, coupons.prune_attempts)))
    return running
