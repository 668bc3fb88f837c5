"""CreditsService behaviour over a real gRPC channel against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from creditmeter.credits.v1 import credits_pb2 as pb
from google.protobuf import timestamp_pb2

from services.credits.config import CreditsSettings
from services.credits.server import create_server
from tests.conftest import Keys, credits_environ, new_user, request_id
from tests.integration.conftest import USD, Credits, assert_ledger_ok, time_travel

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _transactions(credits: Credits, user: str, **kw: object) -> list[pb.Transaction]:
    response = await credits.as_admin("ListTransactions", pb.ListTransactionsRequest(user_id=user, page_size=500, **kw))
    return list(response.transactions)


async def test_tier_catalog_is_public_and_matches_the_rate_card(credits: Credits) -> None:
    response = await credits.call("CompareTiers", pb.CompareTiersRequest(), token=None)
    tiers = {t.tier_id: t for t in response.tiers}
    assert [t.tier_id for t in response.tiers] == ["trial", "starter", "professional", "enterprise"]
    assert (tiers["trial"].price_cents, tiers["trial"].billing_period) == (400, "week")
    assert tiers["trial"].credits_nanos == 1 * USD
    assert (tiers["trial"].api_call_limit, tiers["trial"].api_call_period) == (100, "day")
    assert not tiers["trial"].byok_allowed
    assert (
        tiers["starter"].price_cents,
        tiers["starter"].credits_nanos,
        tiers["starter"].api_call_limit,
    ) == (
        1900,
        20 * USD,
        1000,
    )
    assert (tiers["professional"].price_cents, tiers["professional"].credits_nanos) == (
        4900,
        60 * USD,
    )
    assert tiers["professional"].api_call_limit == 10_000
    assert tiers["professional"].markup_percent == 5 and tiers["professional"].byok_markup_basis_points == 0
    assert tiers["enterprise"].credits_nanos == 999_999_990_000_000
    assert tiers["enterprise"].api_call_limit == 0 and tiers["enterprise"].markup_percent == 0
    assert tiers["starter"].markup_percent == 10 and tiers["trial"].markup_percent == 10
    assert tiers["trial"].free_model_fee_per_1k_tokens_nanos == 1_000_000
    assert tiers["enterprise"].free_model_fee_per_1k_tokens_nanos == 0


async def test_first_call_opens_a_trial_account_with_its_weekly_allocation(
    credits: Credits,
) -> None:
    user = new_user()
    balance = await credits.call("GetBalance", pb.GetBalanceRequest(), credits.keys.token(user, "user"))
    assert balance.user_id == user and balance.tier == "trial"
    assert balance.balance_nanos == balance.available_nanos == 1 * USD
    period = balance.period_end.ToDatetime() - balance.period_start.ToDatetime()
    assert period == timedelta(days=7)
    assert [g.source for g in balance.expiring] == [pb.GRANT_SOURCE_TIER]
    txs = await _transactions(credits, user)
    assert [t.kind for t in txs] == [pb.TRANSACTION_KIND_TIER_ALLOCATION]
    assert txs[0].debit_account == "platform:grants" and txs[0].credit_account == f"user:{user}"


async def test_concurrent_first_calls_open_exactly_one_account(credits: Credits) -> None:
    """A new user's first calls arriving together (balance reads and a history read) open one account with one
    trial allocation, whichever of them creates it."""
    user = new_user()
    token = credits.keys.token(user, "user")
    calls = [credits.call("GetBalance", pb.GetBalanceRequest(), token) for _ in range(8)]
    calls += [credits.call("ListTransactions", pb.ListTransactionsRequest(), token) for _ in range(4)]
    answers = await asyncio.gather(*calls)
    assert {a.balance_nanos for a in answers[:8]} == {1 * USD}
    txs = await _transactions(credits, user)
    assert [t.kind for t in txs] == [pb.TRANSACTION_KIND_TIER_ALLOCATION]
    assert (await credits.balance(user)).balance_nanos == 1 * USD


async def test_admin_reading_an_unknown_user_gets_not_found_and_creates_nothing(
    credits: Credits,
) -> None:
    user = new_user()
    failure = await credits.fail("GetBalance", pb.GetBalanceRequest(user_id=user), credits.admin_token)
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    failure = await credits.fail("GetBalance", pb.GetBalanceRequest(user_id=user), credits.admin_token)
    assert failure.reason == "ACCOUNT_NOT_FOUND"


async def test_allocation_creates_the_account_and_shows_in_the_balance(credits: Credits) -> None:
    user = new_user()
    response = await credits.allocate(user, 50 * USD, reason="welcome bonus")
    assert response.transaction.amount_nanos == 50 * USD
    assert response.transaction.balance_after_nanos == 51 * USD  # plus the trial allocation
    assert response.transaction.audit.actor_subject == "admin-1"
    assert response.transaction.audit.actor_role == "admin"
    assert response.transaction.audit.reason == "welcome bonus"
    assert (await credits.balance(user)).balance_nanos == 51 * USD


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount_nanos", 0, "INVALID_AMOUNT"),
        ("amount_nanos", -5, "INVALID_AMOUNT"),
        ("amount_nanos", 100_000_001 * USD, "INVALID_AMOUNT"),
        ("request_id", "", "MISSING_REQUEST_ID"),
        ("request_id", "has spaces", "INVALID_REQUEST_ID"),
        ("reason", "", "MISSING_REASON"),
        ("reason", "x" * 501, "INVALID_REASON"),
        ("user_id", "", "INVALID_USER_ID"),
        ("user_id", "bad user", "INVALID_USER_ID"),
    ],
)
async def test_bad_deductions_are_refused_and_change_nothing(
    credits: Credits, field: str, value: object, reason: str
) -> None:
    user = await credits.funded_user(5 * USD)
    request = {
        "user_id": user,
        "amount_nanos": USD,
        "reason": "x",
        "request_id": request_id(),
        field: value,
    }
    failure = await credits.fail("Deduct", pb.DeductRequest(**request), credits.platform_token)  # type: ignore[arg-type]
    assert (failure.code, failure.reason) == (INVALID, reason)
    assert (await credits.balance(user)).balance_nanos == 5 * USD
    assert [t.kind for t in await _transactions(credits, user) if t.kind == pb.TRANSACTION_KIND_DEDUCTION] == []


async def test_deducting_more_than_available_is_refused_and_changes_nothing(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(3 * USD)
    before = await _transactions(credits, user)
    failure = await credits.fail(
        "Deduct",
        pb.DeductRequest(user_id=user, amount_nanos=3 * USD + 1, reason="x", request_id=request_id()),
        credits.platform_token,
    )
    assert (failure.code, failure.reason) == (PRECONDITION, "INSUFFICIENT_CREDITS")
    assert (await credits.balance(user)).balance_nanos == 3 * USD
    assert len(await _transactions(credits, user)) == len(before)
    await assert_ledger_ok(db)


async def test_a_deduction_retried_with_its_request_id_moves_money_once(credits: Credits) -> None:
    user = await credits.funded_user(10 * USD)
    rid = request_id()
    first = await credits.deduct(user, 2 * USD, request_id=rid)
    second = await credits.deduct(user, 2 * USD, request_id=rid)
    assert second.transaction == first.transaction
    assert (await credits.balance(user)).balance_nanos == 8 * USD
    # Even after the money is gone the retry still answers with the original result.
    await credits.deduct(user, 8 * USD)
    third = await credits.deduct(user, 2 * USD, request_id=rid)
    assert third.transaction.transaction_id == first.transaction.transaction_id
    assert (await credits.balance(user)).balance_nanos == 0


async def test_a_request_id_reused_for_a_different_request_is_refused(credits: Credits) -> None:
    user = await credits.funded_user(10 * USD)
    rid = request_id()
    await credits.deduct(user, 2 * USD, request_id=rid)
    failure = await credits.fail(
        "Deduct",
        pb.DeductRequest(user_id=user, amount_nanos=3 * USD, reason="test charge", request_id=rid),
        credits.platform_token,
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    failure = await credits.fail(
        "Allocate",
        pb.AllocateRequest(user_id=user, amount_nanos=USD, reason="r", request_id=rid),
        credits.admin_token,
    )
    assert failure.reason == "REQUEST_ID_REUSED"
    assert (await credits.balance(user)).balance_nanos == 8 * USD


async def test_spending_draws_from_the_soonest_expiring_grant_first(credits: Credits) -> None:
    user = await credits.funded_user(0)
    now = datetime.now(UTC)
    late = await credits.allocate(user, 5 * USD, expires_at=_ts(now + timedelta(days=30)))
    never = await credits.allocate(user, 5 * USD)
    soon = await credits.allocate(user, 5 * USD, expires_at=_ts(now + timedelta(days=3)))
    await credits.deduct(user, 7 * USD)
    expiring = {g.grant_id: g.remaining_nanos for g in (await credits.balance(user)).expiring}
    assert soon.grant_id not in expiring  # used up first
    assert expiring[late.grant_id] == 3 * USD  # then the later one
    assert never.grant_id not in expiring  # never-expiring credits are spent last
    assert (await credits.balance(user)).balance_nanos == 8 * USD


async def test_credits_expire_at_their_expiry(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(0)
    await credits.allocate(user, 4 * USD, expires_at=_ts(datetime.now(UTC) + timedelta(days=2)))
    await credits.allocate(user, 1 * USD)
    await credits.deduct(user, 1 * USD)
    await time_travel(db, user, days=3)
    balance = await credits.balance(user)
    # 3 of the expiring 4 were left: they expire; the non-expiring dollar stays.
    assert balance.balance_nanos == 1 * USD
    expiries = await _transactions(credits, user, kind=pb.TRANSACTION_KIND_EXPIRY)
    assert [t.amount_nanos for t in expiries] == [3 * USD]
    assert expiries[0].credit_account == "platform:expired"
    await assert_ledger_ok(db)


async def test_a_hold_reserves_and_a_capture_charges_the_actual_cost(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(10 * USD)
    held = await credits.hold(user, 4 * USD, ttl_seconds=60)
    assert held.available_after_nanos == 6 * USD
    balance = await credits.balance(user)
    assert (balance.balance_nanos, balance.held_nanos, balance.available_nanos) == (
        10 * USD,
        4 * USD,
        6 * USD,
    )
    # Held credits cannot be spent by anyone else.
    failure = await credits.fail(
        "Deduct",
        pb.DeductRequest(user_id=user, amount_nanos=7 * USD, reason="x", request_id=request_id()),
        credits.platform_token,
    )
    assert failure.reason == "INSUFFICIENT_CREDITS"
    rid = request_id()
    capture = pb.CaptureHoldRequest(hold_id=held.hold_id, amount_nanos=USD + 250, request_id=rid, model="m")
    captured = await credits.as_service("CaptureHold", capture)
    assert captured.hold.status == pb.HOLD_STATUS_CAPTURED
    assert captured.released_nanos == 3 * USD - 250
    assert (
        captured.transaction.kind == pb.TRANSACTION_KIND_HOLD_CAPTURE and captured.transaction.amount_nanos == USD + 250
    )
    assert captured.transaction.audit.model == "m"
    balance = await credits.balance(user)
    assert (balance.balance_nanos, balance.held_nanos) == (9 * USD - 250, 0)
    # The same capture again is a replay; a different request on a settled hold is refused.
    again = await credits.as_service("CaptureHold", capture)
    assert again.transaction.transaction_id == captured.transaction.transaction_id
    failure = await credits.fail(
        "CaptureHold",
        pb.CaptureHoldRequest(hold_id=held.hold_id, amount_nanos=1, request_id=request_id()),
        credits.service_token,
    )
    assert (failure.code, failure.reason) == (PRECONDITION, "HOLD_ALREADY_SETTLED")
    assert (await credits.balance(user)).balance_nanos == 9 * USD - 250
    await assert_ledger_ok(db)


async def test_hold_capture_and_release_errors(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(10 * USD)
    held = await credits.hold(user, 2 * USD)
    too_much = await credits.fail(
        "CaptureHold",
        pb.CaptureHoldRequest(hold_id=held.hold_id, amount_nanos=2 * USD + 1, request_id=request_id()),
        credits.service_token,
    )
    assert (too_much.code, too_much.reason) == (PRECONDITION, "CAPTURE_EXCEEDS_HOLD")
    missing = await credits.fail(
        "ReleaseHold",
        pb.ReleaseHoldRequest(hold_id="0190a0a0-0000-7000-8000-000000000000", request_id=request_id()),
        credits.service_token,
    )
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND")
    malformed = await credits.fail(
        "ReleaseHold",
        pb.ReleaseHoldRequest(hold_id="nope", request_id=request_id()),
        credits.service_token,
    )
    assert (malformed.code, malformed.reason) == (INVALID, "INVALID_HOLD_ID")
    released = await credits.as_service("ReleaseHold", pb.ReleaseHoldRequest(hold_id=held.hold_id, request_id="r1"))
    assert released.hold.status == pb.HOLD_STATUS_RELEASED
    assert (await credits.balance(user)).available_nanos == 10 * USD
    late = await credits.fail(
        "CaptureHold",
        pb.CaptureHoldRequest(hold_id=held.hold_id, amount_nanos=1, request_id=request_id()),
        credits.service_token,
    )
    assert late.reason == "HOLD_ALREADY_SETTLED"
    zero = await credits.hold(user, USD)
    captured = await credits.as_service(
        "CaptureHold",
        pb.CaptureHoldRequest(hold_id=zero.hold_id, amount_nanos=0, request_id=request_id()),
    )
    assert captured.hold.status == pb.HOLD_STATUS_CAPTURED and not captured.HasField("transaction")
    assert (await credits.balance(user)).balance_nanos == 10 * USD
    await assert_ledger_ok(db)


async def test_an_uncaptured_hold_expires_after_its_ttl(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(10 * USD)
    held = await credits.hold(user, 6 * USD, ttl_seconds=1)
    assert (await credits.balance(user)).available_nanos == 4 * USD
    await asyncio.sleep(1.2)
    # The expired hold no longer reserves anything: 10 can be spent again.
    assert (await credits.balance(user)).available_nanos == 10 * USD
    failure = await credits.fail(
        "CaptureHold",
        pb.CaptureHoldRequest(hold_id=held.hold_id, amount_nanos=USD, request_id=request_id()),
        credits.service_token,
    )
    assert (failure.code, failure.reason) == (PRECONDITION, "HOLD_EXPIRED")
    released = await credits.as_service(
        "ReleaseHold", pb.ReleaseHoldRequest(hold_id=held.hold_id, request_id=request_id())
    )
    assert released.hold.status == pb.HOLD_STATUS_EXPIRED
    await credits.deduct(user, 10 * USD)
    await assert_ledger_ok(db)


async def test_a_hold_keeps_expiring_credits_it_reserved_until_it_settles(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(0)
    await credits.allocate(user, 10 * USD, expires_at=_ts(datetime.now(UTC) + timedelta(hours=1)))
    await credits.allocate(user, 5 * USD)
    held = await credits.hold(user, 8 * USD, ttl_seconds=86_400)
    await time_travel(db, user, hours=2)
    balance = await credits.balance(user)
    # 2 of the 10 expire now; 8 stay to back the hold; the 5 that never expire are untouched.
    assert (balance.balance_nanos, balance.held_nanos, balance.available_nanos) == (
        13 * USD,
        8 * USD,
        5 * USD,
    )
    await credits.as_service(
        "CaptureHold",
        pb.CaptureHoldRequest(hold_id=held.hold_id, amount_nanos=5 * USD, request_id=request_id()),
    )
    # The 3 expired credits the capture did not use expire once the hold is settled.
    balance = await credits.balance(user)
    assert (balance.balance_nanos, balance.held_nanos) == (5 * USD, 0)
    assert sum(t.amount_nanos for t in await _transactions(credits, user, kind=pb.TRANSACTION_KIND_EXPIRY)) == 5 * USD
    await assert_ledger_ok(db)


async def test_refunds_never_exceed_the_charge(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(10 * USD)
    charge = (await credits.deduct(user, 4 * USD)).transaction
    refund = pb.RefundRequest(
        user_id=user,
        transaction_id=charge.transaction_id,
        amount_nanos=3 * USD,
        reason="bad output",
        request_id="f1",
    )
    first = await credits.as_admin("Refund", refund)
    assert first.refundable_remaining_nanos == USD
    assert first.transaction.related_transaction_id == charge.transaction_id
    assert first.transaction.debit_account == "platform:revenue"
    assert (await credits.as_admin("Refund", refund)).transaction == first.transaction  # idempotent
    over = await credits.fail(
        "Refund",
        pb.RefundRequest(
            user_id=user,
            transaction_id=charge.transaction_id,
            amount_nanos=USD + 1,
            reason="x",
            request_id=request_id(),
        ),
        credits.admin_token,
    )
    assert (over.code, over.reason) == (PRECONDITION, "REFUND_EXCEEDS_CHARGE")
    last = await credits.as_admin(
        "Refund",
        pb.RefundRequest(
            user_id=user,
            transaction_id=charge.transaction_id,
            amount_nanos=USD,
            reason="x",
            request_id=request_id(),
        ),
    )
    assert last.refundable_remaining_nanos == 0
    assert (await credits.balance(user)).balance_nanos == 10 * USD
    grant = (await _transactions(credits, user, kind=pb.TRANSACTION_KIND_ALLOCATION) or [None])[0]
    if grant is not None:
        not_charge = await credits.fail(
            "Refund",
            pb.RefundRequest(
                user_id=user,
                transaction_id=grant.transaction_id,
                amount_nanos=1,
                reason="x",
                request_id=request_id(),
            ),
            credits.admin_token,
        )
        assert (not_charge.code, not_charge.reason) == (PRECONDITION, "TRANSACTION_NOT_REFUNDABLE")
    other = await credits.funded_user(USD)
    wrong_user = await credits.fail(
        "Refund",
        pb.RefundRequest(
            user_id=other,
            transaction_id=charge.transaction_id,
            amount_nanos=1,
            reason="x",
            request_id=request_id(),
        ),
        credits.admin_token,
    )
    assert (wrong_user.code, wrong_user.reason) == (
        grpc.StatusCode.NOT_FOUND,
        "TRANSACTION_NOT_FOUND",
    )
    await assert_ledger_ok(db)


async def test_tier_change_starts_a_new_period_of_the_new_tier(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(USD)  # the trial allocation, untouched
    await credits.allocate(user, 2 * USD)  # admin credits survive tier changes
    await credits.deduct(user, USD // 2)  # spends from the trial allocation first (it expires)
    rid = request_id()
    changed = await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="starter", request_id=rid))
    assert (changed.previous_tier, changed.account.tier) == ("trial", "starter")
    assert changed.account.balance_nanos == 2 * USD + 20 * USD
    start, end = changed.account.period_start.ToDatetime(), changed.account.period_end.ToDatetime()
    assert 28 <= (end - start).days <= 31
    again = await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="starter", request_id=rid))
    assert again.previous_tier == "trial"
    assert (await credits.balance(user)).balance_nanos == 22 * USD
    unknown = await credits.fail(
        "SetTier",
        pb.SetTierRequest(user_id=user, tier="platinum", request_id=request_id()),
        credits.admin_token,
    )
    assert (unknown.code, unknown.reason) == (INVALID, "UNKNOWN_TIER")
    expired = await _transactions(credits, user, kind=pb.TRANSACTION_KIND_EXPIRY)
    assert [t.amount_nanos for t in expired] == [USD // 2]
    await assert_ledger_ok(db)


async def test_a_new_user_can_be_placed_directly_on_a_tier(credits: Credits, db: asyncpg.Pool) -> None:
    user = new_user()
    changed = await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="professional", request_id="t"))
    assert changed.previous_tier == "" and changed.account.balance_nanos == 60 * USD
    await assert_ledger_ok(db)


async def test_period_reset_expires_the_old_allocation_and_grants_the_new(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(0)
    await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="starter", request_id=request_id()))
    await credits.allocate(user, 3 * USD)
    await credits.deduct(user, 5 * USD)  # from the $20 allocation: 15 left of it
    old = await credits.balance(user)
    await time_travel(db, user, days=31)
    done = await credits.as_admin("ResetPeriods", pb.ResetPeriodsRequest(user_id=user, request_id=request_id()))
    assert done.reset_count == 1
    new = await credits.balance(user)
    assert new.balance_nanos == 3 * USD + 20 * USD  # no rollover of the 15 left
    assert new.period_start.ToDatetime() > old.period_start.ToDatetime() - timedelta(days=31)
    assert new.period_end.ToDatetime() > datetime.now(UTC).replace(tzinfo=None)
    again = await credits.as_admin("ResetPeriods", pb.ResetPeriodsRequest(user_id=user, request_id=request_id()))
    assert again.reset_count == 0
    allocations = await _transactions(credits, user, kind=pb.TRANSACTION_KIND_TIER_ALLOCATION)
    assert len(allocations) == 3  # trial at opening, starter on the change, starter for the new period
    await assert_ledger_ok(db)


async def test_periods_reset_by_themselves_on_schedule(credits_db: str, keys: Keys, db: asyncpg.Pool) -> None:
    running = await create_server(
        CreditsSettings.from_env(credits_environ(credits_db, keys, CREDITS_MAINTENANCE_INTERVAL_SECONDS="1"))
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            client = Credits(chan, keys)
            user = await client.funded_user(USD // 2)
            await time_travel(db, user, days=7)
            for _ in range(50):
                async with db.acquire() as conn:
                    count = await conn.fetchval(
                        "SELECT count(*) FROM transactions WHERE user_id = $1 AND kind = 'TIER_ALLOCATION'",
                        user,
                    )
                if count == 2:
                    break
                await asyncio.sleep(0.1)
            assert count == 2, "the scheduler did not reset the period"
            async with db.acquire() as conn:
                stored = await conn.fetchval("SELECT balance_nanos FROM accounts WHERE user_id = $1", user)
            assert stored == USD
    finally:
        await running.stop(1)


async def test_transactions_are_paged_newest_first_and_filtered(credits: Credits) -> None:
    user = await credits.funded_user(0)
    for amount in range(1, 8):
        await credits.allocate(user, amount * USD)
    token = credits.keys.token(user, "user")
    seen: list[pb.Transaction] = []
    page_token = ""
    while True:
        page = await credits.call(
            "ListTransactions",
            pb.ListTransactionsRequest(page_size=3, page_token=page_token),
            token,
        )
        seen.extend(page.transactions)
        page_token = page.next_page_token
        if not page_token:
            break
    assert [t.amount_nanos for t in seen if t.kind == pb.TRANSACTION_KIND_ALLOCATION] == [
        a * USD for a in range(7, 0, -1)
    ]
    ids = [t.transaction_id for t in seen]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    only = await credits.call("ListTransactions", pb.ListTransactionsRequest(kind=pb.TRANSACTION_KIND_REFUND), token)
    assert list(only.transactions) == []
    deductions = await credits.call(
        "ListTransactions", pb.ListTransactionsRequest(kind=pb.TRANSACTION_KIND_DEDUCTION), token
    )
    assert [t.kind for t in deductions.transactions] == [
        pb.TRANSACTION_KIND_DEDUCTION
    ]  # funded_user spent the trial dollar
    future = datetime.now(UTC) + timedelta(hours=1)
    none = await credits.call("ListTransactions", pb.ListTransactionsRequest(start_time=_ts(future)), token)
    assert list(none.transactions) == []
    bad = await credits.fail("ListTransactions", pb.ListTransactionsRequest(page_token="%%%"), token)
    assert (bad.code, bad.reason) == (INVALID, "INVALID_PAGE_TOKEN")
    size = await credits.fail("ListTransactions", pb.ListTransactionsRequest(page_size=501), token)
    assert size.reason == "INVALID_PAGE_SIZE"
    window = await credits.fail(
        "ListTransactions",
        pb.ListTransactionsRequest(start_time=_ts(future), end_time=_ts(future - timedelta(hours=2))),
        token,
    )
    assert window.reason == "INVALID_TIME_RANGE"


async def test_admins_list_accounts_by_tier(credits: Credits) -> None:
    user = new_user("zz-list")
    await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="enterprise", request_id=request_id()))
    found: list[str] = []
    token = ""
    while True:
        page = await credits.as_admin(
            "ListAccounts", pb.ListAccountsRequest(tier="enterprise", page_size=2, page_token=token)
        )
        found.extend(a.user_id for a in page.accounts)
        assert all(a.tier == "enterprise" for a in page.accounts)
        token = page.next_page_token
        if not token:
            break
    assert user in found and found == sorted(found)


async def test_ledger_transactions_cannot_be_altered(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(2 * USD)
    async with db.acquire() as conn:
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("UPDATE transactions SET amount_nanos = 1 WHERE user_id = $1", user)
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("DELETE FROM transactions WHERE user_id = $1", user)


def _usage(*amounts: int, prefix: str = "") -> list[pb.UsageCharge]:
    return [
        pb.UsageCharge(
            request_id=f"{prefix or request_id()}-{i}", amount_nanos=a, model="m", reference_id=f"charge-test:{i}"
        )
        for i, a in enumerate(amounts)
    ]


async def test_usage_charges_are_accepted_while_the_running_sum_fits(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(10 * USD)
    strict = await credits.as_service(
        "ChargeUsage", pb.ChargeUsageRequest(user_id=user, charges=_usage(4 * USD, 4 * USD, 4 * USD, USD))
    )
    # In order: 4 + 4 fit, the third does not, and nothing after a refusal slips in.
    assert [r.charged_nanos for r in strict.results] == [4 * USD, 4 * USD, 0, 0]
    assert [bool(r.transaction_id) for r in strict.results] == [True, True, False, False]
    assert strict.balance_after_nanos == 2 * USD
    partial = await credits.as_service(
        "ChargeUsage",
        pb.ChargeUsageRequest(user_id=user, charges=_usage(USD, 3 * USD, USD, prefix="p"), allow_partial=True),
    )
    assert [r.charged_nanos for r in partial.results] == [USD, USD, 0]
    assert [r.shortfall_nanos for r in partial.results] == [0, 2 * USD, USD]
    assert (await credits.balance(user)).balance_nanos == 0
    # A retry replays: same transactions, nothing charged again.
    replay = await credits.as_service(
        "ChargeUsage",
        pb.ChargeUsageRequest(user_id=user, charges=_usage(USD, 3 * USD, USD, prefix="p"), allow_partial=True),
    )
    assert [r.duplicate for r in replay.results] == [True, True, False]
    assert [r.transaction_id for r in replay.results[:2]] == [r.transaction_id for r in partial.results[:2]]
    assert (await credits.balance(user)).balance_nanos == 0
    # One transaction per charged event.
    async with db.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM transactions WHERE user_id = $1 AND reference_id LIKE 'charge-test:%'", user
        )
    assert count == 4
    await assert_ledger_ok(db)


async def test_usage_charges_are_checked(credits: Credits) -> None:
    user = await credits.funded_user(USD)
    same = [pb.UsageCharge(request_id="x", amount_nanos=1), pb.UsageCharge(request_id="x", amount_nanos=1)]
    duplicate = await credits.fail(
        "ChargeUsage", pb.ChargeUsageRequest(user_id=user, charges=same), credits.service_token
    )
    assert (duplicate.code, duplicate.reason) == (INVALID, "DUPLICATE_REQUEST_ID")
    empty = await credits.fail("ChargeUsage", pb.ChargeUsageRequest(user_id=user), credits.service_token)
    assert empty.reason == "TOO_MANY_CHARGES"
    negative = await credits.fail(
        "ChargeUsage", pb.ChargeUsageRequest(user_id=user, charges=_usage(-1)), credits.service_token
    )
    assert negative.reason == "INVALID_AMOUNT"
    first = await credits.as_service("ChargeUsage", pb.ChargeUsageRequest(user_id=user, charges=_usage(5, prefix="r")))
    assert first.results[0].charged_nanos == 5
    changed = await credits.fail(
        "ChargeUsage", pb.ChargeUsageRequest(user_id=user, charges=_usage(6, prefix="r")), credits.service_token
    )
    assert (changed.code, changed.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")


async def test_a_new_hold_is_answered_exactly_as_stored_and_replayed(credits: Credits, db: asyncpg.Pool) -> None:
    """CreateHold answers from what the hold statement returned (one round trip): the answer must be the
    stored hold, field for field, and a replay of the same request must answer the same."""
    user = await credits.funded_user(3 * USD)
    request = pb.CreateHoldRequest(user_id=user, amount_nanos=USD, ttl_seconds=600, request_id=request_id())
    created = await credits.as_service("CreateHold", request)
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT hold_id::text, user_id, amount_nanos, captured_nanos, status, expires_at, created_at"
            " FROM holds WHERE hold_id = $1::uuid",
            created.hold_id,
        )
    assert row is not None
    assert (created.hold.hold_id, created.hold.user_id, created.hold.amount_nanos, created.hold.captured_nanos) == (
        row["hold_id"],
        row["user_id"],
        row["amount_nanos"],
        row["captured_nanos"],
    )
    assert created.hold.status == pb.HOLD_STATUS_ACTIVE and row["status"] == "ACTIVE"
    assert created.hold.expires_at.ToDatetime(tzinfo=UTC) == row["expires_at"]
    assert created.hold.created_at.ToDatetime(tzinfo=UTC) == row["created_at"]
    assert created.available_after_nanos == 2 * USD
    replayed = await credits.as_service("CreateHold", request)
    assert replayed == created


async def test_create_holds_answers_each_hold_as_create_hold_would(credits: Credits, db: asyncpg.Pool) -> None:
    """One CreateHolds call: the holds that fit are made together; a refused one (balance, a reused request
    id) fails alone with CreateHold's status; replays and in-batch repeats answer the first hold."""
    rich = await credits.funded_user(5 * USD)
    poor = await credits.funded_user(USD // 2)
    earlier = pb.CreateHoldRequest(user_id=rich, amount_nanos=USD, request_id=request_id())
    first = await credits.as_service("CreateHold", earlier)
    reused = pb.CreateHoldRequest(user_id=rich, amount_nanos=2 * USD, request_id=earlier.request_id)
    fresh = [pb.CreateHoldRequest(user_id=rich, amount_nanos=USD // 4, request_id=request_id()) for _ in range(3)]
    too_much = pb.CreateHoldRequest(user_id=poor, amount_nanos=USD, request_id=request_id())
    holds = [fresh[0], too_much, earlier, fresh[1], reused, fresh[2], fresh[0]]
    answer = await credits.call("CreateHolds", pb.CreateHoldsRequest(holds=holds), credits.service_token)
    results = list(answer.results)
    assert len(results) == len(holds)
    made = [r for r in results if r.HasField("hold")]
    assert [r.HasField("error") for r in results] == [False, True, False, False, True, False, False]
    assert results[1].error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "INSUFFICIENT_CREDITS" in str(results[1].error.details)
    assert "REQUEST_ID_REUSED" in str(results[4].error.details)
    assert results[2].hold.hold == first.hold  # a replay of the hold made before (available_after is current)
    assert results[6].hold.hold_id == results[0].hold.hold_id  # an in-batch repeat replays its first
    assert len({r.hold.hold_id for r in made}) == 4
    for r in made:
        assert r.hold.hold.user_id == rich and r.hold.hold.status == pb.HOLD_STATUS_ACTIVE
    balance = await credits.balance(rich)
    assert balance.held_nanos == USD + 3 * (USD // 4)
    assert (await credits.balance(poor)).held_nanos == 0
    await assert_ledger_ok(db)


async def test_create_holds_refuses_a_malformed_batch_as_a_whole(credits: Credits, db: asyncpg.Pool) -> None:
    user = await credits.funded_user(2 * USD)
    good = pb.CreateHoldRequest(user_id=user, amount_nanos=USD, request_id=request_id())
    bad = pb.CreateHoldRequest(user_id=user, amount_nanos=0, request_id=request_id())
    failure = await credits.fail("CreateHolds", pb.CreateHoldsRequest(holds=[good, bad]), credits.service_token)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    empty = await credits.fail("CreateHolds", pb.CreateHoldsRequest(), credits.service_token)
    assert (empty.code, empty.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_HOLDS")
    assert (await credits.balance(user)).held_nanos == 0  # nothing of the refused batch was held
