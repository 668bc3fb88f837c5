"""Explicit SQL for usage events, daily rollups, quota windows and authorizations."""

from __future__ import annotations

import json
from datetime import date, datetime

import asyncpg

from services.metering.domain import Event

_ROLLUP_UPSERT = """
    ON CONFLICT (user_id, day, service, model) DO UPDATE SET
        event_count = daily_usage.event_count + EXCLUDED.event_count,
        input_tokens = daily_usage.input_tokens + EXCLUDED.input_tokens,
        output_tokens = daily_usage.output_tokens + EXCLUDED.output_tokens,
        quantity = daily_usage.quantity + EXCLUDED.quantity,
        cost_nanos = daily_usage.cost_nanos + EXCLUDED.cost_nanos,
        charged_nanos = daily_usage.charged_nanos + EXCLUDED.charged_nanos,
        shortfall_nanos = daily_usage.shortfall_nanos + EXCLUDED.shortfall_nanos
"""


class EventIdReused(Exception):
    """The batch reuses an event id with a different payload; nothing was recorded."""

    def __init__(self, event_id: str) -> None:
        super().__init__(event_id)
        self.event_id = event_id


async def record_events(
    conn: asyncpg.Connection, events: list[Event], costs: list[int | None], versions: list[str]
) -> list[asyncpg.Record]:
    """Records the batch all or nothing (see record_events in SQL); one row per event, in order."""
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT * FROM record_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            [e.event_id for e in events],
            [e.user_id for e in events],
            [e.service for e in events],
            [e.model for e in events],
            [e.provider for e in events],
            [e.input_tokens for e in events],
            [e.output_tokens for e in events],
            [e.quantity for e in events],
            [e.byok for e in events],
            [e.hold_id for e in events],
            [e.occurred_at for e in events],
            [json.dumps(e.metadata) if e.metadata else "{}" for e in events],
            [e.fingerprint() for e in events],
            costs,
            versions,
        )
    except asyncpg.PostgresError as error:
        if getattr(error, "sqlstate", "") == "CM001":
            raise EventIdReused(str(getattr(error, "detail", "") or "")) from None
        raise
    return rows


async def set_prices(
    conn: asyncpg.Connection, event_ids: list[str], costs: list[int], versions: list[str]
) -> dict[str, tuple[int, str]]:
    """Stores the price of events not priced yet (and counts it in the rollups); returns every event's
    stored (cost, version) — another replica's, if it priced first."""
    async with conn.transaction():
        await conn.execute(
            f"""
            WITH priced AS (
                UPDATE events e SET cost_nanos = u.cost, price_version = u.version
                  FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(event_id, cost, version)
                 WHERE e.event_id = u.event_id AND e.cost_nanos IS NULL
                RETURNING e.user_id, e.occurred_at, e.service, e.model, u.cost
            )
            INSERT INTO daily_usage (user_id, day, service, model, cost_nanos)
            SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date, service, model, sum(cost)
              FROM priced GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            {_ROLLUP_UPSERT}
            """,
            event_ids,
            costs,
            versions,
        )
        rows = await conn.fetch(
            "SELECT event_id, cost_nanos, price_version FROM events WHERE event_id = ANY ($1::text[])", event_ids
        )
    return {r["event_id"]: (r["cost_nanos"], r["price_version"]) for r in rows}


async def settle(
    conn: asyncpg.Connection,
    event_ids: list[str],
    charged: list[int],
    shortfalls: list[int],
    transactions: list[str],
) -> int:
    """Records ledger outcomes of still-RECORDED events (set-based) and adds them to the rollups."""
    value = await conn.fetchval(
        f"""
        WITH updated AS (
            UPDATE events e SET status = CASE WHEN u.shortfall > 0 THEN 'SHORTFALL' ELSE 'CHARGED' END,
                   charged_nanos = u.charged, shortfall_nanos = u.shortfall, transaction_id = u.tx,
                   charged_at = clock_timestamp(), last_error = ''
              FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS u(event_id, charged, shortfall, tx)
             WHERE e.event_id = u.event_id AND e.status = 'RECORDED'
            RETURNING e.user_id, e.occurred_at, e.service, e.model, u.charged, u.shortfall
        ), counted AS (
            INSERT INTO daily_usage (user_id, day, service, model, charged_nanos, shortfall_nanos)
            SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date, service, model, sum(charged), sum(shortfall)
              FROM updated GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            {_ROLLUP_UPSERT}
        )
        SELECT count(*) FROM updated
        """,
        event_ids,
        charged,
        shortfalls,
        transactions,
    )
    return int(value)


async def retry_later(conn: asyncpg.Connection, event_ids: list[str], error: str, max_backoff: float) -> None:
    """One more failed attempt: the event waits (exponential backoff, capped) for the recovery pass."""
    await conn.execute(
        """
        UPDATE events SET attempts = attempts + 1, last_error = $2,
               next_attempt_at = clock_timestamp() + make_interval(secs => least($3, 0.5 * 2 ^ least(attempts, 20)))
         WHERE event_id = ANY ($1::text[]) AND status = 'RECORDED'
        """,
        event_ids,
        error[:500],
        max_backoff,
    )


async def park(conn: asyncpg.Connection, event_ids: list[str], reasons: list[str]) -> None:
    """Gives up on events (bounded retries spent, or a refusal no retry can change), keeping the reason."""
    await conn.execute(
        """
        UPDATE events e SET status = 'PARKED', park_reason = u.reason, last_error = u.reason,
               attempts = e.attempts + 1
          FROM unnest($1::text[], $2::text[]) AS u(event_id, reason)
         WHERE e.event_id = u.event_id AND e.status = 'RECORDED'
        """,
        event_ids,
        reasons,
    )


async def requeue_parked(conn: asyncpg.Connection, event_ids: list[str], lease_seconds: float) -> list[asyncpg.Record]:
    """Puts the PARKED ones of ``event_ids`` back into the outbox (attempts reset, reason cleared), claimed by
    the caller for a lease as ``claim_due`` would; the rows as they are now. Others are not touched."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        UPDATE events SET status = 'RECORDED', park_reason = '', attempts = 0,
               next_attempt_at = clock_timestamp() + make_interval(secs => $2)
         WHERE event_id = ANY ($1::text[]) AND status = 'PARKED'
        RETURNING *
        """,
        event_ids,
        lease_seconds,
    )
    return rows


async def lock_events(conn: asyncpg.Connection, event_ids: list[str]) -> set[str]:
    """Locks the existing ones of ``event_ids`` (in id order) for the caller's transaction; their ids."""
    rows = await conn.fetch(
        "SELECT event_id FROM events WHERE event_id = ANY ($1::text[]) ORDER BY event_id FOR UPDATE", event_ids
    )
    return {r["event_id"] for r in rows}


async def claim_due(conn: asyncpg.Connection, limit: int, lease_seconds: float) -> list[asyncpg.Record]:
    """Claims due RECORDED events for this replica: rows another replica is claiming are skipped
    (SKIP LOCKED), and a claim pushes the next attempt out by a lease, so a replica that dies
    mid-way leaves them to others after the lease."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        WITH due AS (
            SELECT event_id FROM events
             WHERE status = 'RECORDED' AND next_attempt_at <= clock_timestamp()
             ORDER BY next_attempt_at LIMIT $1
             FOR UPDATE SKIP LOCKED
        )
        UPDATE events e SET next_attempt_at = clock_timestamp() + make_interval(secs => $2)
          FROM due WHERE e.event_id = due.event_id
        RETURNING e.*
        """,
        limit,
        lease_seconds,
    )
    return rows


async def events_by_id(conn: asyncpg.Connection, event_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM events WHERE event_id = ANY($1::text[])", event_ids)
    return {r["event_id"]: r for r in rows}


async def list_parked(
    conn: asyncpg.Connection, user_id: str, before: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT * FROM events
         WHERE status = 'PARKED' AND ($1 = '' OR user_id = $1)
           AND ($2::timestamptz IS NULL OR (recorded_at, event_id) < ($2, $3))
         ORDER BY recorded_at DESC, event_id DESC LIMIT $4
        """,
        user_id,
        before[0] if before else None,
        before[1] if before else "",
        limit,
    )
    return rows


#: ListPendingEvents counts at most this many (an outage's backlog is not worth a full count per page).
PENDING_COUNT_CAP = 100_000


async def list_pending(
    conn: asyncpg.Connection, user_id: str, after: tuple[datetime, str] | None, limit: int
) -> tuple[list[asyncpg.Record], int]:
    """RECORDED events, oldest first, after ``after`` (recorded_at, event_id); and how many there are
    (of ``user_id`` if given), up to PENDING_COUNT_CAP."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT * FROM events
         WHERE status = 'RECORDED' AND ($1 = '' OR user_id = $1)
           AND ($2::timestamptz IS NULL OR (recorded_at, event_id) > ($2, $3))
         ORDER BY recorded_at, event_id LIMIT $4
        """,
        user_id,
        after[0] if after else None,
        after[1] if after else "",
        limit,
    )
    total = await conn.fetchval(
        """
        SELECT count(*) FROM (
            SELECT 1 FROM events WHERE status = 'RECORDED' AND ($1 = '' OR user_id = $1) LIMIT $2
        ) pending
        """,
        user_id,
        PENDING_COUNT_CAP,
    )
    return rows, int(total)


async def release_claim(conn: asyncpg.Connection, user_id: str, request_id: str) -> None:
    """An attempt that could not answer gives its request id's count back and leaves the claim unanswered,
    so that a retry counts afresh (an answered claim keeps its count)."""
    await conn.execute(
        """
        WITH claim AS (
            SELECT a.counted_in FROM authorizations a
             WHERE a.user_id = $1 AND a.request_id = $2 AND a.response IS NULL AND a.counted_in IS NOT NULL
               FOR UPDATE
        ), released AS (
            UPDATE authorizations a SET counted_in = NULL FROM claim
             WHERE a.user_id = $1 AND a.request_id = $2
            RETURNING claim.counted_in
        )
        UPDATE quota_windows q SET calls = greatest(q.calls - 1, 0)
          FROM released r WHERE q.user_id = $1 AND q.window_start = r.counted_in
        """,
        user_id,
        request_id,
    )


async def calls_in(conn: asyncpg.Connection, user_id: str, window: datetime) -> int:
    value = await conn.fetchval(
        "SELECT calls FROM quota_windows WHERE user_id = $1 AND window_start = $2", user_id, window
    )
    return int(value or 0)


async def begin_authorizations(
    conn: asyncpg.Connection, steps: list[tuple[str, str, datetime, int, str]]
) -> list[asyncpg.Record]:
    """begin_authorization for many (user, request id, window, limit, fingerprint) steps in one statement, in
    the given order (each sees the ones before it); one row per step, same columns as begin_authorization."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT b.fingerprint, b.response, b.counted, b.current
          FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::text[])
               WITH ORDINALITY AS i(u, r, w, l, fp, ord)
         CROSS JOIN LATERAL begin_authorization(i.u, i.r, i.w, i.l, i.fp) AS b
         ORDER BY i.ord
        """,
        [s[0] for s in steps],
        [s[1] for s in steps],
        [s[2] for s in steps],
        [s[3] for s in steps],
        [s[4] for s in steps],
    )
    return rows


async def finish_authorizations(
    conn: asyncpg.Connection, steps: list[tuple[str, str, str, bytes, bool]]
) -> set[tuple[str, str]]:
    """Stores the answers of many (user, request id, fingerprint, answer, refused) steps on their claims in
    one statement; a refusal gives the claim's count back. Returns the (user, request id) pairs whose answer
    this stored (first answer wins; the others were answered by another attempt with the same id)."""
    rows = await conn.fetch(
        """
        WITH input AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::boolean[])
                     AS i(u, r, fp, answer, refused)
        ), stored AS (
            -- counted_in stays as it was: for a refusal, the window its count is given back to below.
            UPDATE authorizations a SET response = i.answer
              FROM input i
             WHERE a.user_id = i.u AND a.request_id = i.r AND a.fingerprint = i.fp AND a.response IS NULL
            RETURNING a.user_id, a.request_id, CASE WHEN i.refused THEN a.counted_in END AS given_back
        ), uncounted AS (
            UPDATE quota_windows q SET calls = greatest(q.calls - n.k, 0)
              FROM (SELECT user_id, given_back, count(*) AS k FROM stored WHERE given_back IS NOT NULL
                     GROUP BY 1, 2) n
             WHERE q.user_id = n.user_id AND q.window_start = n.given_back
        )
        SELECT user_id, request_id FROM stored
        """,
        [s[0] for s in steps],
        [s[1] for s in steps],
        [s[2] for s in steps],
        [s[3] for s in steps],
        [s[4] for s in steps],
    )
    return {(r["user_id"], r["request_id"]) for r in rows}


async def find_authorization(conn: asyncpg.Connection, user_id: str, request_id: str) -> tuple[str, bytes] | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, response FROM authorizations WHERE user_id = $1 AND request_id = $2", user_id, request_id
    )
    return None if row is None else (row["fingerprint"], bytes(row["response"]))


async def usage_rows(conn: asyncpg.Connection, user_id: str, first: date, last: date) -> list[asyncpg.Record]:
    """Daily rollups of the range (the reports aggregate these, never the raw events)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM daily_usage WHERE user_id = $1 AND day >= $2 AND day < $3 ORDER BY day, service, model",
        user_id,
        first,
        last,
    )
    return rows


async def list_events(
    conn: asyncpg.Connection, user_id: str, before: tuple[datetime, str] | None, limit: int
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT * FROM events
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (recorded_at, event_id) < ($2, $3))
         ORDER BY recorded_at DESC, event_id DESC LIMIT $4
        """,
        user_id,
        before[0] if before else None,
        before[1] if before else "",
        limit,
    )
    return rows
