"""Group commit for Deduct, and batched reads for GetBalance: concurrent requests share a statement.

One hot account is bounded by its row: each charge is a conditional UPDATE of
that row plus a commit (a disk sync), and the next charge waits for that commit.
So concurrent ``Deduct`` calls that arrive while earlier ones are in the
database are queued and sent together as ONE statement — ``ledger_charge`` once
per charge, in input order, inside one implicit transaction — and so share one
commit. ``ledger_charge`` is the same function a single charge runs: each charge
is accepted only while the balance (as left by the charges before it in the
batch) covers it, so the batch can never overspend; a charge it declines comes
back as ``SLOW_PATH`` and its caller takes the usual slow path (maintenance,
INSUFFICIENT_CREDITS). Every request keeps its own result, transaction and
request id.

Accounts are locked in a fixed order (the batch is sorted by user id), so
batches from several replicas cannot deadlock with each other or with the
single-account transactions elsewhere. Two requests with the same
(user, request id) never share a batch (the later one waits for the next), and
a batch the database refuses as a whole (a request id already used, a
serialization failure) hands each request back to its caller, who runs it alone
with the usual replay and retry handling. A lone request runs at once: batching
adds no latency when there is no concurrency.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from services.credits import repository

log = logging.getLogger(__name__)

#: Errors after which each request of a batch is retried on its own by its caller.
_RUN_ALONE = (
    asyncpg.UniqueViolationError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.DataError,
    asyncpg.NumericValueOutOfRangeError,
)

_SQL = """
SELECT c.status, c.transaction_id, c.balance_after, c.held, c.created_at
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::text[], $10::text[], $11::text[])
       WITH ORDINALITY AS i(user_id, amount, request_id, fp, subject, role, reason, service, model, ref, version, ord)
 CROSS JOIN LATERAL ledger_charge(i.user_id, i.amount, i.request_id, i.fp, i.subject, i.role, i.reason,
                                  i.service, i.model, i.ref, i.version) AS c
 ORDER BY i.ord
"""


@dataclass(frozen=True)
class Charge:
    """One Deduct as ``ledger_charge`` takes it."""

    user_id: str
    amount: int
    request_id: str
    fingerprint: str
    subject: str
    role: str
    reason: str
    service: str
    model: str
    reference_id: str
    price_version: str


#: What a caller gets back: ledger_charge's row, or None = "run this request alone".
Outcome: TypeAlias = asyncpg.Record | None


class DeductCoalescer:
    """Queues concurrent charges and runs them in batches over at most ``max_in_flight`` connections."""

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 256, max_in_flight: int = 2) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[tuple[Charge, asyncio.Future[Outcome]]] = []
        self._running = 0

    async def charge(self, charge: Charge) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((charge, future))
        if self._running < self._max_in_flight:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[Charge, asyncio.Future[Outcome]]]:
        batch: list[tuple[Charge, asyncio.Future[Outcome]]] = []
        keys: set[tuple[str, str]] = set()
        rest: list[tuple[Charge, asyncio.Future[Outcome]]] = []
        for item in self._queue:
            key = (item[0].user_id, item[0].request_id)
            if len(batch) < self._max_batch and key not in keys and not item[1].done():
                keys.add(key)
                batch.append(item)
            elif not item[1].done():
                rest.append(item)
        self._queue = rest
        # A fixed lock order across accounts: batches cannot deadlock each other.
        batch.sort(key=lambda item: item[0].user_id)
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take()
                if batch:
                    await self._run(batch)
        finally:
            self._running -= 1

    async def _run(self, batch: list[tuple[Charge, asyncio.Future[Outcome]]]) -> None:
        charges = [c for c, _ in batch]
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    _SQL,
                    [c.user_id for c in charges],
                    [c.amount for c in charges],
                    [c.request_id for c in charges],
                    [c.fingerprint for c in charges],
                    [c.subject for c in charges],
                    [c.role for c in charges],
                    [c.reason for c in charges],
                    [c.service for c in charges],
                    [c.model for c in charges],
                    [c.reference_id for c in charges],
                    [c.price_version for c in charges],
                )
        except _RUN_ALONE:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            return
        except BaseException as error:  # the database is unreachable, a timeout, cancellation: every caller learns
            for _, future in batch:
                if not future.done():
                    future.set_exception(error if isinstance(error, Exception) else asyncio.CancelledError())
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), row in zip(batch, rows, strict=True):
            if not future.done():
                future.set_result(row)


class BalanceBatcher:
    """Concurrent GetBalance reads share one query (``WHERE user_id = ANY(...)``).

    Every database round trip costs the credits process a socket write and a
    wake-up; under load that is most of a balance read. Reads queued while
    earlier ones are in the database go together. A read sees a committed state
    at least as new as when it was asked (the query starts after the request
    arrived), which is all a single read promised.
    """

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 256, max_in_flight: int = 2) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: dict[str, list[asyncio.Future[repository.BalanceView | None]]] = {}
        self._running = 0

    async def load(self, user_id: str) -> repository.BalanceView | None:
        """The account's balance view, or None if it has no account."""
        future: asyncio.Future[repository.BalanceView | None] = asyncio.get_running_loop().create_future()
        self._queue.setdefault(user_id, []).append(future)
        if self._running < self._max_in_flight:
            self._running += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                users = list(self._queue)[: self._max_batch]
                waiting = {user: self._queue.pop(user) for user in users}
                try:
                    async with self._pool.acquire() as conn:
                        views = await repository.balance_views(conn, users)
                except Exception as error:
                    for futures in waiting.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(error)
                    continue
                for user, futures in waiting.items():
                    for future in futures:
                        if not future.done():
                            future.set_result(views.get(user))
        finally:
            self._running -= 1
