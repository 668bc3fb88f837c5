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


async def record_events(
    conn: asyncpg.Connection, events: list[Event], costs: list[int], versions: list[str]
) -> set[str]:
    """Inserts the events not seen before (set-based) and counts them in the rollups; returns the new ids."""
    rows = await conn.fetch(
        f"""
        WITH input AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                                 $7::bigint[], $8::bigint[], $9::boolean[], $10::text[], $11::timestamptz[],
                                 $12::jsonb[], $13::text[], $14::bigint[], $15::text[])
                AS i(event_id, user_id, service, model, provider, input_tokens, output_tokens, quantity, byok,
                     hold_id, occurred_at, metadata, fingerprint, cost_nanos, price_version)
        ), inserted AS (
            INSERT INTO events (event_id, user_id, service, model, provider, input_tokens, output_tokens, quantity,
                                byok, hold_id, occurred_at, metadata, fingerprint, cost_nanos, price_version, status)
            SELECT input.*, 'RECORDED' FROM input
            ON CONFLICT (event_id) DO NOTHING
            RETURNING *
        ), counted AS (
            INSERT INTO daily_usage (user_id, day, service, model, event_count, input_tokens, output_tokens,
                                     quantity, cost_nanos)
            SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date, service, model, count(*), sum(input_tokens),
                   sum(output_tokens), sum(quantity), sum(cost_nanos)
              FROM inserted GROUP BY 1, 2, 3, 4
            {_ROLLUP_UPSERT}
        )
        SELECT event_id FROM inserted
        """,
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
        [json.dumps(e.metadata) for e in events],
        [e.fingerprint() for e in events],
        costs,
        versions,
    )
    return {r["event_id"] for r in rows}


async def mark_charged(
    conn: asyncpg.Connection, event_ids: list[str], charged: list[int], shortfalls: list[int], transactions: list[str]
) -> int:
    """Records charges of still-uncharged events (set-based) and adds them to the rollups."""
    value = await conn.fetchval(
        f"""
        WITH updated AS (
            UPDATE events e SET status = 'CHARGED', charged_nanos = u.charged, shortfall_nanos = u.shortfall,
                   transaction_id = u.tx, charged_at = clock_timestamp()
              FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS u(event_id, charged, shortfall, tx)
             WHERE e.event_id = u.event_id AND e.status = 'RECORDED'
            RETURNING e.user_id, e.occurred_at, e.service, e.model, u.charged, u.shortfall
        ), counted AS (
            INSERT INTO daily_usage (user_id, day, service, model, charged_nanos, shortfall_nanos)
            SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date, service, model, sum(charged), sum(shortfall)
              FROM updated GROUP BY 1, 2, 3, 4
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


async def events_by_id(conn: asyncpg.Connection, event_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT * FROM events WHERE event_id = ANY($1::text[])", event_ids)
    return {r["event_id"]: r for r in rows}


async def uncharged(conn: asyncpg.Connection, older_than_seconds: float, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT * FROM events WHERE status = 'RECORDED' AND recorded_at <= clock_timestamp() - make_interval(secs => $1)
         ORDER BY recorded_at LIMIT $2
        """,
        older_than_seconds,
        limit,
    )
    return rows


async def count_call(conn: asyncpg.Connection, user_id: str, window: datetime, limit: int) -> int | None:
    """Counts one call in the window if it stays within ``limit`` (0 = unlimited); None when it would not."""
    value = await conn.fetchval(
        """
        INSERT INTO quota_windows AS q (user_id, window_start, calls) VALUES ($1, $2, 1)
        ON CONFLICT (user_id, window_start) DO UPDATE SET calls = q.calls + 1
         WHERE $3 = 0 OR q.calls < $3
        RETURNING calls
        """,
        user_id,
        window,
        limit,
    )
    return None if value is None else int(value)


async def uncount_call(conn: asyncpg.Connection, user_id: str, window: datetime) -> None:
    await conn.execute(
        "UPDATE quota_windows SET calls = calls - 1 WHERE user_id = $1 AND window_start = $2 AND calls > 0",
        user_id,
        window,
    )


async def calls_in(conn: asyncpg.Connection, user_id: str, window: datetime) -> int:
    value = await conn.fetchval(
        "SELECT calls FROM quota_windows WHERE user_id = $1 AND window_start = $2", user_id, window
    )
    return int(value or 0)


async def find_authorization(conn: asyncpg.Connection, user_id: str, request_id: str) -> tuple[str, bytes] | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, response FROM authorizations WHERE user_id = $1 AND request_id = $2", user_id, request_id
    )
    return None if row is None else (row["fingerprint"], bytes(row["response"]))


async def save_authorization(
    conn: asyncpg.Connection, user_id: str, request_id: str, fingerprint: str, response: bytes
) -> bool:
    row = await conn.fetchrow(
        """
        INSERT INTO authorizations (user_id, request_id, fingerprint, response) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING RETURNING 1
        """,
        user_id,
        request_id,
        fingerprint,
        response,
    )
    return row is not None


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
