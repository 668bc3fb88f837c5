"""The metering context's invariants, including the cross-check against the credits ledger."""

from __future__ import annotations

import asyncpg

from services.common.verification import Check, CheckResult, run_checks

CHECKS = [
    Check(
        "rollups_equal_events",
        "the daily rollups the reports read equal the sums of the events they count",
        """
        WITH sums AS (
            SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, service, model, count(*) AS n,
                   sum(input_tokens) AS i, sum(output_tokens) AS o, sum(quantity) AS q, sum(cost_nanos) AS c,
                   sum(charged_nanos) AS ch, sum(shortfall_nanos) AS s
              FROM events GROUP BY 1, 2, 3, 4)
        SELECT coalesce(d.user_id, s.user_id) AS user_id, coalesce(d.day, s.day) AS day
          FROM daily_usage d FULL JOIN sums s USING (user_id, day, service, model)
         WHERE d.event_count IS DISTINCT FROM s.n OR d.input_tokens IS DISTINCT FROM s.i
            OR d.output_tokens IS DISTINCT FROM s.o OR d.quantity IS DISTINCT FROM s.q
            OR d.cost_nanos IS DISTINCT FROM s.c OR d.charged_nanos IS DISTINCT FROM s.ch
            OR d.shortfall_nanos IS DISTINCT FROM s.s
        """,
        "SELECT count(*) FROM daily_usage",
    ),
    Check(
        "charges_add_up",
        "every charged event's charge plus shortfall equals its cost",
        "SELECT event_id FROM events WHERE status = 'CHARGED' AND charged_nanos + shortfall_nanos <> cost_nanos",
        "SELECT count(*) FROM events WHERE status = 'CHARGED'",
    ),
]


async def verify(conn: asyncpg.Connection) -> list[CheckResult]:
    return await run_checks(conn, CHECKS)


async def cross_check_credits(metering: asyncpg.Connection, credits: asyncpg.Connection) -> list[CheckResult]:
    """Every charged event has exactly one ledger transaction, and every metering transaction one event."""
    events = {
        r["event_id"]: r
        for r in await metering.fetch("SELECT event_id, user_id, status, charged_nanos, transaction_id FROM events")
    }
    ledger = await credits.fetch(
        "SELECT transaction_id, user_id, request_id, amount_nanos, reference_id FROM transactions"
        " WHERE reference_id LIKE 'usage:%' AND kind IN ('DEDUCTION', 'HOLD_CAPTURE')"
    )
    by_request: dict[str, list[asyncpg.Record]] = {}
    for tx in ledger:
        by_request.setdefault(tx["request_id"], []).append(tx)
    one_tx = Check(
        "charged_event_has_one_transaction",
        "every charged event has exactly one ledger transaction of its charged amount",
        "",
        "",
    )
    one_event = Check(
        "metering_transaction_has_one_event",
        "every usage transaction in the ledger belongs to exactly one event",
        "",
        "",
    )
    missing: list[dict[str, object]] = []
    for event_id, e in events.items():
        if e["status"] != "CHARGED":
            continue
        found = by_request.get(event_id, [])
        expected = 1 if e["charged_nanos"] > 0 else 0
        if len(found) != expected or (
            found
            and (
                found[0]["amount_nanos"] != e["charged_nanos"]
                or found[0]["user_id"] != e["user_id"]
                or str(found[0]["transaction_id"]) != e["transaction_id"]
            )
        ):
            missing.append({"event_id": event_id, "transactions": len(found)})
    orphans: list[dict[str, object]] = [
        {"transaction_id": str(tx["transaction_id"]), "request_id": tx["request_id"]}
        for tx in ledger
        if tx["request_id"] not in events or tx["reference_id"] != f"usage:{tx['request_id']}"
    ]
    charged = sum(1 for e in events.values() if e["status"] == "CHARGED")
    return [CheckResult(one_tx, charged, missing), CheckResult(one_event, len(ledger), orphans)]
