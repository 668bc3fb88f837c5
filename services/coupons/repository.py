"""Explicit SQL for coupons and redemptions over an asyncpg connection."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.coupons.domain import Coupon, CouponSpec, Kind, Redemption, Status

_REDEMPTION_COLUMNS = """redemption_id, code, user_id, status, kind, credits_nanos, credits_expire_at, trial_tier,
    trial_days, trial_ends_at, previous_tier, transaction_id, balance_after_nanos, created_at, completed_at,
    fingerprint, trial_change_id, supersedes, revert_attempts, revert_note"""


def to_coupon(row: asyncpg.Record) -> Coupon:
    return Coupon(
        code=row["code"],
        description=row["description"],
        kind=Kind(row["kind"]),
        credit_amount_nanos=row["credit_amount_nanos"],
        credit_expiry_days=row["credit_expiry_days"],
        trial_tier=row["trial_tier"],
        trial_days=row["trial_days"],
        valid_from=row["valid_from"],
        expires_at=row["expires_at"],
        max_redemptions=row["max_redemptions"],
        per_user_limit=row["per_user_limit"],
        eligible_tiers=tuple(row["eligible_tiers"]),
        first_time_only=row["first_time_only"],
        disabled=row["disabled"],
        redemption_count=row["redemption_count"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        stacks_on_trial=row["stacks_on_trial"],
    )


def to_redemption(row: asyncpg.Record) -> Redemption:
    return Redemption(
        redemption_id=str(row["redemption_id"]),
        code=row["code"],
        user_id=row["user_id"],
        status=Status(row["status"]),
        kind=Kind(row["kind"]),
        credits_nanos=row["credits_nanos"],
        credits_expire_at=row["credits_expire_at"],
        trial_tier=row["trial_tier"],
        trial_days=row["trial_days"],
        trial_ends_at=row["trial_ends_at"],
        previous_tier=row["previous_tier"],
        transaction_id=row["transaction_id"],
        balance_after_nanos=row["balance_after_nanos"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
        fingerprint=row["fingerprint"],
        trial_change_id=row["trial_change_id"],
        supersedes=str(row["supersedes"]) if row["supersedes"] is not None else "",
        revert_attempts=row["revert_attempts"],
        revert_note=row["revert_note"],
    )


async def insert_coupon(
    conn: asyncpg.Connection, spec: CouponSpec, created_by: str, request_id: str, fingerprint: str
) -> Coupon:
    row = await conn.fetchrow(
        """
        INSERT INTO coupons (code, description, kind, credit_amount_nanos, credit_expiry_days, trial_tier, trial_days,
            valid_from, expires_at, max_redemptions, per_user_limit, eligible_tiers, first_time_only, created_by,
            request_id, fingerprint, stacks_on_trial)
        VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()), $9, $10, $11, $12, $13, $14, $15, $16, $17)
        RETURNING *
        """,
        spec.code,
        spec.description,
        spec.kind.value,
        spec.credit_amount_nanos,
        spec.credit_expiry_days,
        spec.trial_tier,
        spec.trial_days,
        spec.valid_from,
        spec.expires_at,
        spec.max_redemptions,
        spec.per_user_limit,
        list(spec.eligible_tiers),
        spec.first_time_only,
        created_by,
        request_id,
        fingerprint,
        spec.stacks_on_trial,
    )
    assert row is not None
    return to_coupon(row)


async def coupon_by_request(conn: asyncpg.Connection, request_id: str) -> tuple[Coupon, str] | None:
    row = await conn.fetchrow("SELECT * FROM coupons WHERE request_id = $1", request_id)
    return None if row is None else (to_coupon(row), row["fingerprint"])


async def get_coupon(conn: asyncpg.Connection, code: str) -> Coupon | None:
    row = await conn.fetchrow("SELECT * FROM coupons WHERE code = $1", code)
    return None if row is None else to_coupon(row)


async def count_coupons(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM coupons"))


async def list_coupons(
    conn: asyncpg.Connection, before: tuple[datetime, str] | None, include_disabled: bool, limit: int
) -> list[Coupon]:
    rows = await conn.fetch(
        """
        SELECT * FROM coupons
         WHERE ($1::timestamptz IS NULL OR (created_at, code) < ($1, $2))
           AND ($3 OR NOT disabled)
         ORDER BY created_at DESC, code DESC
         LIMIT $4
        """,
        before[0] if before else None,
        before[1] if before else "",
        include_disabled,
        limit,
    )
    return [to_coupon(r) for r in rows]


async def disable_coupon(conn: asyncpg.Connection, code: str) -> Coupon | None:
    row = await conn.fetchrow("UPDATE coupons SET disabled = true WHERE code = $1 RETURNING *", code)
    return None if row is None else to_coupon(row)


async def refusal(conn: asyncpg.Connection, code: str, user_id: str, tier: str) -> str | None:
    """Why the user cannot redeem the code now ('' if they can); None when there is no such coupon."""
    row = await conn.fetchrow(
        "SELECT coupon_refusal(c, $2, $3) AS refusal FROM coupons c WHERE c.code = $1", code, user_id, tier
    )
    return None if row is None else str(row["refusal"])


async def claim(
    conn: asyncpg.Connection, code: str, user_id: str, tier: str, redemption_id: uuid.UUID, request_id: str, fp: str
) -> str:
    return str(
        await conn.fetchval(
            "SELECT coupon_claim($1, $2, $3, $4, $5, $6)", code, user_id, tier, redemption_id, request_id, fp
        )
    )


async def redemption_by_request(conn: asyncpg.Connection, user_id: str, request_id: str) -> Redemption | None:
    row = await conn.fetchrow(
        f"SELECT {_REDEMPTION_COLUMNS} FROM redemptions WHERE user_id = $1 AND request_id = $2", user_id, request_id
    )
    return None if row is None else to_redemption(row)


async def get_redemption(conn: asyncpg.Connection, redemption_id: str) -> Redemption | None:
    row = await conn.fetchrow(f"SELECT {_REDEMPTION_COLUMNS} FROM redemptions WHERE redemption_id = $1", redemption_id)
    return None if row is None else to_redemption(row)


async def complete_credit_grant(
    conn: asyncpg.Connection, redemption_id: str, transaction_id: str, balance_after: int
) -> None:
    await conn.execute(
        """
        UPDATE redemptions SET status = 'COMPLETED', transaction_id = $2, balance_after_nanos = $3,
               completed_at = clock_timestamp(), grant_attempts = grant_attempts + 1
         WHERE redemption_id = $1 AND status = 'PENDING'
        """,
        redemption_id,
        transaction_id,
        balance_after,
    )


async def complete_trial(conn: asyncpg.Connection, redemption_id: str, previous_tier: str, change_id: str) -> None:
    """Records a granted trial and the credits tier change it made; a stacking trial keeps the base tier it
    recorded at the claim and ends the trial it replaces, in the same statement."""
    await conn.execute(
        """
        WITH done AS (
            UPDATE redemptions SET status = 'COMPLETED',
                   previous_tier = CASE WHEN supersedes IS NULL THEN $2 ELSE previous_tier END,
                   trial_change_id = $3, completed_at = clock_timestamp(), grant_attempts = grant_attempts + 1
             WHERE redemption_id = $1 AND status = 'PENDING'
            RETURNING supersedes)
        UPDATE redemptions r SET reverted_at = clock_timestamp(), revert_note = 'replaced by redemption ' || $1
          FROM done WHERE r.redemption_id = done.supersedes AND r.reverted_at IS NULL
        """,
        redemption_id,
        previous_tier,
        change_id,
    )


async def note_grant_failure(conn: asyncpg.Connection, redemption_id: str, error: str) -> None:
    await conn.execute(
        "UPDATE redemptions SET grant_attempts = grant_attempts + 1, last_error = $2 WHERE redemption_id = $1",
        redemption_id,
        error[:500],
    )


async def fail_redemption(conn: asyncpg.Connection, redemption_id: str, error: str) -> bool:
    """Marks a pending redemption FAILED and gives its unit back to the coupon, in one statement."""
    done = await conn.fetchval(
        """
        WITH failed AS (
            UPDATE redemptions SET status = 'FAILED', last_error = $2, grant_attempts = grant_attempts + 1
             WHERE redemption_id = $1 AND status = 'PENDING'
            RETURNING code),
        released AS (
            UPDATE coupons SET redemption_count = redemption_count - 1
             WHERE code IN (SELECT code FROM failed)
            RETURNING 1)
        SELECT count(*) FROM released
        """,
        redemption_id,
        error[:500],
    )
    return bool(done)


async def pending_redemptions(conn: asyncpg.Connection, older_than_seconds: float, limit: int) -> list[Redemption]:
    rows = await conn.fetch(
        f"""
        SELECT {_REDEMPTION_COLUMNS} FROM redemptions
         WHERE status = 'PENDING' AND created_at <= clock_timestamp() - make_interval(secs => $1)
         ORDER BY created_at LIMIT $2
        """,
        older_than_seconds,
        limit,
    )
    return [to_redemption(r) for r in rows]


async def trials_due(conn: asyncpg.Connection, limit: int) -> list[Redemption]:
    """Ended trials not yet reverted whose next attempt is due (a failing one waits for its retry time)."""
    rows = await conn.fetch(
        f"""
        SELECT {_REDEMPTION_COLUMNS} FROM redemptions
         WHERE kind = 'TIER_TRIAL' AND status = 'COMPLETED' AND reverted_at IS NULL
           AND coalesce(revert_after, trial_ends_at) <= now()
         ORDER BY coalesce(revert_after, trial_ends_at) LIMIT $1
        """,
        limit,
    )
    return [to_redemption(r) for r in rows]


async def mark_reverted(conn: asyncpg.Connection, redemption_id: str, note: str) -> None:
    await conn.execute(
        "UPDATE redemptions SET reverted_at = clock_timestamp(), revert_note = $2"
        " WHERE redemption_id = $1 AND reverted_at IS NULL",
        redemption_id,
        note,
    )


async def note_revert_failure(conn: asyncpg.Connection, redemption_id: str, error: str, max_delay: int) -> None:
    """Schedules the next attempt of a failing revert with exponential backoff (30 s doubling, capped)."""
    await conn.execute(
        """
        UPDATE redemptions
           SET revert_attempts = revert_attempts + 1, revert_note = $2,
               revert_after = clock_timestamp() + make_interval(secs => least($3, 30 * 2 ^ least(revert_attempts, 20)))
         WHERE redemption_id = $1 AND reverted_at IS NULL
        """,
        redemption_id,
        error[:500],
        max_delay,
    )


async def list_redemptions(
    conn: asyncpg.Connection, *, code: str, user_id: str, before: str | None, limit: int
) -> list[Redemption]:
    rows = await conn.fetch(
        f"""
        SELECT {_REDEMPTION_COLUMNS} FROM redemptions
         WHERE ($1 = '' OR code = $1) AND ($2 = '' OR user_id = $2)
           AND ($3::uuid IS NULL OR redemption_id < $3::uuid)
         ORDER BY redemption_id DESC LIMIT $4
        """,
        code,
        user_id,
        before,
        limit,
    )
    return [to_redemption(r) for r in rows]


async def take_attempt(
    conn: asyncpg.Connection, subject: str, limit: int, window_seconds: int
) -> tuple[datetime | None, int]:
    """Takes one attempt for ``subject``: (the window it counts in, 0), or (None, seconds until the window ends)."""
    row = await conn.fetchrow("SELECT * FROM attempt_take($1, $2, $3)", subject, limit, window_seconds)
    assert row is not None
    return row["window_start"], int(row["wait_seconds"])


async def attempt_wait(conn: asyncpg.Connection, subject: str, limit: int, window_seconds: int) -> int:
    """0 while ``subject`` is under its limit, else the seconds until its window ends (takes nothing)."""
    wait = await conn.fetchval(
        """
        SELECT greatest(1, ceil(extract(epoch FROM (window_start + make_interval(secs => $3) - clock_timestamp()))))
          FROM attempt_counters
         WHERE subject = $1 AND attempts >= $2 AND window_start + make_interval(secs => $3) > clock_timestamp()
        """,
        subject,
        limit,
        window_seconds,
    )
    return 0 if wait is None else int(wait)


async def prune_attempts(conn: asyncpg.Connection, window_seconds: int) -> int:
    """Deletes counters whose window has ended (the next attempt would start afresh anyway)."""
    status = await conn.execute(
        "DELETE FROM attempt_counters WHERE window_start + make_interval(secs => $1) <= clock_timestamp()",
        window_seconds,
    )
    return int(status.split()[-1])


async def give_back_attempt(conn: asyncpg.Connection, subject: str, window_start: datetime) -> None:
    """Returns an attempt to the window it was taken in (an allowed attempt does not count); a window
    that has been replaced since is left alone."""
    await conn.execute("SELECT attempt_give_back($1, $2)", subject, window_start)
