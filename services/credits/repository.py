"""Explicit SQL for the credits ledger over an asyncpg connection; rows become domain records.

Functions that change several rows expect to run inside the caller's
transaction with the account row locked (see ``lock_account``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.credits import domain
from services.credits.domain import (
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

_TX_COLUMNS = """transaction_id, user_id, kind, amount_nanos, balance_after_nanos, debit_account, credit_account,
    request_id, fingerprint, related_transaction_id, hold_id, actor_subject, actor_role, reason, service, model,
    reference_id, price_version, created_at"""

_HOLD_COLUMNS = """hold_id, user_id, amount_nanos, captured_nanos, status, expires_at, created_at,
    capture_transaction_id, fingerprint, settle_fingerprint"""


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def to_transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        transaction_id=str(row["transaction_id"]),
        user_id=row["user_id"],
        kind=row["kind"],
        amount_nanos=row["amount_nanos"],
        balance_after_nanos=row["balance_after_nanos"],
        debit_account=row["debit_account"],
        credit_account=row["credit_account"],
        request_id=_s(row["request_id"]),
        related_transaction_id=_s(row["related_transaction_id"]),
        hold_id=_s(row["hold_id"]),
        actor_subject=row["actor_subject"],
        actor_role=row["actor_role"],
        reason=row["reason"],
        service=row["service"],
        model=row["model"],
        reference_id=row["reference_id"],
        price_version=row["price_version"],
        created_at=row["created_at"],
    )


def to_account(row: asyncpg.Record) -> Account:
    return Account(
        user_id=row["user_id"],
        tier_id=row["tier_id"],
        balance_nanos=row["balance_nanos"],
        held_nanos=row["held_nanos"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        created_at=row["created_at"],
    )


def to_hold(row: asyncpg.Record) -> Hold:
    return Hold(
        hold_id=str(row["hold_id"]),
        user_id=row["user_id"],
        amount_nanos=row["amount_nanos"],
        captured_nanos=row["captured_nanos"],
        status=row["status"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        capture_transaction_id=_s(row["capture_transaction_id"]),
    )


# --- Tiers -----------------------------------------------------------------------


async def load_tiers(conn: asyncpg.Connection) -> dict[str, Tier]:
    rows = await conn.fetch("SELECT * FROM tiers ORDER BY sort_order")
    return {
        r["tier_id"]: Tier(
            tier_id=r["tier_id"],
            display_name=r["display_name"],
            sort_order=r["sort_order"],
            price_cents=r["price_cents"],
            billing_period=r["billing_period"],
            credits_nanos=r["credits_nanos"],
            api_call_limit=r["api_call_limit"],
            api_call_period=r["api_call_period"],
            byok_allowed=r["byok_allowed"],
            markup_bps=r["markup_bps"],
            byok_markup_bps=r["byok_markup_bps"],
            free_model_fee_per_1k_tokens_nanos=r["free_model_fee_per_1k_tokens_nanos"],
            features=tuple(r["features"]),
        )
        for r in rows
    }


# --- Accounts --------------------------------------------------------------------


async def get_account(conn: asyncpg.Connection, user_id: str) -> tuple[Account, bool] | None:
    """The account and whether maintenance is due (period ended, grant or hold expired)."""
    row = await conn.fetchrow(
        """
        SELECT a.*,
               (a.period_end <= now() OR coalesce(a.next_expiry_at <= now(), false)
                OR EXISTS (SELECT 1 FROM holds h WHERE h.user_id = a.user_id AND h.status = 'ACTIVE'
                           AND h.expires_at <= now())) AS due
          FROM accounts a WHERE a.user_id = $1
        """,
        user_id,
    )
    if row is None:
        return None
    return to_account(row), bool(row["due"])


BalanceView = tuple[Account, bool, list[GrantView]]

_BALANCE_VIEW = """
SELECT a.*,
       (a.period_end <= now() OR coalesce(a.next_expiry_at <= now(), false)
        OR EXISTS (SELECT 1 FROM holds h WHERE h.user_id = a.user_id AND h.status = 'ACTIVE'
                   AND h.expires_at <= now())) AS due,
       g.ids AS grant_ids, g.sources AS grant_sources, g.remaining AS grant_remaining,
       g.expires AS grant_expires
  FROM accounts a
  LEFT JOIN LATERAL (
        SELECT array_agg(x.grant_id ORDER BY x.expires_at, x.grant_id) AS ids,
               array_agg(x.source ORDER BY x.expires_at, x.grant_id) AS sources,
               array_agg(x.remaining_nanos ORDER BY x.expires_at, x.grant_id) AS remaining,
               array_agg(x.expires_at ORDER BY x.expires_at, x.grant_id) AS expires
          FROM (SELECT grant_id, source, remaining_nanos, expires_at FROM grants
                 WHERE user_id = a.user_id AND remaining_nanos > 0 AND expires_at IS NOT NULL
                 ORDER BY expires_at, grant_id LIMIT $2) x
       ) g ON true
 WHERE a.user_id = ANY($1::text[])
"""


def _to_balance_view(row: asyncpg.Record) -> BalanceView:
    grants = [
        GrantView(str(grant_id), source, remaining, expires)
        for grant_id, source, remaining, expires in zip(
            row["grant_ids"] or [],
            row["grant_sources"] or [],
            row["grant_remaining"] or [],
            row["grant_expires"] or [],
            strict=True,
        )
    ]
    return to_account(row), bool(row["due"]), grants


async def balance_views(conn: asyncpg.Connection, user_ids: list[str], limit: int = 20) -> dict[str, BalanceView]:
    """GetBalance for many accounts in one round trip: each account, whether maintenance is
    due, and its soonest-expiring grants. Accounts that do not exist are absent."""
    rows = await conn.fetch(_BALANCE_VIEW, user_ids, limit)
    return {row["user_id"]: _to_balance_view(row) for row in rows}


async def balance_view(conn: asyncpg.Connection, user_id: str, limit: int = 20) -> BalanceView | None:
    """GetBalance for one account in one round trip (see :func:`balance_views`)."""
    return (await balance_views(conn, [user_id], limit)).get(user_id)


async def lock_account(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT a.*, now() AS db_now FROM accounts a WHERE a.user_id = $1 FOR UPDATE", user_id)


async def insert_account(conn: asyncpg.Connection, user_id: str, tier: Tier) -> asyncpg.Record | None:
    """Creates the account (no credits yet); None when it already exists. Returns the locked row."""
    return await conn.fetchrow(
        """
        INSERT INTO accounts (user_id, tier_id, period_anchor, period_start, period_end)
        SELECT $1, $2, now(), now(),
               CASE $3 WHEN 'week' THEN now() + interval '7 days' ELSE now() + interval '1 month' END
        ON CONFLICT (user_id) DO NOTHING
        RETURNING *, now() AS db_now
        """,
        user_id,
        tier.tier_id,
        tier.billing_period,
    )


async def list_accounts(conn: asyncpg.Connection, after: str, tier: str, limit: int) -> list[Account]:
    rows = await conn.fetch(
        """
        SELECT * FROM accounts
         WHERE user_id > $1 AND ($2 = '' OR tier_id = $2)
         ORDER BY user_id LIMIT $3
        """,
        after,
        tier,
        limit,
    )
    return [to_account(r) for r in rows]


async def expiring_grants(conn: asyncpg.Connection, user_id: str, limit: int = 20) -> list[GrantView]:
    rows = await conn.fetch(
        """
        SELECT grant_id, source, remaining_nanos, expires_at FROM grants
         WHERE user_id = $1 AND remaining_nanos > 0 AND expires_at IS NOT NULL
         ORDER BY expires_at, grant_id LIMIT $2
        """,
        user_id,
        limit,
    )
    return [GrantView(str(r["grant_id"]), r["source"], r["remaining_nanos"], r["expires_at"]) for r in rows]


async def due_accounts(conn: asyncpg.Connection, limit: int) -> list[str]:
    """Accounts with a period reset, a grant expiry or a stale hold due."""
    rows = await conn.fetch(
        """
        (SELECT user_id FROM accounts WHERE period_end <= now() ORDER BY period_end LIMIT $1)
        UNION
        (SELECT user_id FROM accounts WHERE next_expiry_at <= now() ORDER BY next_expiry_at LIMIT $1)
        UNION
        (SELECT user_id FROM holds WHERE status = 'ACTIVE' AND expires_at <= now() ORDER BY expires_at LIMIT $1)
        """,
        limit,
    )
    return [r["user_id"] for r in rows]


# --- Transfers -------------------------------------------------------------------


async def insert_transaction(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    kind: Kind,
    amount: int,
    debit: str,
    credit: str,
    balance_after: int,
    actor: Actor,
    request_id: str | None = None,
    fingerprint: str | None = None,
    related: str | None = None,
    meta: ChargeMeta = ChargeMeta(),  # noqa: B008 - frozen dataclass, safe default
) -> Transaction:
    row = await conn.fetchrow(
        f"""
        INSERT INTO transactions (user_id, kind, amount_nanos, debit_account, credit_account, balance_after_nanos,
            request_id, fingerprint, related_transaction_id, actor_subject, actor_role, reason, service, model,
            reference_id, price_version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        RETURNING {_TX_COLUMNS}
        """,
        user_id,
        kind.value,
        amount,
        debit,
        credit,
        balance_after,
        request_id,
        fingerprint,
        related,
        actor.subject,
        actor.role,
        meta.reason,
        actor.service,
        meta.model,
        meta.reference_id,
        meta.price_version,
    )
    assert row is not None
    return to_transaction(row)


async def insert_grant(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    source: Source,
    amount: int,
    expires_at: datetime | None,
    transaction_id: str,
    period_start: datetime | None = None,
) -> str:
    grant_id = await conn.fetchval(
        """
        INSERT INTO grants (user_id, source, amount_nanos, remaining_nanos, expires_at, period_start, transaction_id)
        VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING grant_id
        """,
        user_id,
        source.value,
        amount,
        expires_at,
        period_start,
        transaction_id,
    )
    return str(grant_id)


async def save_account_state(
    conn: asyncpg.Connection,
    user_id: str,
    *,
    balance: int,
    held: int,
    tier_id: str,
    period_anchor: datetime,
    period_start: datetime,
    period_end: datetime,
) -> asyncpg.Record:
    """Writes the locked account's new state and recomputes its next grant expiry."""
    row = await conn.fetchrow(
        """
        UPDATE accounts a
           SET balance_nanos = $2, held_nanos = $3, tier_id = $4,
               period_anchor = $5, period_start = $6, period_end = $7,
               next_expiry_at = (
                   SELECT least(
                       min(g.expires_at) FILTER (WHERE g.expires_at > now()),
                       -- Expired credits kept to back holds are looked at again when those holds end.
                       CASE WHEN bool_or(g.expires_at <= now()) THEN
                           (SELECT min(h.expires_at) FROM holds h WHERE h.user_id = $1 AND h.status = 'ACTIVE')
                       END)
                     FROM grants g WHERE g.user_id = $1 AND g.remaining_nanos > 0)
         WHERE a.user_id = $1
        RETURNING *, now() AS db_now
        """,
        user_id,
        balance,
        held,
        tier_id,
        period_anchor,
        period_start,
        period_end,
    )
    assert row is not None
    return row


async def expire_stale_holds(conn: asyncpg.Connection, user_id: str) -> int:
    """Marks the user's active holds past their TTL as expired; returns the amount they held."""
    value = await conn.fetchval(
        """
        WITH expired AS (
            UPDATE holds SET status = 'EXPIRED', settled_at = clock_timestamp()
             WHERE user_id = $1 AND status = 'ACTIVE' AND expires_at <= clock_timestamp()
            RETURNING amount_nanos)
        SELECT coalesce(sum(amount_nanos), 0) FROM expired
        """,
        user_id,
    )
    return int(value)


async def due_grants(conn: asyncpg.Connection, user_id: str) -> list[domain.DueGrant]:
    rows = await conn.fetch(
        """
        SELECT grant_id, remaining_nanos FROM grants
         WHERE user_id = $1 AND remaining_nanos > 0 AND expires_at <= now()
         ORDER BY expires_at, grant_id
        """,
        user_id,
    )
    return [domain.DueGrant(str(r["grant_id"]), r["remaining_nanos"]) for r in rows]


async def reduce_grant(conn: asyncpg.Connection, grant_id: str, amount: int) -> None:
    await conn.execute(
        "UPDATE grants SET remaining_nanos = remaining_nanos - $2 WHERE grant_id = $1",
        grant_id,
        amount,
    )


async def expire_tier_grants_now(conn: asyncpg.Connection, user_id: str) -> None:
    """Brings the expiry of the user's unspent tier allocations forward to now (tier change)."""
    await conn.execute(
        """
        UPDATE grants SET expires_at = now()
         WHERE user_id = $1 AND source = 'TIER' AND remaining_nanos > 0 AND expires_at > now()
        """,
        user_id,
    )


async def find_transaction_by_request(
    conn: asyncpg.Connection, user_id: str, request_id: str
) -> tuple[Transaction, str] | None:
    row = await conn.fetchrow(
        f"SELECT {_TX_COLUMNS} FROM transactions WHERE user_id = $1 AND request_id = $2",
        user_id,
        request_id,
    )
    return None if row is None else (to_transaction(row), row["fingerprint"] or "")


async def get_transaction(conn: asyncpg.Connection, transaction_id: str) -> Transaction | None:
    row = await conn.fetchrow(f"SELECT {_TX_COLUMNS} FROM transactions WHERE transaction_id = $1", transaction_id)
    return None if row is None else to_transaction(row)


async def refunded_total(conn: asyncpg.Connection, transaction_id: str) -> int:
    value = await conn.fetchval(
        "SELECT coalesce(sum(amount_nanos), 0) FROM transactions WHERE related_transaction_id = $1 AND kind = 'REFUND'",
        transaction_id,
    )
    return int(value)


async def grant_of_transaction(conn: asyncpg.Connection, transaction_id: str) -> str:
    return _s(await conn.fetchval("SELECT grant_id FROM grants WHERE transaction_id = $1", transaction_id))


async def list_transactions(
    conn: asyncpg.Connection,
    user_id: str,
    *,
    before_id: str | None,
    kind: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Transaction]:
    rows = await conn.fetch(
        f"""
        SELECT {_TX_COLUMNS} FROM transactions
         WHERE user_id = $1
           AND ($2::uuid IS NULL OR transaction_id < $2::uuid)
           AND ($3::text IS NULL OR kind = $3)
           AND ($4::timestamptz IS NULL OR created_at >= $4)
           AND ($5::timestamptz IS NULL OR created_at < $5)
         ORDER BY transaction_id DESC
         LIMIT $6
        """,
        user_id,
        before_id,
        kind,
        start,
        end,
        limit,
    )
    return [to_transaction(r) for r in rows]


# --- Hot-path functions (one round trip each; see the migration) -------------------


async def charge(
    conn: asyncpg.Connection,
    user_id: str,
    amount: int,
    request_id: str,
    fp: str,
    actor: Actor,
    meta: ChargeMeta,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM ledger_charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        user_id,
        amount,
        request_id,
        fp,
        actor.subject,
        actor.role,
        meta.reason,
        actor.service,
        meta.model,
        meta.reference_id,
        meta.price_version,
    )
    assert row is not None
    return row


async def hold(
    conn: asyncpg.Connection,
    user_id: str,
    amount: int,
    ttl_seconds: int,
    request_id: str,
    fp: str,
    actor: Actor,
    reason: str,
    reference_id: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM ledger_hold($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        user_id,
        amount,
        ttl_seconds,
        request_id,
        fp,
        actor.subject,
        actor.role,
        reason,
        reference_id,
    )
    assert row is not None
    return row


async def settle_hold(
    conn: asyncpg.Connection,
    hold_id: str,
    capture: int | None,
    request_id: str,
    fp: str,
    actor: Actor,
    meta: ChargeMeta,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM ledger_settle_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        hold_id,
        capture,
        request_id,
        fp,
        actor.subject,
        actor.role,
        meta.reason,
        actor.service,
        meta.model,
        meta.reference_id,
        meta.price_version,
    )
    assert row is not None
    return row


async def get_hold(conn: asyncpg.Connection, hold_id: str) -> tuple[Hold, asyncpg.Record] | None:
    row = await conn.fetchrow(f"SELECT {_HOLD_COLUMNS} FROM holds WHERE hold_id = $1", hold_id)
    return None if row is None else (to_hold(row), row)


async def find_hold_by_request(conn: asyncpg.Connection, user_id: str, request_id: str) -> tuple[Hold, str] | None:
    row = await conn.fetchrow(
        f"SELECT {_HOLD_COLUMNS} FROM holds WHERE user_id = $1 AND request_id = $2",
        user_id,
        request_id,
    )
    return None if row is None else (to_hold(row), row["fingerprint"])


# --- Idempotency records for non-transfer changes ------------------------------------


async def find_request(conn: asyncpg.Connection, scope: str, request_id: str) -> tuple[str, str, bytes] | None:
    row = await conn.fetchrow(
        "SELECT operation, fingerprint, response FROM idempotent_requests WHERE scope = $1 AND request_id = $2",
        scope,
        request_id,
    )
    return None if row is None else (row["operation"], row["fingerprint"], bytes(row["response"]))


async def record_tier_change(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    change_id: str,
    previous_tier: str,
    tier: str,
    request_id: str,
    actor: str,
    reason: str,
) -> None:
    """Makes ``change_id`` the locked account's latest tier change and appends it to the history."""
    await conn.execute("UPDATE accounts SET tier_change_id = $2 WHERE user_id = $1", user_id, change_id)
    await conn.execute(
        """
        INSERT INTO tier_changes (user_id, change_id, previous_tier, tier, request_id, actor, reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        user_id,
        change_id,
        previous_tier,
        tier,
        request_id,
        actor,
        reason,
    )


async def get_tier_change(conn: asyncpg.Connection, user_id: str, change_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT previous_tier, tier, actor FROM tier_changes WHERE user_id = $1 AND change_id = $2", user_id, change_id
    )


async def save_request(
    conn: asyncpg.Connection, scope: str, request_id: str, operation: str, fp: str, response: bytes
) -> None:
    await conn.execute(
        "INSERT INTO idempotent_requests (scope, request_id, operation, fingerprint, response)"
        " VALUES ($1, $2, $3, $4, $5)",
        scope,
        request_id,
        operation,
        fp,
        response,
    )


async def charge_usage(
    conn: asyncpg.Connection,
    user_id: str,
    charges: list[domain.UsageCharge],
    allow_partial: bool,
    actor: Actor,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM ledger_charge_usage($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        user_id,
        [c.request_id for c in charges],
        [c.amount_nanos for c in charges],
        [c.fingerprint(user_id) for c in charges],
        [c.model for c in charges],
        [c.reference_id for c in charges],
        [c.price_version for c in charges],
        [c.reason for c in charges],
        allow_partial,
        actor.subject,
        actor.role,
    )
    return rows


async def charge_usage_batch(
    conn: asyncpg.Connection, items: list[domain.UsageItem], actor: Actor
) -> list[asyncpg.Record]:
    """One call of ledger_charge_usage_batch (its own transaction in autocommit)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM ledger_charge_usage_batch($1, $2, $3, $4, $5::uuid[], $6, $7, $8, $9, $10)",
        [i.user_id for i in items],
        [i.event_id for i in items],
        [i.amount_nanos for i in items],
        [i.fingerprint() for i in items],
        [i.hold_id or None for i in items],
        [i.service for i in items],
        [i.model for i in items],
        [i.price_version for i in items],
        actor.subject,
        actor.role,
    )
    return rows


async def account_states(conn: asyncpg.Connection, user_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT user_id, tier_id, period_start, period_end FROM accounts WHERE user_id = ANY ($1::text[])", user_ids
    )
    return {r["user_id"]: r for r in rows}
