"""Group commit for Deduct, and batched reads for GetBalance: concurrent requests share a statement.

One hot account is bounded by its row: each charge is a conditional UPDATE of
that row plus a commit (a disk sync), and the next charge waits for that commit.
So concurrent ``Deduct`` calls that arrive while earlier ones are in the
database are queued and sent together as ONE statement —
``ledger_charge_group``, which decides the charges in input order exactly as
``ledger_charge`` (the function a lone charge runs) would one call after the
other, then writes them set-based: each account updated once, its grants spent
once, the transactions inserted by one statement — and so share one commit.
Each charge is accepted only while the balance (as left by the charges before
it in the batch) covers it, so the batch can never overspend; a charge it
declines comes back as ``SLOW_PATH`` and its caller takes the usual slow path
(maintenance, INSUFFICIENT_CREDITS). Every request keeps its own result,
transaction and request id.

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

import logging
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from services.common.batching import Grouper
from services.credits import repository
from services.credits.domain import Actor, ChargeMeta

log = logging.getLogger(__name__)

#: Errors after which each request of a batch is retried on its own by its caller.
_RUN_ALONE = (
    asyncpg.UniqueViolationError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.DataError,
    asyncpg.NumericValueOutOfRangeError,
)

_GROUP_SQL = """
SELECT g.status, g.transaction_id, g.balance_after, g.held, g.created_at
  FROM ledger_charge_group($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::text[], $10::text[], $11::text[]) AS g
 ORDER BY g.ord
"""


@dataclass(frozen=True)
class Charge:
    """One Deduct as ``ledger_charge`` takes it."""

    user_id: str
    amount: int
    request_id: str
    fingerprint: str
    actor: Actor
    meta: ChargeMeta


#: What a caller gets back: ledger_charge's row, or None = "run this request alone".
Outcome: TypeAlias = asyncpg.Record | None


class DeductCoalescer:
    """Queues concurrent charges and runs them in batches over at most ``max_in_flight`` connections
    (the shared group-commit queue, services/common/batching.py)."""

    def __init__(
        self, pool: asyncpg.Pool, *, max_batch: int = 256, max_in_flight: int = 2, linger: float = 0.0
    ) -> None:
        self._pool = pool
        self._charges: Grouper[Charge, Outcome] = Grouper(
            self._run,
            keys=lambda charge: ((charge.user_id, charge.request_id),),
            order=lambda charge: charge.user_id,  # a fixed lock order: batches cannot deadlock each other
            max_group=max_batch,
            max_in_flight=max_in_flight,
            linger=linger,
        )

    async def charge(self, charge: Charge) -> Outcome:
        return await self._charges.submit(charge)

    async def _run(self, batch: list[Charge]) -> list[Outcome | BaseException]:
        try:
            async with self._pool.acquire() as conn:
                if len(batch) == 1:
                    # A lone charge: ledger_charge is cheaper than the group function's fixed steps.
                    one = batch[0]
                    return [
                        await repository.charge(
                            conn, one.user_id, one.amount, one.request_id, one.fingerprint, one.actor, one.meta
                        )
                    ]
                rows = await conn.fetch(
                    _GROUP_SQL,
                    [c.user_id for c in batch],
                    [c.amount for c in batch],
                    [c.request_id for c in batch],
                    [c.fingerprint for c in batch],
                    [c.actor.subject for c in batch],
                    [c.actor.role for c in batch],
                    [c.meta.reason for c in batch],
                    [c.actor.service for c in batch],
                    [c.meta.model for c in batch],
                    [c.meta.reference_id for c in batch],
                    [c.meta.price_version for c in batch],
                )
        except _RUN_ALONE:
            return [None] * len(batch)  # each caller runs its charge alone, with the usual replay handling
        return list(rows)


class BalanceBatcher:
    """Concurrent GetBalance reads share one query (``WHERE user_id = ANY(...)``).

    Every database round trip costs the credits process a socket write and a
    wake-up; under load that is most of a balance read. Reads queued while
    earlier ones are in the database go together. A read sees a committed state
    at least as new as when it was asked (the query starts after the request
    arrived), which is all a single read promised.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, max_batch: int = 256, max_in_flight: int = 2, linger: float = 0.0
    ) -> None:
        self._pool = pool
        self._reads: Grouper[str, repository.BalanceView | None] = Grouper(
            self._run, max_group=max_batch, max_in_flight=max_in_flight, linger=linger
        )

    async def load(self, user_id: str) -> repository.BalanceView | None:
        """The account's balance view, or None if it has no account."""
        return await self._reads.submit(user_id)

    async def _run(self, users: list[str]) -> list[repository.BalanceView | BaseException | None]:
        async with self._pool.acquire() as conn:
            # A user read twice in one group is asked for once.
            views = await repository.balance_views(conn, list(dict.fromkeys(users)))
        return [views.get(user) for user in users]
