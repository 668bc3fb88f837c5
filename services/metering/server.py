"""Builds and runs the metering gRPC server: servicer, clients of credits and openrouter, recovery pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

from creditmeter.metering.v1 import metering_pb2_grpc as pb_grpc
from creditmeter.openrouter.v1 import openrouter_pb2_grpc as opb_grpc

from services.common import bootstrap
from services.common.auth import token_source_for
from services.common.background import periodically
from services.common.bootstrap import RunningService
from services.common.grpcserver import connect
from services.credits.client import CreditsClient
from services.metering.config import MeteringSettings
from services.metering.domain import DOMAIN
from services.metering.service import POLICIES, MeteringServicer
from services.metering.workflow import Metering

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "creditmeter.metering.v1.MeteringService"


async def create_server(settings: MeteringSettings) -> RunningService:
    pool = await bootstrap.open_database(settings.common, MIGRATIONS)
    tokens = token_source_for(settings.common.auth, "metering")
    credits_channel = connect(settings.credits_address, tokens, settings.common.tls)
    pricing_channel = connect(settings.openrouter_address, tokens, settings.common.tls)
    metering = Metering(
        pool,
        CreditsClient(credits_channel, settings.call_timeout_seconds, DOMAIN),
        opb_grpc.OpenRouterServiceStub(pricing_channel),
        settings.call_timeout_seconds,
        max_attempts=settings.max_attempts,
        max_backoff_seconds=settings.max_backoff_seconds,
    )
    running = await bootstrap.start(
        settings.common,
        pool,
        domain=DOMAIN,
        policies=POLICIES,
        service_names=[SERVICE_NAME],
        register=lambda server: pb_grpc.add_MeteringServiceServicer_to_server(
            MeteringServicer(metering, settings.track_wait_seconds), server
        ),
    )
    running.channels.extend([credits_channel, pricing_channel])
    for charger in (metering.charger, metering.bulk_charger):
        running.tasks.append(asyncio.create_task(charger.run()))
        running.closers.append(charger.stop)
    # Keep the local price book current (a version check when nothing changed).
    running.tasks.append(asyncio.create_task(periodically("price book", 30, metering.refresh_prices)))
    if settings.recovery_interval_seconds > 0:
        running.tasks.append(
            asyncio.create_task(periodically("uncharged usage", settings.recovery_interval_seconds, metering.recover))
        )
    return running
