"""The credits ledger's invariants, as SQL that returns breaches (used by `make verify` and tests)."""

from __future__ import annotations

import asyncpg

from services.common.verification import Check, CheckResult, run_checks

_USER_MOVES = """
    SELECT user_id,
           sum(CASE WHEN credit_account = 'user:' || user_id THEN amount_nanos ELSE -amount_nanos END) AS total
      FROM transactions GROUP BY user_id
"""

CHECKS = [
    Check(
        "balance_equals_postings",
        "every account's stored balance equals the sum of its postings",
        f"""
        WITH moves AS ({_USER_MOVES})
        SELECT a.user_id, a.balance_nanos AS stored, coalesce(m.total, 0) AS postings
          FROM accounts a LEFT JOIN moves m USING (user_id)
         WHERE a.balance_nanos <> coalesce(m.total, 0)
        """,
        "SELECT count(*) FROM accounts",
    ),
    Check(
        "postings_sum_to_zero",
        "user balances plus the derived platform balances sum to zero",
        """
        WITH sides AS (
            SELECT credit_account AS account, amount_nanos AS delta FROM transactions
            UNION ALL
            SELECT debit_account, -amount_nanos FROM transactions)
        SELECT sum(delta) AS total FROM sides HAVING coalesce(sum(delta), 0) <> 0
        """,
        "SELECT count(*) FROM transactions",
    ),
    Check(
        "balances_not_negative",
        "no balance or held amount is negative, and nothing holds more than the balance",
        "SELECT user_id, balance_nanos, held_nanos FROM accounts "
        "WHERE balance_nanos < 0 OR held_nanos < 0 OR held_nanos > balance_nanos",
        "SELECT count(*) FROM accounts",
    ),
    Check(
        "held_equals_active_holds",
        "every account's held amount equals the sum of its active holds",
        """
        WITH active AS (SELECT user_id, sum(amount_nanos) AS total FROM holds WHERE status = 'ACTIVE' GROUP BY user_id)
        SELECT a.user_id, a.held_nanos AS stored, coalesce(h.total, 0) AS active_holds
          FROM accounts a LEFT JOIN active h USING (user_id)
         WHERE a.held_nanos <> coalesce(h.total, 0)
        """,
        "SELECT count(*) FROM holds",
    ),
    Check(
        "grants_back_balance",
        "the unspent rest of every account's grants adds up to its balance",
        """
        WITH rest AS (SELECT user_id, sum(remaining_nanos) AS total FROM grants GROUP BY user_id)
        SELECT a.user_id, a.balance_nanos AS stored, coalesce(r.total, 0) AS grants_remaining
          FROM accounts a LEFT JOIN rest r USING (user_id)
         WHERE a.balance_nanos <> coalesce(r.total, 0)
        """,
        "SELECT count(*) FROM grants",
    ),
    Check(
        "grants_match_their_transactions",
        "every grant was created by a crediting transaction of the same amount for the same user",
        """
        SELECT g.grant_id, g.amount_nanos, t.amount_nanos AS tx_amount, t.kind
          FROM grants g JOIN transactions t USING (transaction_id)
         WHERE t.amount_nanos <> g.amount_nanos OR t.user_id <> g.user_id
            OR t.kind NOT IN ('TIER_ALLOCATION', 'ALLOCATION', 'REFUND')
            OR t.credit_account <> 'user:' || g.user_id
        """,
        "SELECT count(*) FROM grants",
    ),
    Check(
        "refunds_within_charge",
        "no charge is refunded for more than it charged, across all its refunds",
        """
        SELECT c.transaction_id, c.amount_nanos AS charged, sum(r.amount_nanos) AS refunded
          FROM transactions c JOIN transactions r ON r.related_transaction_id = c.transaction_id AND r.kind = 'REFUND'
         GROUP BY c.transaction_id, c.amount_nanos, c.kind
        HAVING sum(r.amount_nanos) > c.amount_nanos OR c.kind NOT IN ('DEDUCTION', 'HOLD_CAPTURE')
        """,
        "SELECT count(*) FROM transactions WHERE kind = 'REFUND'",
    ),
    Check(
        "one_tier_allocation_per_period",
        "each account received at most one tier allocation per billing period",
        "SELECT user_id, period_start, count(*) FROM grants WHERE source = 'TIER' "
        "GROUP BY user_id, period_start HAVING count(*) > 1",
        "SELECT count(*) FROM grants WHERE source = 'TIER'",
    ),
    Check(
        "captures_match_holds",
        "every captured hold has one capture transaction of the captured amount, within the hold",
        """
        SELECT h.hold_id, h.status, h.captured_nanos, t.amount_nanos AS tx_amount
          FROM holds h LEFT JOIN transactions t ON t.transaction_id = h.capture_transaction_id
         WHERE (h.captured_nanos > 0 AND (t.transaction_id IS NULL OR t.amount_nanos <> h.captured_nanos
                                           OR t.kind <> 'HOLD_CAPTURE' OR t.hold_id <> h.hold_id))
            OR (h.captured_nanos = 0 AND h.capture_transaction_id IS NOT NULL)
            OR (h.status <> 'CAPTURED' AND h.captured_nanos <> 0)
            OR h.captured_nanos > h.amount_nanos
        UNION ALL
        SELECT t.hold_id, 'orphan capture', t.amount_nanos, NULL FROM transactions t
         WHERE t.kind = 'HOLD_CAPTURE'
           AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.capture_transaction_id = t.transaction_id)
        """,
        "SELECT count(*) FROM holds WHERE status = 'CAPTURED'",
    ),
    Check(
        "usage_outcomes_match_transactions",
        "every usage outcome adds up, and every usage transaction (one capture, or one account's direct usage "
        "of one batch) equals the sum of the outcomes that name it",
        """
        SELECT uc.user_id, uc.event_id, uc.charged_nanos, NULL::bigint AS tx_amount
          FROM usage_charges uc
         WHERE uc.charged_nanos + uc.shortfall_nanos <> uc.amount_nanos
            OR (uc.charged_nanos = 0) <> (uc.transaction_id IS NULL)
        UNION ALL
        SELECT t.user_id, t.reference_id, sum(uc.charged_nanos), t.amount_nanos
          FROM transactions t LEFT JOIN usage_charges uc ON uc.transaction_id = t.transaction_id
         WHERE t.request_id IS NULL AND t.kind IN ('DEDUCTION', 'HOLD_CAPTURE')
         GROUP BY t.transaction_id
        HAVING sum(uc.charged_nanos) IS DISTINCT FROM t.amount_nanos OR bool_or(uc.user_id <> t.user_id)
        UNION ALL
        SELECT uc.user_id, uc.event_id, uc.charged_nanos, NULL FROM usage_charges uc
         WHERE uc.transaction_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.transaction_id = uc.transaction_id)
        """,
        "SELECT count(*) FROM usage_charges",
    ),
    Check(
        "transactions_immutable",
        "the trigger that forbids updating or deleting transactions is installed and enabled",
        """
        SELECT 'missing' AS trigger WHERE NOT EXISTS (
            SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.oid = 'transactions'::regclass AND t.tgname = 'transactions_immutable' AND t.tgenabled <> 'D')
        """,
        "SELECT 1",
    ),
    Check(
        "tier_matches_latest_change",
        "every account's tier is the one its latest recorded tier change set, and that change is its own",
        """
        SELECT a.user_id, a.tier_id, c.tier AS changed_to
          FROM accounts a LEFT JOIN tier_changes c ON c.user_id = a.user_id AND c.change_id = a.tier_change_id
         WHERE a.tier_change_id <> '' AND (c.change_id IS NULL OR c.tier <> a.tier_id)
        """,
        "SELECT count(*) FROM tier_changes",
    ),
]


async def verify(conn: asyncpg.Connection) -> list[CheckResult]:
    return await run_checks(conn, CHECKS)


async def platform_balances(conn: asyncpg.Connection) -> dict[str, int]:
    """Platform accounts' balances, derived by aggregation (they have no stored row)."""
    rows = await conn.fetch(
        """
        WITH sides AS (
            SELECT credit_account AS account, amount_nanos AS delta FROM transactions
            UNION ALL
            SELECT debit_account, -amount_nanos FROM transactions)
        SELECT account, sum(delta) AS balance FROM sides
         WHERE account LIKE 'platform:%' GROUP BY account ORDER BY account
        """
    )
    return {r["account"]: int(r["balance"]) for r in rows}
