"""The metering context's invariants, including the cross-check against the credits ledger.

Besides metering's own consistency (rollups equal events, settled charges add
up), `make verify` proves the pipeline settles: no event stays RECORDED past a
grace period (the recovery pass should have charged or parked it), every
settled event agrees with the ledger's usage outcome for (user, event id), and
every usage charge in the ledger belongs to an event.
"""

from __future__ import annotations

import os

import asyncpg

from services.common.verification import Check, CheckResult, run_checks

#: Seconds a RECORDED event may wait for its charge before verify reports it (env METERING_VERIFY_GRACE_SECONDS).
DEFAULT_GRACE_SECONDS = 120


def _grace() -> int:
    return int(os.environ.get("METERING_VERIFY_GRACE_SECONDS", DEFAULT_GRACE_SECONDS))


def _checks(grace_seconds: int) -> list[Check]:
    return [
        Check(
            "rollups_equal_events",
            "the daily rollups the reports read equal the sums of the events they count",
            """
            WITH sums AS (
                SELECT user_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, service, model, count(*) AS n,
                       sum(input_tokens) AS i, sum(output_tokens) AS o, sum(quantity) AS q,
                       coalesce(sum(cost_nanos), 0) AS c, sum(charged_nanos) AS ch, sum(shortfall_nanos) AS s
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
            "every settled event's charge plus shortfall equals its cost",
            """
            SELECT event_id FROM events
             WHERE status IN ('CHARGED', 'SHORTFALL') AND charged_nanos + shortfall_nanos <> cost_nanos
            """,
            "SELECT count(*) FROM events WHERE status IN ('CHARGED', 'SHORTFALL')",
        ),
        Check(
            "recorded_events_settle",
            f"no event stays recorded but uncharged for more than {grace_seconds} s",
            f"""
            SELECT event_id, user_id, attempts, last_error FROM events
             WHERE status = 'RECORDED' AND recorded_at < clock_timestamp() - interval '{grace_seconds} seconds'
             ORDER BY recorded_at LIMIT 100
            """,
            "SELECT count(*) FROM events WHERE status = 'RECORDED'",
        ),
    ]


async def verify(conn: asyncpg.Connection, grace_seconds: int | None = None) -> list[CheckResult]:
    return await run_checks(conn, _checks(_grace() if grace_seconds is None else grace_seconds))


async def cross_check_credits(metering: asyncpg.Connection, credits: asyncpg.Connection) -> list[CheckResult]:
    """Events against the ledger's usage outcomes, both ways (the two databases may be on different servers)."""
    events = {
        (r["user_id"], r["event_id"]): r
        for r in await metering.fetch(
            "SELECT event_id, user_id, status, charged_nanos, shortfall_nanos, transaction_id, park_reason FROM events"
        )
    }
    outcomes = {
        (r["user_id"], r["event_id"]): r
        for r in await credits.fetch(
            """
            SELECT uc.user_id, uc.event_id, uc.charged_nanos, uc.shortfall_nanos, uc.transaction_id,
                   t.amount_nanos AS tx_amount, t.user_id AS tx_user
              FROM usage_charges uc LEFT JOIN transactions t ON t.transaction_id = uc.transaction_id
            """
        )
    }
    agree = Check(
        "event_state_matches_ledger",
        "every charged event has the ledger's usage outcome (charged, shortfall, transaction); "
        "no parked event was charged",
        "",
        "",
    )
    owned = Check(
        "ledger_usage_has_event",
        "every usage charge in the ledger (that moved or owes money) belongs to a recorded event of the same user",
        "",
        "",
    )
    disagreements: list[dict[str, object]] = []
    for key, e in events.items():
        found = outcomes.get(key)
        if e["status"] in ("CHARGED", "SHORTFALL"):
            tx = "" if found is None or found["transaction_id"] is None else str(found["transaction_id"])
            if (
                found is None
                or found["charged_nanos"] != e["charged_nanos"]
                or found["shortfall_nanos"] != e["shortfall_nanos"]
                or tx != e["transaction_id"]
                or (found["transaction_id"] is not None and found["tx_user"] != e["user_id"])
            ):
                disagreements.append({"event_id": e["event_id"], "status": e["status"], "ledger": found is not None})
        elif e["status"] == "PARKED" and found is not None and e["park_reason"] != "LEDGER_EVENT_ID_REUSED":
            disagreements.append({"event_id": e["event_id"], "status": "PARKED", "ledger": True})
    # An outcome of amount 0 moved no money and owes none; any other needs its event.
    orphans: list[dict[str, object]] = [
        {"user_id": user, "event_id": event_id}
        for (user, event_id), o in outcomes.items()
        if (user, event_id) not in events and (o["charged_nanos"] > 0 or o["shortfall_nanos"] > 0)
    ]
    settled = sum(1 for e in events.values() if e["status"] != "RECORDED")
    return [CheckResult(agree, settled, disagreements), CheckResult(owned, len(outcomes), orphans)]
