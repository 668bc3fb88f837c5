"""Builds and runs the OpenRouter gRPC server: servicer, HTTP and credits clients, catalog schedule, shutdown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from creditmeter.openrouter.v1 import openrouter_pb2_grpc as pb_grpc

from services.common import bootstrap
from services.common.auth import token_source_for
from services.common.background import periodically
from services.common.bootstrap import RunningService
from services.common.grpcserver import connect
from services.credits.client import CreditsClient
from services.openrouter.client import OpenRouterClient
from services.openrouter.config import OpenRouterSettings
from services.openrouter.crypto import KeyBox
from services.openrouter.domain import DOMAIN
from services.openrouter.service import POLICIES, OpenRouterServicer
from services.openrouter.workflow import OpenRouter

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = "creditmeter.openrouter.v1.OpenRouterService"


async def create_server(settings: OpenRouterSettings) -> RunningService:
    keys = KeyBox(settings.fernet_keys)  # fail fast on bad keys, before touching anything
    pool = await bootstrap.open_database(settings.common, MIGRATIONS)
    api = OpenRouterClient(
        settings.base_url,
        settings.management_key,
        timeout_seconds=settings.http_timeout_seconds,
        retries=settings.http_retries,
    )
    channel = connect(
        settings.credits_address, token_source_for(settings.common.auth, "openrouter"), settings.common.tls
    )
    openrouter = OpenRouter(pool, api, CreditsClient(channel, settings.credits_timeout_seconds, DOMAIN), keys)
    log.info("openrouter api", extra={"base_url": settings.base_url})
    running = await bootstrap.start(
        settings.common,
        pool,
        domain=DOMAIN,
        policies=POLICIES,
        service_names=[SERVICE_NAME],
        register=lambda server: pb_grpc.add_OpenRouterServiceServicer_to_server(OpenRouterServicer(openrouter), server),
    )
    running.channels.append(channel)
    running.closers.append(api.close)
    if settings.sync_interval_seconds > 0:
        interval = settings.sync_interval_seconds
        running.tasks.append(
            asyncio.create_task(periodically("model catalog", interval, openrouter.sync_models_quietly))
        )
        running.tasks.append(asyncio.create_task(periodically("account usage", interval, openrouter.sync_stale)))
    return running
