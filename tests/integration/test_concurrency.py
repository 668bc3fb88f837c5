"""Concurrent callers against one account: afterwards the money must add up, not just the calls return."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as pb

from tests.conftest import request_id
from tests.integration.conftest import USD, Credits, assert_ledger_ok, time_travel


async def _outcomes(calls: list) -> tuple[list, list[grpc.aio.AioRpcError]]:  # type: ignore[type-arg]
    results = await asyncio.gather(*calls, return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, grpc.aio.AioRpcError)]
    assert not unexpected, unexpected
    return ok, failed


async def test_200_concurrent_dollar_deductions_against_100_dollars(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(100 * USD)
    ok, failed = await _outcomes([credits.deduct(user, USD) for _ in range(200)])
    assert len(ok) == 100
    assert len(failed) == 100
    assert {f.code() for f in failed} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert (await credits.balance(user)).balance_nanos == 0
    async with db.acquire() as conn:
        charged = await conn.fetchval(
            "SELECT sum(amount_nanos) FROM transactions WHERE user_id = $1 AND kind = 'DEDUCTION'",
            user,
        )
    assert charged == 100 * USD
    await assert_ledger_ok(db)


async def test_200_concurrent_holds_then_captures_against_100_dollars(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(100 * USD)
    held, failed = await _outcomes([credits.hold(user, USD, ttl_seconds=300) for _ in range(200)])
    assert len(held) == 100 and len(failed) == 100
    balance = await credits.balance(user)
    assert (balance.available_nanos, balance.held_nanos) == (0, 100 * USD)
    # Nothing else can be spent while the holds stand.
    _, refused = await _outcomes([credits.deduct(user, 1) for _ in range(5)])
    assert len(refused) == 5
    captures = [
        credits.as_service(
            "CaptureHold",
            pb.CaptureHoldRequest(hold_id=h.hold_id, amount_nanos=USD // 2, request_id=request_id()),
        )
        for h in held
    ]
    captured, failed = await _outcomes(captures)
    assert len(captured) == 100 and not failed
    balance = await credits.balance(user)
    assert (balance.balance_nanos, balance.held_nanos) == (50 * USD, 0)
    await assert_ledger_ok(db)


async def test_one_request_id_from_20_tasks_charges_once(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(10 * USD)
    rid = request_id()
    ok, failed = await _outcomes([credits.deduct(user, USD, request_id=rid) for _ in range(20)])
    assert not failed
    assert len({r.transaction.transaction_id for r in ok}) == 1
    assert (await credits.balance(user)).balance_nanos == 9 * USD
    await assert_ledger_ok(db)


async def test_concurrent_partial_refunds_never_exceed_the_charge(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(10 * USD)
    charge = (await credits.deduct(user, 3 * USD)).transaction
    refunds = [
        credits.as_admin(
            "Refund",
            pb.RefundRequest(
                user_id=user,
                transaction_id=charge.transaction_id,
                amount_nanos=USD,
                reason="r",
                request_id=request_id(),
            ),
        )
        for _ in range(10)
    ]
    ok, failed = await _outcomes(refunds)
    assert len(ok) == 3 and len(failed) == 7
    assert (await credits.balance(user)).balance_nanos == 10 * USD
    await assert_ledger_ok(db)


async def _tier_allocations(db: asyncpg.Pool, user: str) -> int:
    async with db.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM transactions WHERE user_id = $1 AND kind = 'TIER_ALLOCATION'",
                user,
            )
        )


async def test_two_concurrent_period_resets_grant_once(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(0)
    await time_travel(db, user, days=7)
    results = await asyncio.gather(
        credits.as_admin("ResetPeriods", pb.ResetPeriodsRequest(user_id=user, request_id=request_id())),
        credits.as_admin("ResetPeriods", pb.ResetPeriodsRequest(user_id=user, request_id=request_id())),
    )
    assert sorted(r.reset_count for r in results) == [0, 1]
    assert await _tier_allocations(db, user) == 2  # at opening, and once for the new period
    assert (await credits.balance(user)).balance_nanos == USD
    await assert_ledger_ok(db)


async def test_a_reset_racing_the_scheduler_and_a_charge_happens_once(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(0)
    await time_travel(db, user, days=7)
    await asyncio.gather(
        credits.as_admin("ResetPeriods", pb.ResetPeriodsRequest(user_id=user, request_id=request_id())),
        credits.as_admin("ResetPeriods", pb.ResetPeriodsRequest(request_id=request_id())),
        credits.deduct(user, USD // 4),
        credits.balance(user),
    )
    assert await _tier_allocations(db, user) == 2
    assert (await credits.balance(user)).balance_nanos == USD - USD // 4
    await assert_ledger_ok(db)


async def test_concurrent_first_calls_open_one_account(credits: Credits, db: asyncpg.Pool) -> None:
    from tests.conftest import new_user

    user = new_user()
    token = credits.keys.token(user, "user")
    ok, failed = await _outcomes([credits.call("GetBalance", pb.GetBalanceRequest(), token) for _ in range(20)])
    assert not failed and {r.balance_nanos for r in ok} == {USD}
    await assert_ledger_ok(db)


async def test_concurrent_deducts_on_one_account_share_commits_and_keep_their_own_results(
    credits: Credits, db: asyncpg.Pool
) -> None:
    """Group commit: 64 concurrent charges land in fewer database transactions than 64, yet each
    request has its own transaction, a retry replays it, and the money adds up exactly."""
    user = await credits.funded_user(100 * USD)
    ids = [request_id() for _ in range(64)]
    ok, failed = await _outcomes([credits.deduct(user, USD, request_id=rid) for rid in ids])
    assert not failed
    assert len({r.transaction.transaction_id for r in ok}) == 64
    assert sorted(r.transaction.request_id for r in ok) == sorted(ids)
    async with db.acquire() as conn:
        commits = await conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM transactions WHERE user_id = $1 AND kind = 'DEDUCTION'", user
        )
    assert commits < 64, "concurrent deductions on one account were not coalesced"
    # Retrying every request replays its own transaction and charges nothing more.
    replays = await asyncio.gather(*(credits.deduct(user, USD, request_id=rid) for rid in ids))
    assert {r.transaction.transaction_id for r in replays} == {r.transaction.transaction_id for r in ok}
    assert (await credits.balance(user)).balance_nanos == 36 * USD
    await assert_ledger_ok(db)


async def test_a_coalesced_batch_with_a_retried_request_still_charges_each_once(
    credits: Credits, db: asyncpg.Pool
) -> None:
    """A request id already in the ledger makes the database refuse the whole batch; every
    request then runs alone: the retry replays, the new ones charge."""
    user = await credits.funded_user(10 * USD)
    first = await credits.deduct(user, USD)
    retried = first.transaction.request_id
    results = await asyncio.gather(
        credits.deduct(user, USD, request_id=retried), *(credits.deduct(user, USD) for _ in range(8))
    )
    assert results[0].transaction.transaction_id == first.transaction.transaction_id
    assert (await credits.balance(user)).balance_nanos == USD
    await assert_ledger_ok(db)


async def test_concurrent_balance_reads_each_get_their_own_account(credits: Credits) -> None:
    """Reads that share one query (batched) still answer each caller with its own account."""
    users = [await credits.funded_user((i + 1) * USD) for i in range(12)]
    answers = await asyncio.gather(*(credits.balance(u) for u in users for _ in range(3)))
    assert [(a.user_id, a.balance_nanos) for a in answers] == [
        (u, (i + 1) * USD) for i, u in enumerate(users) for _ in range(3)
    ]
    missing = await credits.fail(
        "GetBalance", pb.GetBalanceRequest(user_id="nobody-" + request_id()), credits.admin_token
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
