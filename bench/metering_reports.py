"""How usage reports scale: the daily rollups the service reads vs aggregating raw events, same run.

Loads N synthetic events (default 1,000,000: 100 users, a year of days, six
models) straight into a metering schema with set-based SQL, builds the rollups
the service keeps, then times the summary query for one user over a year both
ways and prints the rollup query's plan. Run: ``make bench-reports`` (or
``python -m bench.metering_reports --events 1000000``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg

from bench import bench_database
from services.common import db

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "services" / "metering" / "migrations"

ROLLUP_QUERY = """
    SELECT service, model, sum(event_count), sum(input_tokens), sum(output_tokens), sum(cost_nanos), sum(charged_nanos)
      FROM daily_usage WHERE user_id = $1 AND day >= $2 AND day < $3 GROUP BY service, model
"""
RAW_QUERY = """
    SELECT service, model, count(*), sum(input_tokens), sum(output_tokens), sum(cost_nanos), sum(charged_nanos)
      FROM events WHERE user_id = $1 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY service, model
"""


async def _time(
    conn: asyncpg.Connection, query: str, *args: object, runs: int = 20
) -> tuple[float, list[asyncpg.Record]]:
    await conn.fetch(query, *args)  # warm
    best = float("inf")
    rows: list[asyncpg.Record] = []
    for _ in range(runs):
        began = time.perf_counter()
        rows = await conn.fetch(query, *args)
        best = min(best, time.perf_counter() - began)
    return best * 1000, rows


async def bench(url: str, events: int) -> None:
    await db.ensure_schema(url, "metering")
    pool = await db.create_pool(url, "metering", application_name="bench", min_size=1, max_size=2)
    try:
        await db.migrate(pool, "metering", MIGRATIONS)
        async with pool.acquire() as conn:
            began = time.perf_counter()
            await conn.execute(
                """
                INSERT INTO events (event_id, user_id, service, model, input_tokens, output_tokens, occurred_at,
                                    fingerprint, cost_nanos, price_version, status, charged_nanos)
                SELECT 'b-' || g, 'user-' || (g % 100), 'LLM', 'model-' || (g % 6), 100 + g % 900, 10 + g % 300,
                       timestamptz '2026-01-01' + (g % 365) * interval '1 day' + (g % 86400) * interval '1 second',
                       'fp', 1000 + g % 5000, 'rc1-cat1', 'CHARGED', 1000 + g % 5000
                  FROM generate_series(1, $1) AS g
                """,
                events,
            )
            await conn.execute(
                """
                INSERT INTO daily_usage (user_id, day, service, model, event_count, input_tokens, output_tokens,
                                         quantity, cost_nanos, charged_nanos)
                SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date, service, model, count(*), sum(input_tokens),
                       sum(output_tokens), 0, sum(cost_nanos), sum(charged_nanos)
                  FROM events GROUP BY 1, 2, 3, 4
                """
            )
            await conn.execute("ANALYZE events; ANALYZE daily_usage")
            load = time.perf_counter() - began
            rollup_rows = await conn.fetchval("SELECT count(*) FROM daily_usage")
            print(f"loaded {events} events ({rollup_rows} rollup rows) in {load:.1f}s")
            import datetime as dt

            first, last = dt.date(2026, 1, 1), dt.date(2027, 1, 1)
            fast, a = await _time(conn, ROLLUP_QUERY, "user-7", first, last)
            slow, b = await _time(
                conn,
                RAW_QUERY,
                "user-7",
                dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
            )
            assert sorted(tuple(r)[2:] for r in a) == sorted(tuple(r)[2:] for r in b), "the two answers differ"
            print(
                f"summary for one user over a year: rollups {fast:.2f} ms, raw events {slow:.2f} ms "
                f"(raw / rollups = {slow / fast:.1f}x; best of 20)"
            )
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + ROLLUP_QUERY, "user-7", first, last)
            print("plan of the rollup query:")
            for row in plan:
                print("  " + row[0])
    finally:
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    opts = parser.parse_args()
    with bench_database(configured=False) as (url, _):
        asyncio.run(bench(url, opts.events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
