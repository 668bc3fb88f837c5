"""Balance change notifications for WatchBalance: one LISTEN connection per process, fanned out.

The ledger's trigger (migration 0004) sends ``pg_notify('balance_<schema>',
user_id)`` when a watched account's balance, holds or tier change, at commit
(an account is watched while a row in ``balance_watches`` says so). This
process keeps a single dedicated connection listening on that channel and
wakes the watchers of that user; each watcher then reads the balance once, so
a burst of changes costs one read per watcher, not one per change. Watchers in
any replica see changes made by every replica, because PostgreSQL delivers the
notification to every listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator

import asyncpg

log = logging.getLogger(__name__)


class BalanceWatchers:
    """Who is watching which user's balance, and the listener that wakes them."""

    def __init__(self, dsn: str, schema: str, pool: asyncpg.Pool | None = None) -> None:
        self._dsn = dsn
        self._schema = schema
        self._pool = pool
        self._channel = f"balance_{schema}"
        self._watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @contextlib.contextmanager
    def watch(self, user_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``user_id``'s balance may have changed (until the block ends)."""
        self._ensure_listening()
        event = asyncio.Event()
        self._watchers[user_id].add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(user_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[user_id]

    async def mark_watched(self, user_id: str, seconds: float) -> None:
        """Tells the ledger's trigger that ``user_id`` is watched for ``seconds`` from now.

        Watchers renew it at every heartbeat; it lapses by itself when the last one
        leaves (in any replica), so nothing needs cleaning up on disconnect.
        """
        if self._pool is None:
            return
        async with self._pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO balance_watches (user_id, expires_at) VALUES ($1, now() + make_interval(secs => $2))
                ON CONFLICT (user_id)
                DO UPDATE SET expires_at = greatest(balance_watches.expires_at, EXCLUDED.expires_at)
                """,
                user_id,
                seconds,
            )

    async def ready(self, wait_seconds: float = 5.0) -> None:
        """Waits until the listener is connected, so no change after this call is missed."""
        self._ensure_listening()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait_seconds)

    def _notify(self, connection: object, pid: int, channel: str, payload: str) -> None:
        for event in self._watchers.get(payload, ()):
            event.set()

    def _wake_all(self) -> None:
        # After a reconnect we may have missed notifications: everyone re-reads.
        for events in self._watchers.values():
            for event in events:
                event.set()

    def _ensure_listening(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="balance-listener")

    async def _listen(self) -> None:
        """Keeps one LISTEN connection open, reconnecting with a capped back-off."""
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "creditmeter-credits-watch"}
                )
                await conn.add_listener(self._channel, self._notify)
                self._connected.set()
                self._wake_all()
                delay = 0.5
                # Liveness check: a closed connection ends the wait and we reconnect.
                while not conn.is_closed():
                    await asyncio.sleep(15)
                    await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("balance listener lost its connection; reconnecting", extra={"error": type(error).__name__})
            finally:
                self._connected.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
