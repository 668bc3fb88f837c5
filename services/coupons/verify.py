"""The coupons context's invariants, including the cross-check against the credits ledger."""

from __future__ import annotations

import asyncpg

from services.common.verification import Check, CheckResult, run_checks

CHECKS = [
    Check(
        "redemption_count_matches",
        "every coupon's counter equals its pending and completed redemptions",
        """
        SELECT c.code, c.redemption_count AS counter, count(r.*) AS redemptions
          FROM coupons c LEFT JOIN redemptions r ON r.code = c.code AND r.status <> 'FAILED'
         GROUP BY c.code, c.redemption_count HAVING c.redemption_count <> count(r.*)
        """,
        "SELECT count(*) FROM coupons",
    ),
    Check(
        "total_cap_holds",
        "no capped coupon has more redemptions than its cap",
        "SELECT code, redemption_count, max_redemptions FROM coupons "
        "WHERE max_redemptions > 0 AND redemption_count > max_redemptions",
        "SELECT count(*) FROM coupons WHERE max_redemptions > 0",
    ),
    Check(
        "per_user_cap_holds",
        "no user holds more redemptions of a coupon than its per-user limit",
        """
        SELECT r.code, r.user_id, count(*) AS redemptions, c.per_user_limit
          FROM redemptions r JOIN coupons c USING (code)
         WHERE r.status <> 'FAILED'
         GROUP BY r.code, r.user_id, c.per_user_limit HAVING count(*) > c.per_user_limit
        """,
        "SELECT count(*) FROM redemptions",
    ),
]


async def verify(conn: asyncpg.Connection) -> list[CheckResult]:
    return await run_checks(conn, CHECKS)


async def cross_check_credits(coupons: asyncpg.Connection, credits: asyncpg.Connection) -> list[CheckResult]:
    """Completed credit redemptions and coupon grants in the ledger match one to one.

    Read from both services' databases (which may be different servers), so
    compared here rather than in one query. A PENDING redemption whose grant
    already exists is mid-recovery, not a breach: the recovery pass completes it.
    """
    redemptions = {
        str(r["redemption_id"]): r
        for r in await coupons.fetch(
            "SELECT redemption_id, user_id, status, credits_nanos, transaction_id FROM redemptions"
            " WHERE kind = 'CREDIT_GRANT'"
        )
    }
    grants = await credits.fetch(
        "SELECT transaction_id, user_id, request_id, amount_nanos FROM transactions"
        " WHERE kind = 'ALLOCATION' AND debit_account = 'platform:promotions'"
    )
    by_request: dict[str, list[asyncpg.Record]] = {}
    for grant in grants:
        by_request.setdefault(grant["request_id"], []).append(grant)

    one_grant = Check(
        "completed_redemption_has_one_grant",
        "every completed credit redemption has exactly one matching coupon grant in the ledger",
        "",
        "",
    )
    one_redemption = Check(
        "coupon_grant_has_a_redemption",
        "every coupon grant in the ledger belongs to a completed (or recovering) redemption",
        "",
        "",
    )
    missing: list[dict[str, object]] = []
    for rid, r in redemptions.items():
        matches = by_request.get(rid, [])
        if r["status"] == "COMPLETED" and (
            len(matches) != 1
            or matches[0]["user_id"] != r["user_id"]
            or matches[0]["amount_nanos"] != r["credits_nanos"]
            or str(matches[0]["transaction_id"]) != r["transaction_id"]
        ):
            missing.append({"redemption_id": rid, "grants": len(matches)})
        if r["status"] == "FAILED" and matches:
            missing.append({"redemption_id": rid, "status": "FAILED", "grants": len(matches)})
    orphans: list[dict[str, object]] = [
        {"transaction_id": str(g["transaction_id"]), "request_id": g["request_id"]}
        for g in grants
        if g["request_id"] not in redemptions or redemptions[g["request_id"]]["status"] == "FAILED"
    ]
    completed = sum(1 for r in redemptions.values() if r["status"] == "COMPLETED")
    return [CheckResult(one_grant, completed, missing), CheckResult(one_redemption, len(grants), orphans)]
