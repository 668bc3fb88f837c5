"""CouponsService over real gRPC: rules, caps under concurrency, the two-step grant and its recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from creditmeter.coupons.v1 import coupons_pb2 as cpb
from creditmeter.credits.v1 import credits_pb2 as pb
from google.protobuf import timestamp_pb2

from services.common.auth import StaticTokenSource
from services.common.bootstrap import RunningService
from services.common.db import create_pool
from services.common.errors import Code, DomainError
from services.common.grpcserver import ClientInterceptor, connect
from services.coupons.config import CouponsSettings
from services.coupons.server import build_workflow
from services.coupons.server import create_server as create_coupons_server
from tests.conftest import Keys, Postgres, coupons_environ, credits_environ, new_user, request_id
from tests.integration.conftest import USD, CouponsClient, Credits, assert_everything_ok

PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def _coupon_grants(credits_db: asyncpg.Pool, coupons_db: asyncpg.Pool, code: str) -> int:
    async with coupons_db.acquire() as conn:
        ids = [
            str(r["redemption_id"])
            for r in await conn.fetch("SELECT redemption_id FROM redemptions WHERE code = $1", code)
        ]
    async with credits_db.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM transactions WHERE kind = 'ALLOCATION' AND debit_account = 'platform:promotions'"
                " AND request_id = ANY($1::text[])",
                ids,
            )
        )


async def test_the_acceptance_story(
    coupons: CouponsClient, credits: Credits, db: asyncpg.Pool, coupons_db: asyncpg.Pool
) -> None:
    coupon = await coupons.create(code=f"five-{new_user('x')[-6:]}", credit_amount_nanos=5 * USD, max_redemptions=3)
    assert coupon.code == coupon.code.upper() and coupon.per_user_limit == 1
    users = [await credits.funded_user(USD) for _ in range(4)]
    check = await coupons.validate(users[0], f"  {coupon.code.lower()} ")
    assert check.valid and check.reason == "" and check.grant.credits_nanos == 5 * USD
    for user in users[:3]:
        redeemed = await coupons.redeem(user, coupon.code)
        assert redeemed.credits_granted_nanos == 5 * USD
        assert redeemed.balance_after_nanos == 6 * USD
        assert (await credits.balance(user)).balance_nanos == 6 * USD
    fourth = await coupons.fail(
        "RedeemCoupon",
        cpb.RedeemCouponRequest(code=coupon.code, request_id=request_id()),
        coupons.keys.token(users[3], "user"),
    )
    assert (fourth.code, fourth.reason) == (PRECONDITION, "COUPON_EXHAUSTED")
    again = await coupons.fail(
        "RedeemCoupon",
        cpb.RedeemCouponRequest(code=coupon.code, request_id=request_id()),
        coupons.keys.token(users[0], "user"),
    )
    assert again.reason == "COUPON_ALREADY_REDEEMED"
    denied = await coupons.fail(
        "CreateCoupon",
        cpb.CreateCouponRequest(
            code="NOPE123", kind=cpb.COUPON_KIND_CREDIT_GRANT, credit_amount_nanos=1, request_id="x"
        ),
        coupons.keys.token(users[0], "user"),
    )
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED
    assert (await credits.balance(users[3])).balance_nanos == USD
    assert await _coupon_grants(db, coupons_db, coupon.code) == 3
    await assert_everything_ok(db, coupons_db)


async def test_every_validate_reason(coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool) -> None:
    user = await credits.funded_user(USD)
    other = await credits.funded_user(USD)
    now = datetime.now(UTC)

    async def reason(code: str, who: str = user) -> str:
        answer = await coupons.validate(who, code)
        assert answer.valid == (answer.reason == "")
        return str(answer.reason)

    assert await reason("NO-SUCH-CODE") == "COUPON_NOT_FOUND"
    later = await coupons.create(valid_from=_ts(now + timedelta(days=1)))
    assert await reason(later.code) == "COUPON_NOT_YET_VALID"
    ending = await coupons.create(expires_at=_ts(now + timedelta(hours=1)))
    assert await reason(ending.code) == ""
    async with coupons_db.acquire() as conn:
        await conn.execute("UPDATE coupons SET expires_at = now() - interval '1 second' WHERE code = $1", ending.code)
    assert await reason(ending.code) == "COUPON_EXPIRED"
    single = await coupons.create(max_redemptions=1)
    await coupons.redeem(other, single.code)
    assert await reason(single.code) == "COUPON_EXHAUSTED"
    assert await reason(single.code, other) == "COUPON_ALREADY_REDEEMED"
    off = await coupons.create()
    await coupons.call(
        "DisableCoupon", cpb.DisableCouponRequest(code=off.code, request_id=request_id()), coupons.admin_token
    )
    assert await reason(off.code) == "COUPON_DISABLED"
    vip = await coupons.create(eligible_tiers=["enterprise"])
    assert await reason(vip.code) == "COUPON_TIER_NOT_ELIGIBLE"
    newcomers = await coupons.create(first_time_only=True)
    assert await reason(newcomers.code) == ""
    assert await reason(newcomers.code, other) == "COUPON_FIRST_TIME_ONLY"  # other redeemed `single`
    # Validation changes nothing.
    fresh = await coupons.create(max_redemptions=1)
    for _ in range(3):
        assert await reason(fresh.code) == ""
    got = await coupons.call("GetCoupon", cpb.GetCouponRequest(code=fresh.code), coupons.admin_token)
    assert got.coupon.redemption_count == 0


async def test_creating_coupons_checks_the_definition(coupons: CouponsClient) -> None:
    async def refused(**fields: object) -> str:
        fields.setdefault("request_id", request_id())
        failure = await coupons.fail("CreateCoupon", cpb.CreateCouponRequest(**fields), coupons.admin_token)  # type: ignore[arg-type]
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure
        return failure.reason

    assert await refused(code="x", kind=cpb.COUPON_KIND_CREDIT_GRANT, credit_amount_nanos=1) == "INVALID_CODE"
    assert await refused(code="BAD CODE", kind=cpb.COUPON_KIND_CREDIT_GRANT, credit_amount_nanos=1) == "INVALID_CODE"
    assert await refused(code="NOKIND1") == "INVALID_KIND"
    assert await refused(code="NOMONEY", kind=cpb.COUPON_KIND_CREDIT_GRANT) == "INVALID_AMOUNT"
    assert (
        await refused(code="BADTIER", kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="gold", trial_days=3)
        == "UNKNOWN_TIER"
    )
    assert await refused(code="NODAYS1", kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="starter") == "INVALID_TRIAL"
    past = _ts(datetime.now(UTC) - timedelta(days=1))
    assert (
        await refused(code="PASTEND", kind=cpb.COUPON_KIND_CREDIT_GRANT, credit_amount_nanos=1, expires_at=past)
        == "INVALID_WINDOW"
    )
    assert (
        await refused(code="NEGCAP1", kind=cpb.COUPON_KIND_CREDIT_GRANT, credit_amount_nanos=1, max_redemptions=-1)
        == "INVALID_LIMIT"
    )
    assert (
        await refused(code="NOREQID", kind=cpb.COUPON_KIND_CREDIT_GRANT, credit_amount_nanos=1, request_id="")
        == "MISSING_REQUEST_ID"
    )
    first = await coupons.create(code="taken-code", request_id="create-taken")
    replay = await coupons.create(code="TAKEN-CODE", request_id="create-taken")
    assert replay == first
    duplicate = await coupons.fail(
        "CreateCoupon",
        cpb.CreateCouponRequest(
            code="Taken-Code", kind=cpb.COUPON_KIND_CREDIT_GRANT, credit_amount_nanos=1, request_id=request_id()
        ),
        coupons.admin_token,
    )
    assert (duplicate.code, duplicate.reason) == (grpc.StatusCode.ALREADY_EXISTS, "COUPON_CODE_TAKEN")


async def test_200_users_racing_for_50_units_get_exactly_50(
    coupons: CouponsClient, credits: Credits, db: asyncpg.Pool, coupons_db: asyncpg.Pool
) -> None:
    coupon = await coupons.create(credit_amount_nanos=USD, max_redemptions=50)
    users = [new_user("race") for _ in range(200)]
    results = await asyncio.gather(*(coupons.redeem(u, coupon.code) for u in users), return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 50 and len(lost) == 150
    assert {r.code() for r in lost} == {PRECONDITION}
    got = await coupons.call("GetCoupon", cpb.GetCouponRequest(code=coupon.code), coupons.admin_token)
    assert got.coupon.redemption_count == 50
    assert await _coupon_grants(db, coupons_db, coupon.code) == 50
    await assert_everything_ok(db, coupons_db)


async def test_one_user_redeeming_from_20_tasks_gets_it_once(
    coupons: CouponsClient, credits: Credits, db: asyncpg.Pool, coupons_db: asyncpg.Pool
) -> None:
    coupon = await coupons.create(credit_amount_nanos=2 * USD)
    user = await credits.funded_user(0)
    results = await asyncio.gather(*(coupons.redeem(user, coupon.code) for _ in range(20)), return_exceptions=True)
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert (await credits.balance(user)).balance_nanos == 2 * USD
    await assert_everything_ok(db, coupons_db)


async def test_a_retried_redemption_returns_the_first_result(
    coupons: CouponsClient, credits: Credits, db: asyncpg.Pool, coupons_db: asyncpg.Pool
) -> None:
    coupon = await coupons.create(credit_amount_nanos=3 * USD, per_user_limit=2)
    user = await credits.funded_user(0)
    first = await coupons.redeem(user, coupon.code, rid="redeem-once")
    again = await coupons.redeem(user, coupon.code, rid="redeem-once")
    assert again.redemption_id == first.redemption_id
    assert (await credits.balance(user)).balance_nanos == 3 * USD
    other = await coupons.create()
    reused = await coupons.fail(
        "RedeemCoupon",
        cpb.RedeemCouponRequest(code=other.code, request_id="redeem-once"),
        coupons.keys.token(user, "user"),
    )
    assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    await assert_everything_ok(db, coupons_db)


class _BreakAllocate(grpc.aio.UnaryUnaryClientInterceptor):
    """Fault injection on the wire: Allocate calls reach a method the server does not have."""

    async def intercept_unary_unary(self, continuation, call_details, request):  # type: ignore[no-untyped-def]
        method = call_details.method  # bytes in grpc.aio
        if method.endswith(b"/Allocate"):
            method = method + b"Unreachable"
        details = grpc.aio.ClientCallDetails(
            method, call_details.timeout, call_details.metadata, call_details.credentials, call_details.wait_for_ready
        )
        return await continuation(details, request)


async def test_a_credits_failure_between_the_steps_heals_without_loss_or_double_grant(
    coupons: CouponsClient,
    credits: Credits,
    credits_db: str,
    keys: Keys,
    db: asyncpg.Pool,
    coupons_db: asyncpg.Pool,
    credits_server: RunningService,
) -> None:
    settings = CouponsSettings.from_env(coupons_environ(credits_db, keys, credits_server.port))
    pool = await create_pool(credits_db, "coupons", application_name="test")
    address = f"127.0.0.1:{credits_server.port}"
    token = StaticTokenSource(keys.token("svc-coupons", "service"))
    broken_channel = grpc.aio.insecure_channel(address, interceptors=[_BreakAllocate(), ClientInterceptor(token)])
    healthy_channel = connect(address, token)
    coupon = await coupons.create(credit_amount_nanos=4 * USD, max_redemptions=5)
    user = await credits.funded_user(0)
    try:
        broken = build_workflow(settings, pool, broken_channel)
        with pytest.raises(DomainError) as pending:
            await broken.redeem(user, coupon.code, "heal-1")
        assert (pending.value.reason, pending.value.code) == ("REDEMPTION_PENDING", Code.UNAVAILABLE)
        async with coupons_db.acquire() as conn:
            claimed = await conn.fetchval("SELECT redemption_count FROM coupons WHERE code = $1", coupon.code)
        assert claimed == 1  # counted ...
        assert (await credits.balance(user)).balance_nanos == 0  # ... but not granted yet

        # A second redemption whose grant did reach credits before "the crash" (not recorded here).
        other = await credits.funded_user(0)
        with pytest.raises(DomainError):
            await broken.redeem(other, coupon.code, "heal-2")
        async with coupons_db.acquire() as conn:
            rid2 = str(await conn.fetchval("SELECT redemption_id FROM redemptions WHERE user_id = $1", other))
        await credits.as_service(
            "Allocate",
            pb.AllocateRequest(
                user_id=other,
                amount_nanos=4 * USD,
                reason=f"coupon {coupon.code}",
                request_id=rid2,
                source=pb.GRANT_SOURCE_COUPON,
                reference_id=rid2,
            ),
        )

        healthy = build_workflow(settings, pool, healthy_channel)
        assert await healthy.recover_pending(older_than_seconds=0) == 2
        assert await healthy.recover_pending(older_than_seconds=0) == 0  # nothing left, nothing twice
        # The user's retry with the same request id now returns the completed redemption.
        retried = await coupons.redeem(user, coupon.code, rid="heal-1")
        assert retried.redemption.status == cpb.REDEMPTION_STATUS_COMPLETED
        assert (await credits.balance(user)).balance_nanos == 4 * USD
        assert (await credits.balance(other)).balance_nanos == 4 * USD
        assert await _coupon_grants(db, coupons_db, coupon.code) == 2
    finally:
        await broken_channel.close()
        await healthy_channel.close()
        await pool.close()
    await assert_everything_ok(db, coupons_db)


async def test_a_grant_refused_for_good_releases_the_unit(
    coupons: CouponsClient,
    credits: Credits,
    credits_db: str,
    keys: Keys,
    db: asyncpg.Pool,
    coupons_db: asyncpg.Pool,
    credits_server: RunningService,
) -> None:
    from services.common.ids import uuid7
    from services.coupons import repository as repo

    settings = CouponsSettings.from_env(coupons_environ(credits_db, keys, 1))
    coupon = await coupons.create(credit_amount_nanos=USD, max_redemptions=1)
    user = await credits.funded_user(0)
    pool = await create_pool(credits_db, "coupons", application_name="test")
    chan = connect(f"127.0.0.1:{credits_server.port}", StaticTokenSource(keys.token("svc-coupons", "service")))
    try:
        async with coupons_db.acquire() as conn:
            rid = uuid7()
            assert await repo.claim(conn, coupon.code, user, "trial", rid, "doomed", "fp") == ""
            # Corrupt the pending grant so that credits refuses it (INVALID_AMOUNT).
            await conn.execute("UPDATE redemptions SET credits_nanos = 0 WHERE redemption_id = $1", rid)
        workflow = build_workflow(settings, pool, chan)
        assert await workflow.recover_pending(older_than_seconds=0) == 0
        async with coupons_db.acquire() as conn:
            status = await conn.fetchval("SELECT status FROM redemptions WHERE redemption_id = $1", rid)
            count = await conn.fetchval("SELECT redemption_count FROM coupons WHERE code = $1", coupon.code)
        assert (status, count) == ("FAILED", 0)
        # The unit is free again for someone else.
        await coupons.redeem(await credits.funded_user(0), coupon.code)
    finally:
        await chan.close()
        await pool.close()
    await assert_everything_ok(db, coupons_db)


async def test_a_tier_trial_starts_and_reverts(
    coupons: CouponsClient,
    credits: Credits,
    db: asyncpg.Pool,
    coupons_db: asyncpg.Pool,
    credits_db: str,
    keys: Keys,
    credits_server: RunningService,
) -> None:
    trial = await coupons.create(
        kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="professional", trial_days=30, eligible_tiers=["trial", "starter"]
    )
    user = await credits.funded_user(USD)
    redeemed = await coupons.redeem(user, trial.code)
    assert redeemed.trial_tier == "professional"
    ends = redeemed.trial_ends_at.ToDatetime(tzinfo=UTC)
    assert timedelta(days=29, hours=23) < ends - datetime.now(UTC) <= timedelta(days=30)
    balance = await credits.balance(user)
    assert balance.tier == "professional" and balance.balance_nanos == 60 * USD
    assert redeemed.redemption.previous_tier == "trial"
    # A user already on the trial's tier cannot take it again.
    assert (await coupons.validate(user, trial.code)).reason in ("COUPON_ALREADY_REDEEMED", "COUPON_TIER_NOT_ELIGIBLE")
    async with coupons_db.acquire() as conn:
        await conn.execute(
            "UPDATE redemptions SET trial_ends_at = now() - interval '1 second' WHERE redemption_id = $1",
            redeemed.redemption_id,
        )
    settings = CouponsSettings.from_env(coupons_environ(credits_db, keys, 1))
    pool = await create_pool(credits_db, "coupons", application_name="test")
    chan = connect(f"127.0.0.1:{credits_server.port}", StaticTokenSource(keys.token("svc-coupons", "service")))
    try:
        workflow = build_workflow(settings, pool, chan)
        assert await workflow.revert_due_trials() >= 1
        assert await workflow.revert_due_trials() == 0
    finally:
        await chan.close()
        await pool.close()
    assert (await credits.balance(user)).tier == "trial"
    await assert_everything_ok(db, coupons_db)


async def test_failed_attempts_are_rate_limited(coupons: CouponsClient, credits: Credits) -> None:
    user = await credits.funded_user(0)
    good = await coupons.create()
    for i in range(10):
        assert (await coupons.validate(user, f"GUESS-{i:04d}")).reason == "COUPON_NOT_FOUND"
    token = coupons.keys.token(user, "user")
    limited = await coupons.fail("ValidateCoupon", cpb.ValidateCouponRequest(code=good.code), token)
    assert (limited.code, limited.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS")
    blocked = await coupons.fail(
        "RedeemCoupon", cpb.RedeemCouponRequest(code=good.code, request_id=request_id()), token
    )
    assert blocked.reason == "TOO_MANY_ATTEMPTS"
    # Someone else is unaffected.
    assert (await coupons.validate(await credits.funded_user(0), good.code)).valid


async def test_redemption_history(coupons: CouponsClient, credits: Credits) -> None:
    coupon = await coupons.create(per_user_limit=3)
    alice, bob = await credits.funded_user(0), await credits.funded_user(0)
    for user in (alice, alice, bob):
        await coupons.redeem(user, coupon.code)
    own = await coupons.call("ListRedemptions", cpb.ListRedemptionsRequest(), coupons.keys.token(alice, "user"))
    assert {r.user_id for r in own.redemptions} == {alice} and len(own.redemptions) == 2
    peek = await coupons.fail(
        "ListRedemptions", cpb.ListRedemptionsRequest(user_id=bob), coupons.keys.token(alice, "user")
    )
    assert peek.code == grpc.StatusCode.PERMISSION_DENIED
    seen: list[str] = []
    token = ""
    while True:
        page = await coupons.call(
            "ListRedemptions",
            cpb.ListRedemptionsRequest(code=coupon.code, page_size=2, page_token=token),
            coupons.admin_token,
        )
        seen.extend(r.user_id for r in page.redemptions)
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted([alice, alice, bob])
    listed = await coupons.call("ListCoupons", cpb.ListCouponsRequest(page_size=500), coupons.admin_token)
    assert coupon.code in {c.code for c in listed.coupons}


async def test_make_run_seeds_the_dev_coupons(postgres: Postgres, keys: Keys) -> None:
    from services.credits.config import CreditsSettings
    from services.credits.server import create_server

    url = await postgres.database("seed_check")
    credits_running = await create_server(CreditsSettings.from_env(credits_environ(url, keys)))
    running = await create_coupons_server(
        CouponsSettings.from_env(coupons_environ(url, keys, credits_running.port, COUPONS_DEV_SEED="true"))
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            client = CouponsClient(chan, keys)
            listed = await client.call("ListCoupons", cpb.ListCouponsRequest(), client.admin_token)
            by_code = {c.code: c for c in listed.coupons}
            assert set(by_code) == {"WELCOME10", "FREEMONTH"}
            assert by_code["WELCOME10"].credit_amount_nanos == 10 * USD
            assert (by_code["FREEMONTH"].trial_tier, by_code["FREEMONTH"].trial_days) == ("professional", 30)
    finally:
        await running.stop(1)
        await credits_running.stop(1)
