"""The ledger's use cases and their transaction boundaries.

Charges and holds first try a one-round-trip SQL function (no row lock held
across the network). Only when that declines — account missing, funds short,
or a period reset / grant expiry / stale hold due — does the slow path lock
the account, bring it up to date, and decide.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import asyncpg

from services.common.errors import Code, DomainError, invalid, not_found, precondition
from services.common.ids import uuid7
from services.credits import domain
from services.credits import repository as repo
from services.credits.coalesce import BalanceBatcher, Charge, DeductCoalescer
from services.credits.domain import (
    SYSTEM,
    Account,
    Actor,
    ChargeMeta,
    GrantView,
    Hold,
    Kind,
    Source,
    Tier,
    Transaction,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
_SERIALIZATION_RETRIES = 5


@dataclass(frozen=True)
class ChargeResult:
    transaction: Transaction
    available_after_nanos: int


@dataclass(frozen=True)
class HoldRequest:
    """One hold as CreateHold takes it (validated)."""

    user_id: str
    amount: int
    ttl: int
    request_id: str
    reason: str
    reference_id: str

    def fingerprint(self) -> str:
        return domain.fingerprint(
            "hold", user=self.user_id, amount=self.amount, ttl=self.ttl, reason=self.reason, ref=self.reference_id
        )


_HOLDS_SQL = """
SELECT h.status, h.hold_id, h.balance_after, h.held, h.expires_at, h.created_at
  FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[])
       WITH ORDINALITY AS i(user_id, amount, ttl, request_id, fp, reason, ref, ord)
 CROSS JOIN LATERAL ledger_hold(i.user_id, i.amount, i.ttl, i.request_id, i.fp, $8, $9, i.reason, i.ref) AS h
 ORDER BY i.ord
"""


@dataclass(frozen=True)
class HoldResult:
    hold: Hold
    available_after_nanos: int


@dataclass(frozen=True)
class SettleResult:
    hold: Hold
    transaction: Transaction | None


#: Accounts a usage batch opens or brings up to date in one transaction (in user-id order, the lock order of
#: every multi-account writer). One commit per account made a batch over new users ten times slower than one
#: over known users; a few dozen per commit keep each account's row lock short (~2-3 ms an account).
SLOW_ACCOUNTS_PER_TRANSACTION = 50

#: How long a busy Deduct or balance-read group waits for more requests before it goes to the database.
GROUP_LINGER_SECONDS = 0.002


class Ledger:
    """All credits use cases over one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, tier_cache_seconds: float = 30.0, known_accounts_max: int = 100_000) -> None:
        self._pool = pool
        self._tiers: dict[str, Tier] = {}
        self._tiers_loaded = 0.0
        self._tier_cache_seconds = tier_cache_seconds
        # One group of Deducts and one of balance reads in the database at a time: the next gathers behind
        # it, so each statement carries more requests. Two bench rounds (`make bench --only
        # tiers_compare,deduct_spread,deduct_hot,balance`, alternating with two in flight): PostgreSQL's CPU
        # per request ~20 % lower, `deduct` 0.64-0.70x the tiers route against 0.55-0.68x.
        # While busy, each group also waits GROUP_LINGER_SECONDS to fill (a lone request never waits):
        # docs/usage-pipeline.md, "Lingering groups", has the measurements.
        self._coalescer = DeductCoalescer(pool, max_in_flight=1, linger=GROUP_LINGER_SECONDS)
        self._balances = BalanceBatcher(pool, max_in_flight=1, linger=GROUP_LINGER_SECONDS)
        # Accounts are never deleted, so "this account exists" never goes stale: a bounded set
        # of ids seen to exist spares a user's later calls the lookup (oldest forgotten first).
        self._known_accounts: dict[str, None] = {}
        self._known_accounts_max = known_accounts_max

    # --- tiers ----------------------------------------------------------------

    async def tiers(self) -> dict[str, Tier]:
        if not self._tiers or time.monotonic() - self._tiers_loaded > self._tier_cache_seconds:
            async with self._pool.acquire() as conn:
                self._tiers = await repo.load_tiers(conn)
            self._tiers_loaded = time.monotonic()
        return self._tiers

    async def tier(self, tier_id: str) -> Tier:
        tiers = await self.tiers()
        if tier_id not in tiers:
            raise invalid(
                "UNKNOWN_TIER",
                f"no tier {tier_id!r}; known tiers: {', '.join(tiers)}",
                field="tier",
            )
        return tiers[tier_id]

    # --- retries ----------------------------------------------------------------

    async def _retrying(self, work: Callable[[], Awaitable[T]]) -> T:
        """Retries serialization failures and deadlocks a bounded number of times."""
        for attempt in range(_SERIALIZATION_RETRIES):
            try:
                return await work()
            except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
                if attempt == _SERIALIZATION_RETRIES - 1:
                    raise
                await asyncio.sleep(0.005 * (2**attempt))
        raise AssertionError("unreachable")

    @staticmethod
    async def _grant(
        conn: asyncpg.Connection,
        *,
        user_id: str,
        kind: Kind,
        source: Source,
        amount: int,
        balance_after: int,
        actor: Actor,
        expires_at: datetime | None,
        meta: ChargeMeta,
        period_start: datetime | None = None,
        request_id: str | None = None,
        fingerprint: str | None = None,
        related: str | None = None,
    ) -> tuple[Transaction, str]:
        """Credits the user: the incoming transfer and the grant it creates (account row locked)."""
        debit = domain.PLATFORM_REVENUE if source is Source.REFUND else domain.grant_source_account(source)
        tx = await repo.insert_transaction(
            conn,
            user_id=user_id,
            kind=kind,
            amount=amount,
            debit=debit,
            credit=domain.user_account(user_id),
            balance_after=balance_after,
            actor=actor,
            request_id=request_id,
            fingerprint=fingerprint,
            related=related,
            meta=meta,
        )
        grant_id = await repo.insert_grant(
            conn,
            user_id=user_id,
            source=source,
            amount=amount,
            expires_at=expires_at,
            transaction_id=tx.transaction_id,
            period_start=period_start,
        )
        return tx, grant_id

    @staticmethod
    async def _save_balance(conn: asyncpg.Connection, row: asyncpg.Record, balance: int) -> None:
        """Stores a new balance on a locked account, leaving its holds, tier and period as they are."""
        await repo.save_account_state(
            conn,
            row["user_id"],
            balance=balance,
            held=row["held_nanos"],
            tier_id=row["tier_id"],
            period_anchor=row["period_anchor"],
            period_start=row["period_start"],
            period_end=row["period_end"],
        )

    # --- accounts and maintenance ---------------------------------------------------

    async def _lock_or_create(
        self, conn: asyncpg.Connection, user_id: str, *, create: bool, tier: Tier | None = None
    ) -> asyncpg.Record:
        """Locks the account row; creates the account first if allowed (on ``tier``, default trial)."""
        row, _ = await self._lock_or_create_flagged(conn, user_id, create=create, tier=tier)
        return row

    async def _lock_or_create_flagged(
        self, conn: asyncpg.Connection, user_id: str, *, create: bool, tier: Tier | None = None
    ) -> tuple[asyncpg.Record, bool]:
        """Like :meth:`_lock_or_create`, and says whether this call created the account (on ``tier``): a
        caller that lost the race to create it gets the winner's row, locked, and False."""
        row = await repo.lock_account(conn, user_id)
        if row is not None:
            return row, False
        if not create:
            raise domain.account_not_found(user_id)
        trial = tier or await self.tier("trial")
        created = await repo.insert_account(conn, user_id, trial)
        if created is None:  # created concurrently: lock the winner's row
            row = await repo.lock_account(conn, user_id)
            assert row is not None
            return row, False
        if trial.credits_nanos > 0:
            await self._grant(
                conn,
                user_id=user_id,
                kind=Kind.TIER_ALLOCATION,
                source=Source.TIER,
                amount=trial.credits_nanos,
                balance_after=trial.credits_nanos,
                actor=SYSTEM,
                expires_at=created["period_end"],
                period_start=created["period_start"],
                meta=ChargeMeta(reason=f"{trial.tier_id} allocation for the first period"),
            )
        saved = await repo.save_account_state(
            conn,
            user_id,
            balance=trial.credits_nanos,
            held=0,
            tier_id=trial.tier_id,
            period_anchor=created["period_anchor"],
            period_start=created["period_start"],
            period_end=created["period_end"],
        )
        return saved, True

    async def _open_or_maintain(self, conn: asyncpg.Connection, user_id: str, *, create: bool = True) -> asyncpg.Record:
        """Locks the account (opening it on the trial tier if allowed) and brings an existing one up to date.

        An account opened just now has nothing due — its period began now, its allocation lasts that period,
        it holds nothing — so it skips the four statements of maintenance.
        """
        row, created = await self._lock_or_create_flagged(conn, user_id, create=create)
        if not created:
            row, _ = await self._maintain_locked(conn, row)
        return row

    async def _maintain_locked(
        self, conn: asyncpg.Connection, row: asyncpg.Record, *, new_tier: Tier | None = None
    ) -> tuple[asyncpg.Record, bool]:
        """Brings a locked account up to date: stale holds expire, a due period resets
        (or, with ``new_tier``, a new period of that tier starts now), due grants expire,
        the new tier allocation is granted. Returns the new row and whether a period began.
        """
        user_id: str = row["user_id"]
        now: datetime = row["db_now"]
        balance: int = row["balance_nanos"]
        held: int = row["held_nanos"] - await repo.expire_stale_holds(conn, user_id)
        tier = new_tier or await self.tier(row["tier_id"])
        anchor, start, end = row["period_anchor"], row["period_start"], row["period_end"]
        new_period = False
        if new_tier is not None:
            await repo.expire_tier_grants_now(conn, user_id)
            anchor = now
            start, end = domain.period_bounds(now, tier.billing_period, 0)
            new_period = True
        elif end <= now:
            start, end = domain.period_containing(anchor, tier.billing_period, now)
            new_period = True

        for grant_id, amount in domain.plan_expiry(await repo.due_grants(conn, user_id), held):
            await repo.reduce_grant(conn, grant_id, amount)
            balance -= amount
            await repo.insert_transaction(
                conn,
                user_id=user_id,
                kind=Kind.EXPIRY,
                amount=amount,
                debit=domain.user_account(user_id),
                credit=domain.PLATFORM_EXPIRED,
                balance_after=balance,
                actor=SYSTEM,
                meta=ChargeMeta(reason="credits reached their expiry", reference_id=grant_id),
            )

        if new_period and tier.credits_nanos > 0:
            balance += tier.credits_nanos
            await self._grant(
                conn,
                user_id=user_id,
                kind=Kind.TIER_ALLOCATION,
                source=Source.TIER,
                amount=tier.credits_nanos,
                balance_after=balance,
                actor=SYSTEM,
                expires_at=end,
                period_start=start,
                meta=ChargeMeta(reason=f"{tier.tier_id} allocation for the period starting {start.isoformat()}"),
            )
        saved = await repo.save_account_state(
            conn,
            user_id,
            balance=balance,
            held=held,
            tier_id=tier.tier_id,
            period_anchor=anchor,
            period_start=start,
            period_end=end,
        )
        return saved, new_period

    async def maintain(self, user_id: str) -> bool:
        """Runs maintenance for one account in its own transaction; True if a new period began."""

        async def work() -> bool:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await repo.lock_account(conn, user_id)
                if row is None:
                    return False
                _, reset = await self._maintain_locked(conn, row)
                return reset

        return await self._retrying(work)

    async def run_due_maintenance(self, batch: int = 200) -> int:
        """One pass of the scheduler: every account with something due. Returns periods reset."""
        async with self._pool.acquire() as conn:
            users = await repo.due_accounts(conn, batch)
        resets = 0
        for user_id in users:
            if await self.maintain(user_id):
                resets += 1
        return resets

    async def get_balance(self, user_id: str, *, create: bool) -> tuple[Account, list[GrantView]]:
        # One round trip, shared with concurrent reads, when nothing is due (the common case).
        view: repo.BalanceView | None = await self._balances.load(user_id)
        if view is not None and not view[1]:
            self._remember_account(user_id)
            return view[0], view[2]
        async with self._pool.acquire() as conn:
            # First call (create the account) or something due: bring it up to date.
            async with conn.transaction():
                await self._open_or_maintain(conn, user_id, create=create)
            view = await repo.balance_view(conn, user_id)
            assert view is not None
            return view[0], view[2]

    async def account_exists(self, user_id: str) -> bool:
        async with self._pool.acquire() as conn:
            return await repo.get_account(conn, user_id) is not None

    async def ensure_account(self, user_id: str) -> None:
        """Creates the account on the trial tier if the user has none (first authenticated call)."""
        if user_id in self._known_accounts:
            return
        async with self._pool.acquire() as conn:
            if await repo.get_account(conn, user_id) is None:
                async with conn.transaction():
                    await self._lock_or_create(conn, user_id, create=True)
        self._remember_account(user_id)

    def _remember_account(self, user_id: str) -> None:
        if user_id in self._known_accounts:
            return
        if len(self._known_accounts) >= self._known_accounts_max:
            del self._known_accounts[next(iter(self._known_accounts))]
        self._known_accounts[user_id] = None

    async def list_accounts(self, after: str, tier: str, limit: int, prefix: str = "") -> list[Account]:
        async with self._pool.acquire() as conn:
            return await repo.list_accounts(conn, after, tier, limit, prefix)

    async def platform_report(
        self, start: datetime, end: datetime, *, monthly: bool, top: int
    ) -> dict[str, list[asyncpg.Record]]:
        """Usage revenue and grants across all users (admin reporting; read-only)."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
            return await repo.platform_report(conn, start, end, monthly, top)

    async def list_transactions(
        self,
        user_id: str,
        *,
        before_id: str | None,
        kind: str | None,
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> list[Transaction]:
        async with self._pool.acquire() as conn:
            return await repo.list_transactions(
                conn, user_id, before_id=before_id, kind=kind, start=start, end=end, limit=limit
            )

    # --- idempotent replays --------------------------------------------------------------

    @staticmethod
    async def _replay_transaction(
        conn: asyncpg.Connection, user_id: str, request_id: str, fp: str
    ) -> Transaction | None:
        found = await repo.find_transaction_by_request(conn, user_id, request_id)
        if found is None:
            return None
        tx, stored_fp = found
        if stored_fp != fp:
            raise domain.request_id_reused(request_id)
        return tx

    # --- grants: allocate and refund ---------------------------------------------------

    async def allocate(
        self,
        user_id: str,
        amount: int,
        request_id: str,
        actor: Actor,
        source: Source,
        expires_at: datetime | None,
        meta: ChargeMeta,
    ) -> tuple[Transaction, str]:
        fp = domain.fingerprint(
            "allocate",
            user=user_id,
            amount=amount,
            source=source.value,
            expires=expires_at,
            reason=meta.reason,
            ref=meta.reference_id,
        )

        async def work() -> tuple[Transaction, str]:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await self._lock_or_create(conn, user_id, create=True)
                replay = await self._replay_transaction(conn, user_id, request_id, fp)
                if replay is not None:
                    return replay, await repo.grant_of_transaction(conn, replay.transaction_id)
                if expires_at is not None and expires_at <= row["db_now"]:
                    raise invalid("INVALID_EXPIRY", "expires_at must be in the future", field="expires_at")
                balance = row["balance_nanos"] + amount
                tx, grant_id = await self._grant(
                    conn,
                    user_id=user_id,
                    kind=Kind.ALLOCATION,
                    source=source,
                    amount=amount,
                    balance_after=balance,
                    actor=actor,
                    expires_at=expires_at,
                    request_id=request_id,
                    fingerprint=fp,
                    meta=meta,
                )
                await self._save_balance(conn, row, balance)
                return tx, grant_id

        return await self._retrying(work)

    async def refund(
        self, user_id: str, charge_id: str, amount: int, request_id: str, actor: Actor, reason: str
    ) -> tuple[Transaction, int]:
        fp = domain.fingerprint("refund", user=user_id, charge=charge_id, amount=amount, reason=reason)

        async def work() -> tuple[Transaction, int]:
            async with self._pool.acquire() as conn, conn.transaction():
                # The account lock serialises every refund of this user's charges.
                row = await self._lock_or_create(conn, user_id, create=False)
                replay = await self._replay_transaction(conn, user_id, request_id, fp)
                charge = await repo.get_transaction(conn, charge_id)
                if charge is None or charge.user_id != user_id:
                    raise not_found(
                        "TRANSACTION_NOT_FOUND",
                        "no such transaction on this account",
                        transaction_id=charge_id,
                    )
                refunded = await repo.refunded_total(conn, charge_id)
                if replay is not None:
                    return replay, domain.refundable(charge.amount_nanos, refunded)
                if charge.kind not in domain.CHARGE_KINDS:
                    raise precondition(
                        "TRANSACTION_NOT_REFUNDABLE",
                        f"only DEDUCTION and HOLD_CAPTURE transactions can be refunded, not {charge.kind}",
                    )
                domain.check_refund(charge.amount_nanos, refunded, amount)
                balance = row["balance_nanos"] + amount
                tx, _ = await self._grant(
                    conn,
                    user_id=user_id,
                    kind=Kind.REFUND,
                    source=Source.REFUND,
                    amount=amount,
                    balance_after=balance,
                    actor=actor,
                    expires_at=None,
                    request_id=request_id,
                    fingerprint=fp,
                    related=charge_id,
                    meta=ChargeMeta(reason=reason, reference_id=charge_id),
                )
                await self._save_balance(conn, row, balance)
                return tx, domain.refundable(charge.amount_nanos, refunded + amount)

        return await self._retrying(work)

    # --- charges and holds ----------------------------------------------------------------

    async def deduct(self, user_id: str, amount: int, request_id: str, actor: Actor, meta: ChargeMeta) -> ChargeResult:
        fp = domain.fingerprint(
            "deduct",
            user=user_id,
            amount=amount,
            reason=meta.reason,
            model=meta.model,
            ref=meta.reference_id,
            price=meta.price_version,
        )
        # Concurrent charges share one statement and one commit (see coalesce.py).
        row = await self._coalescer.charge(Charge(user_id, amount, request_id, fp, actor, meta))
        if row is None:  # the batch could not take it: run it alone
            async with self._pool.acquire() as conn:
                try:
                    row = await repo.charge(conn, user_id, amount, request_id, fp, actor, meta)
                except asyncpg.UniqueViolationError:
                    replay = await self._replay_transaction(conn, user_id, request_id, fp)
                    assert replay is not None
                    return await self._charge_result(conn, replay)
        if row["status"] == "OK":
            # Everything the new transaction holds is known here: no second query on the hot path.
            tx = Transaction(
                transaction_id=str(row["transaction_id"]),
                user_id=user_id,
                kind=Kind.DEDUCTION.value,
                amount_nanos=amount,
                balance_after_nanos=row["balance_after"],
                debit_account=domain.user_account(user_id),
                credit_account=domain.PLATFORM_REVENUE,
                request_id=request_id,
                related_transaction_id="",
                hold_id="",
                actor_subject=actor.subject,
                actor_role=actor.role,
                reason=meta.reason,
                service=actor.service,
                model=meta.model,
                reference_id=meta.reference_id,
                price_version=meta.price_version,
                created_at=row["created_at"],
            )
            return ChargeResult(tx, row["balance_after"] - row["held"])

        # Declined: when the account exists with nothing due and simply lacks the funds,
        # answer without taking its row lock (after a replay check), so a storm of
        # refused charges does not queue on the lock and hold pool connections.
        async with self._pool.acquire() as conn:
            found = await repo.get_account(conn, user_id)
            if found is not None and not found[1] and found[0].available_nanos < amount:
                replay = await self._replay_transaction(conn, user_id, request_id, fp)
                if replay is not None:
                    return await self._charge_result(conn, replay)
                raise domain.insufficient(found[0].available_nanos, amount)

        async def slow() -> ChargeResult | DomainError:
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    locked, created = await self._lock_or_create_flagged(conn, user_id, create=True)
                    replay = await self._replay_transaction(conn, user_id, request_id, fp)
                    if replay is not None:
                        return await self._charge_result(conn, replay)
                    if not created:
                        locked, _ = await self._maintain_locked(conn, locked)
                    row = await repo.charge(conn, user_id, amount, request_id, fp, actor, meta)
                    if row["status"] != "OK":
                        # Keep the maintenance; report the shortfall after commit.
                        outcome: ChargeResult | DomainError = domain.insufficient(
                            locked["balance_nanos"] - locked["held_nanos"], amount
                        )
                    else:
                        tx = await repo.get_transaction(conn, str(row["transaction_id"]))
                        assert tx is not None
                        outcome = ChargeResult(tx, row["balance_after"] - row["held"])
                return outcome

        result = await self._retrying(slow)
        if isinstance(result, DomainError):
            raise result
        return result

    async def charge_usage(
        self, user_id: str, charges: list[domain.UsageCharge], allow_partial: bool, actor: Actor
    ) -> tuple[list[domain.UsageResult], int]:
        """Charges many usage events to one account in one statement (see ledger_charge_usage)."""

        def results(rows: list[asyncpg.Record]) -> tuple[list[domain.UsageResult], int]:
            out = []
            for charge, row in zip(charges, rows, strict=True):
                if row["duplicate"] and row["fingerprint"] != charge.fingerprint(user_id):
                    raise domain.request_id_reused(charge.request_id)
                out.append(
                    domain.UsageResult(
                        request_id=charge.request_id,
                        charged_nanos=row["charged"],
                        shortfall_nanos=charge.amount_nanos - row["charged"],
                        transaction_id="" if row["transaction_id"] is None else str(row["transaction_id"]),
                        duplicate=row["duplicate"],
                    )
                )
            return out, int(rows[0]["balance_after"])

        async def work() -> tuple[list[domain.UsageResult], int]:
            async with self._pool.acquire() as conn:
                rows = await repo.charge_usage(conn, user_id, charges, allow_partial, actor)
                if rows[0]["status"] == "OK":
                    return results(rows)
                async with conn.transaction():
                    await self._open_or_maintain(conn, user_id)
                    rows = await repo.charge_usage(conn, user_id, charges, allow_partial, actor)
                assert rows[0]["status"] == "OK"
                return results(rows)

        return await self._retrying(work)

    async def charge_usage_batch(self, items: list[domain.UsageItem], actor: Actor) -> list[domain.UsageItemResult]:
        """Charges usage items of many accounts in one transaction (see ledger_charge_usage_batch).

        Accounts that are missing or have maintenance due are brought up to date
        first, in user-id order, up to ``SLOW_ACCOUNTS_PER_TRANSACTION`` of them
        per transaction, and the batch is then run again: a bounded number of
        transactions, never one per item (nor one per new account).
        """

        async def work() -> list[asyncpg.Record]:
            async with self._pool.acquire() as conn:
                for _ in range(3):
                    rows = await repo.charge_usage_batch(conn, items, actor)
                    slow = sorted({r["user_id"] for r in rows if r["status"] == "SLOW_PATH"})
                    if not slow:
                        return rows
                    step = SLOW_ACCOUNTS_PER_TRANSACTION
                    for start in range(0, len(slow), step):
                        async with conn.transaction():
                            for user_id in slow[start : start + step]:
                                await self._open_or_maintain(conn, user_id)
            raise asyncpg.SerializationError("accounts kept needing maintenance")

        rows = await self._retrying(work)
        results = []
        for item, row in zip(items, rows, strict=True):
            if row["status"] == "REUSED":
                outcome = "REUSED"
            else:
                outcome = "SHORTFALL" if row["shortfall"] > 0 else "CHARGED"
            results.append(
                domain.UsageItemResult(
                    user_id=item.user_id,
                    event_id=item.event_id,
                    outcome=outcome,
                    charged_nanos=int(row["charged"]),
                    shortfall_nanos=int(row["shortfall"]),
                    transaction_id="" if row["transaction_id"] is None else str(row["transaction_id"]),
                    duplicate=bool(row["duplicate"]),
                )
            )
        return results

    async def account_states(self, user_ids: list[str]) -> dict[str, asyncpg.Record]:
        """Tier and period of the accounts that exist (nothing is created)."""
        async with self._pool.acquire() as conn:
            return await repo.account_states(conn, user_ids)

    async def create_holds(self, items: list[HoldRequest], actor: Actor) -> list[HoldResult | DomainError]:
        """Many holds at once, each exactly as create_hold would make it (see CreateHolds).

        The first occurrence of each (user, request id) goes into one statement —
        ``ledger_hold`` per item, accounts in sorted order, one commit. Items that
        statement declines (balance, maintenance due, missing account), repeats of a
        (user, request id) within the batch, and everything when the statement is
        refused as a whole (a request id already used: replay or reuse; a
        serialization failure) run through create_hold one by one.
        """
        fps = [i.fingerprint() for i in items]
        out: list[HoldResult | DomainError | None] = [None] * len(items)
        keys: set[tuple[str, str]] = set()
        batch: list[int] = []
        alone: list[int] = []
        for index, item in enumerate(items):
            key = (item.user_id, item.request_id)
            (alone if key in keys else batch).append(index)
            keys.add(key)
        batch.sort(key=lambda index: items[index].user_id)  # the fixed lock order
        try:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    _HOLDS_SQL,
                    [items[i].user_id for i in batch],
                    [items[i].amount for i in batch],
                    [items[i].ttl for i in batch],
                    [items[i].request_id for i in batch],
                    [fps[i] for i in batch],
                    [items[i].reason for i in batch],
                    [items[i].reference_id for i in batch],
                    actor.subject,
                    actor.role,
                )
            for index, row in zip(batch, rows, strict=True):
                if row["status"] == "OK":
                    out[index] = _new_hold(items[index].user_id, items[index].amount, row)
                else:
                    alone.append(index)
        except (asyncpg.UniqueViolationError, asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
            alone = list(range(len(items)))

        async def one(index: int) -> None:
            try:
                out[index] = await self.create_hold(items[index], actor)
            except DomainError as error:
                out[index] = error

        # A repeat of a (user, request id) runs after its first occurrence, so that it replays it.
        waves: tuple[list[int], list[int]] = ([], [])
        seen: set[tuple[str, str]] = set()
        for index in sorted(alone):
            key = (items[index].user_id, items[index].request_id)
            waves[key in seen].append(index)
            seen.add(key)
        for wave in waves:
            await asyncio.gather(*(one(index) for index in wave))
        assert all(r is not None for r in out)
        return [r for r in out if r is not None]

    @staticmethod
    async def _charge_result(conn: asyncpg.Connection, tx: Transaction) -> ChargeResult:
        found = await repo.get_account(conn, tx.user_id)
        assert found is not None
        return ChargeResult(tx, found[0].available_nanos)

    async def create_hold(self, item: HoldRequest, actor: Actor) -> HoldResult:
        user_id, amount, ttl, request_id = item.user_id, item.amount, item.ttl, item.request_id
        reason, reference_id = item.reason, item.reference_id
        fp = item.fingerprint()

        async def replay(conn: asyncpg.Connection) -> HoldResult | None:
            found = await repo.find_hold_by_request(conn, user_id, request_id)
            if found is None:
                return None
            held, stored_fp = found
            if stored_fp != fp:
                raise domain.request_id_reused(request_id)
            account = await repo.get_account(conn, user_id)
            assert account is not None
            return HoldResult(held, account[0].available_nanos)

        async with self._pool.acquire() as conn:
            try:
                row = await repo.hold(conn, user_id, amount, ttl, request_id, fp, actor, reason, reference_id)
            except asyncpg.UniqueViolationError:
                replayed = await replay(conn)
                assert replayed is not None
                return replayed
            if row["status"] == "OK":
                return _new_hold(user_id, amount, row)

        async def slow() -> HoldResult | DomainError:
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    locked, created = await self._lock_or_create_flagged(conn, user_id, create=True)
                    existing = await replay(conn)
                    if existing is not None:
                        return existing
                    if not created:
                        locked, _ = await self._maintain_locked(conn, locked)
                    row = await repo.hold(conn, user_id, amount, ttl, request_id, fp, actor, reason, reference_id)
                    outcome: HoldResult | DomainError
                    if row["status"] != "OK":
                        outcome = domain.insufficient(locked["balance_nanos"] - locked["held_nanos"], amount)
                    else:
                        outcome = _new_hold(user_id, amount, row)
                return outcome

        result = await self._retrying(slow)
        if isinstance(result, DomainError):
            raise result
        return result

    async def settle_hold(
        self, hold_id: str, capture: int | None, request_id: str, actor: Actor, meta: ChargeMeta
    ) -> SettleResult:
        """Captures ``capture`` nanos of a hold (releasing the rest), or releases it (``None``)."""
        if capture is None:
            fp = domain.fingerprint("release", hold=hold_id)
        else:
            fp = domain.fingerprint(
                "capture",
                hold=hold_id,
                amount=capture,
                reason=meta.reason,
                model=meta.model,
                ref=meta.reference_id,
                price=meta.price_version,
            )

        async def work() -> SettleResult:
            async with self._pool.acquire() as conn:
                try:
                    row = await repo.settle_hold(conn, hold_id, capture, request_id, fp, actor, meta)
                except asyncpg.UniqueViolationError:
                    # The request id already names another transaction on this account.
                    raise domain.request_id_reused(request_id) from None
                status = row["status"]
                found = await repo.get_hold(conn, hold_id)
                if status == "HOLD_NOT_FOUND" or found is None:
                    raise not_found("HOLD_NOT_FOUND", "no such hold", hold_id=hold_id)
                held, hold_row = found
                if status == "REPLAY" and hold_row["settle_fingerprint"] != fp:
                    raise domain.request_id_reused(request_id)
                if status in ("OK", "REPLAY"):
                    tx = None
                    if held.capture_transaction_id:
                        tx = await repo.get_transaction(conn, held.capture_transaction_id)
                    return SettleResult(held, tx)
                if status == "HOLD_EXPIRED":
                    raise precondition("HOLD_EXPIRED", "the hold expired before it was captured", hold_id=hold_id)
                if status == "HOLD_ALREADY_SETTLED":
                    raise precondition(
                        "HOLD_ALREADY_SETTLED",
                        f"the hold is already {held.status.lower()}",
                        hold_id=hold_id,
                    )
                if status == "CAPTURE_EXCEEDS_HOLD":
                    raise precondition(
                        "CAPTURE_EXCEEDS_HOLD",
                        f"cannot capture more than the {held.amount_nanos} nanos held",
                        held_nanos=str(held.amount_nanos),
                    )
                raise AssertionError(f"unexpected settle status {status}")

        return await self._retrying(work)

    async def get_hold(self, hold_id: str) -> Hold | None:
        async with self._pool.acquire() as conn:
            found = await repo.get_hold(conn, hold_id)
            return None if found is None else found[0]

    # --- tiers and periods ------------------------------------------------------------------

    async def set_tier(
        self,
        user_id: str,
        tier_id: str,
        request_id: str,
        actor: Actor,
        reason: str,
        expected_change_id: str = "",
        *,
        revert_only: bool = False,
    ) -> tuple[Account, str, str]:
        """Moves the account to ``tier_id``; returns (the account, the tier it replaced, this change's id).

        Serialised per account by the account row lock, including for a user without an account: whoever
        loses the race to create it waits for the winner's commit, then applies its own change on top, so
        the final tier is the last committed change's and each ``previous_tier`` is the one it replaced.
        With ``expected_change_id`` the change applies only while that change is still the latest
        (checked under the lock): TIER_CHANGED_SINCE otherwise. With ``revert_only`` the change must
        moreover undo that change exactly: made by the same actor, back to the tier it replaced.
        """
        tier = await self.tier(tier_id)
        fields = {"user": user_id, "tier": tier_id, "reason": reason}
        if expected_change_id:
            fields["expected_change_id"] = expected_change_id
        fp = domain.fingerprint("set_tier", **fields)

        async def work() -> tuple[Account, str, str]:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await repo.lock_account(conn, user_id)
                created = False
                if row is None:
                    if expected_change_id:
                        raise domain.tier_changed_since(user_id, expected_change_id)
                    # A new user starts directly on the requested tier (unless someone else creates it first).
                    row, created = await self._lock_or_create_flagged(conn, user_id, create=True, tier=tier)
                if created:
                    previous, updated = "", row
                else:
                    saved = await repo.find_request(conn, user_id, request_id)
                    if saved is not None:
                        operation, stored_fp, response = saved
                        if operation != "set_tier" or stored_fp != fp:
                            raise domain.request_id_reused(request_id)
                        answer = json.loads(response)
                        found = await repo.get_account(conn, user_id)
                        assert found is not None
                        return found[0], str(answer["previous_tier"]), str(answer.get("change_id", ""))
                    if expected_change_id and row["tier_change_id"] != expected_change_id:
                        raise domain.tier_changed_since(user_id, expected_change_id)
                    if revert_only:
                        undone = await repo.get_tier_change(conn, user_id, expected_change_id)
                        if undone is None or undone["actor"] != actor.subject or undone["previous_tier"] != tier_id:
                            raise DomainError(
                                "TIER_NOT_ALLOWED_FOR_COUPONS",
                                "only a revert of the caller's own tier change to the tier it replaced is allowed",
                                code=Code.PERMISSION_DENIED,
                                metadata={"tier": tier_id},
                            )
                    previous = row["tier_id"]
                    updated, _ = await self._maintain_locked(conn, row, new_tier=tier)
                change_id = str(uuid7())
                await repo.record_tier_change(
                    conn,
                    user_id=user_id,
                    change_id=change_id,
                    previous_tier=previous,
                    tier=tier_id,
                    request_id=request_id,
                    actor=actor.subject,
                    reason=reason,
                )
                await repo.save_request(
                    conn,
                    user_id,
                    request_id,
                    "set_tier",
                    fp,
                    json.dumps(
                        {"previous_tier": previous, "tier": tier_id, "actor": actor.subject, "change_id": change_id}
                    ).encode(),
                )
                log.info("tier changed", extra={"user_id": user_id, "from": previous, "to": tier_id})
                return repo.to_account(updated), str(previous), change_id

        return await self._retrying(work)

    async def reset_periods(self, user_id: str, request_id: str) -> int:
        scope = user_id or "*"
        fp = domain.fingerprint("reset_periods", user=user_id)
        async with self._pool.acquire() as conn:
            saved = await repo.find_request(conn, scope, request_id)
        if saved is not None:
            operation, stored_fp, response = saved
            if operation != "reset_periods" or stored_fp != fp:
                raise domain.request_id_reused(request_id)
            return int(json.loads(response)["reset_count"])
        if user_id:
            count = 1 if await self.maintain(user_id) else 0
        else:
            count = 0
            while True:
                done = await self.run_due_maintenance()
                count += done
                if done == 0:
                    break
        async with self._pool.acquire() as conn:
            try:
                await repo.save_request(
                    conn,
                    scope,
                    request_id,
                    "reset_periods",
                    fp,
                    json.dumps({"reset_count": count}).encode(),
                )
            except asyncpg.UniqueViolationError:
                # A concurrent call with the same id finished first; its answer is the answer.
                saved = await repo.find_request(conn, scope, request_id)
                assert saved is not None
                return int(json.loads(saved[2])["reset_count"])
        return count


def _new_hold(user_id: str, amount: int, row: asyncpg.Record) -> HoldResult:
    """The hold ledger_hold just created, from what it returned (no second round trip to read it back)."""
    hold = Hold(
        hold_id=str(row["hold_id"]),
        user_id=user_id,
        amount_nanos=amount,
        captured_nanos=0,
        status="ACTIVE",
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        capture_transaction_id="",
    )
    return HoldResult(hold, row["balance_after"] - row["held"])
