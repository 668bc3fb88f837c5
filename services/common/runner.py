"""Runs a service process: logging, tracing, signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from services.common.config import ConfigError, ServiceSettings
from services.common.telemetry import setup_logging, setup_tracing, shutdown_tracing

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    port: int

    async def stop(self, grace: float) -> None: ...


class HasCommon(Protocol):
    @property
    def common(self) -> ServiceSettings: ...


S = TypeVar("S", bound=HasCommon)


def run_service(name: str, load_settings: Callable[[], S], start: Callable[[S], Awaitable[Stoppable]]) -> int:
    """Loads settings (exit 2 with a clear message when they are wrong), serves until SIGINT/SIGTERM."""
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"{name}: configuration error: {error}", file=sys.stderr)
        return 2
    setup_logging(name, settings.common.log_level)
    setup_tracing(name)

    async def main() -> None:
        running = await start(settings)
        # One machine-readable line so launchers and tests learn the port.
        print(json.dumps({"event": "listening", "service": name, "port": running.port}), flush=True)
        log.info("listening", extra={"port": running.port})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
        await running.stop(float(settings.common.shutdown_grace_seconds))

    try:
        asyncio.run(main())
    finally:
        shutdown_tracing()
    return 0
