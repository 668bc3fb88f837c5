"""ledger_charge_group (credits 0014) against ledger_charge: a group of Deducts decided set-based must come out
exactly as the same charges run one after the other — same answers, same balances, same grants, same rows."""

from __future__ import annotations

import random

import asyncpg
import pytest

from tests.conftest import new_user, request_id
from tests.integration.conftest import USD, Credits, assert_ledger_ok, time_travel

GROUP = "SELECT * FROM ledger_charge_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ORDER BY ord"
ONE = "SELECT * FROM ledger_charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"


async def _twin_accounts(credits: Credits, db: asyncpg.Pool) -> list[str]:
    """Four kinds of account: plain, with a hold, with its period reset due, and one never opened."""
    users = [await credits.funded_user(10 * USD, "grp") for _ in range(3)]
    await credits.hold(users[1], 4 * USD, ttl_seconds=600)
    await time_travel(db, users[2], days=40)
    return [*users, new_user("never")]


def _columns(owners: list[str], amounts: list[int], ids: list[str]) -> list[list[str] | list[int]]:
    n = len(owners)
    return [
        owners,
        amounts,
        ids,
        [f"fp-{a}" for a in amounts],
        ["svc-platform"] * n,
        ["service"] * n,
        ["test"] * n,
        ["svc-platform"] * n,
        ["m"] * n,
        ["ref"] * n,
        ["v1"] * n,
    ]


async def _state(conn: asyncpg.Connection, user: str) -> tuple[object, ...]:
    account = await conn.fetchrow("SELECT balance_nanos, held_nanos FROM accounts WHERE user_id = $1", user)
    grants = await conn.fetch(
        "SELECT amount_nanos, remaining_nanos FROM grants WHERE user_id = $1"
        " ORDER BY expires_at ASC NULLS LAST, amount_nanos, remaining_nanos",
        user,
    )
    rows = await conn.fetch(
        "SELECT amount_nanos, balance_after_nanos, fingerprint, reason, service, model, reference_id, price_version"
        " FROM transactions WHERE user_id = $1 AND kind = 'DEDUCTION' AND starts_with(request_id, 'grp-')"
        " ORDER BY balance_after_nanos DESC",
        user,
    )
    return (
        None if account is None else tuple(account),
        [tuple(g) for g in grants],
        [tuple(r) for r in rows],
    )


@pytest.mark.parametrize("seed", range(6))
async def test_a_group_charges_exactly_as_the_same_charges_one_after_the_other(
    credits: Credits, db: asyncpg.Pool, seed: int
) -> None:
    rng = random.Random(seed)
    grouped = await _twin_accounts(credits, db)
    alone = await _twin_accounts(credits, db)
    # Interleaved accounts, amounts from 1 nano to more than any balance: some charges do not fit, and a
    # smaller one after them may still fit.
    picks = [rng.randrange(4) for _ in range(rng.randrange(2, 40))]
    amounts = [rng.choice([1, USD // 3, USD, 2 * USD, 3 * USD, 7 * USD, 11 * USD]) for _ in picks]
    ids = [f"grp-{request_id()}" for _ in picks]

    async with db.acquire() as conn:
        got = await conn.fetch(GROUP, *_columns([grouped[p] for p in picks], amounts, ids))
        async with conn.transaction():
            want = [
                await conn.fetchrow(ONE, *[column[0] for column in _columns([alone[p]], [amount], [f"{rid}-1"])])
                for p, amount, rid in zip(picks, amounts, ids, strict=True)
            ]
        assert [r["ord"] for r in got] == list(range(1, len(picks) + 1))
        assert [(r["status"], r["balance_after"], r["held"]) for r in got] == [
            (w["status"], w["balance_after"], w["held"]) for w in want
        ]
        assert {r["status"] for r in got} <= {"OK", "SLOW_PATH"}
        for a, b in zip(grouped, alone, strict=True):
            assert await _state(conn, a) == await _state(conn, b)
        # Each answer names the transaction stored under its own request id.
        stored = dict(
            await conn.fetch(
                "SELECT request_id, transaction_id FROM transactions WHERE request_id = ANY($1::text[])", ids
            )
        )
        assert {rid: r["transaction_id"] for rid, r in zip(ids, got, strict=True) if r["status"] == "OK"} == stored
        # Listed by id (as histories are), the group's charges come in the order they were decided (0015).
        by_id = await conn.fetch(
            "SELECT request_id FROM transactions WHERE request_id = ANY($1::text[]) ORDER BY transaction_id", ids
        )
        assert [r["request_id"] for r in by_id] == [rid for rid, r in zip(ids, got, strict=True) if r["status"] == "OK"]
    await assert_ledger_ok(db)


async def test_a_group_with_a_request_id_already_used_changes_nothing(credits: Credits, db: asyncpg.Pool) -> None:
    """The database refuses the whole group (its callers then run alone, coalesce.py): no charge of it stays."""
    user = await credits.funded_user(10 * USD, "grp")
    used = await credits.deduct(user, USD)
    ids = [f"grp-{request_id()}", used.transaction.request_id, f"grp-{request_id()}"]
    async with db.acquire() as conn:
        before = await _state(conn, user)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.fetch(GROUP, *_columns([user] * 3, [USD, USD, USD], ids))
        assert await _state(conn, user) == before
    await assert_ledger_ok(db)
