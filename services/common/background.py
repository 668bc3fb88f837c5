"""Periodic background work inside a service (schedulers, recovery passes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def periodically(name: str, interval_seconds: float, work: Callable[[], Awaitable[int]]) -> None:
    """Runs ``work`` now and then every ``interval_seconds`` until cancelled.

    A failing pass is logged and retried on the next tick; ``work`` returns how
    many items it handled, logged when non-zero. Every replica runs its own
    loop: the work itself must be safe to race (row locks, idempotency keys).
    """
    while True:
        try:
            handled = await work()
            if handled:
                log.info("background pass", extra={"task": name, "handled": handled})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background pass failed", extra={"task": name})
        await asyncio.sleep(interval_seconds)
