"""Every RPC times every kind of caller: who gets through, who is refused with which code, and that
a refused call changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from creditmeter.credits.v1 import credits_pb2 as pb

from services.credits.config import CreditsSettings
from services.credits.server import create_server
from tests.conftest import Keys, Postgres, credits_environ, request_id
from tests.integration.authz import CALLERS, DENIED, OK, UNAUTH, expect, token_for
from tests.integration.conftest import USD, Credits

Factory = Callable[[Credits, str], Awaitable[Any]]


async def _balance_req(c: Credits, user: str) -> Any:
    return pb.GetBalanceRequest(user_id=user)


async def _list_req(c: Credits, user: str) -> Any:
    return pb.ListTransactionsRequest(user_id=user)


async def _tiers_req(c: Credits, user: str) -> Any:
    return pb.CompareTiersRequest()


async def _allocate_req(c: Credits, user: str) -> Any:
    return pb.AllocateRequest(user_id=user, amount_nanos=USD, reason="r", request_id=request_id())


async def _deduct_req(c: Credits, user: str) -> Any:
    return pb.DeductRequest(user_id=user, amount_nanos=USD, reason="r", request_id=request_id())


async def _refund_req(c: Credits, user: str) -> Any:
    charge = (await c.deduct(user, USD)).transaction
    return pb.RefundRequest(
        user_id=user,
        transaction_id=charge.transaction_id,
        amount_nanos=USD,
        reason="r",
        request_id=request_id(),
    )


async def _hold_req(c: Credits, user: str) -> Any:
    return pb.CreateHoldRequest(user_id=user, amount_nanos=USD, request_id=request_id())


async def _capture_req(c: Credits, user: str) -> Any:
    hold = await c.hold(user, USD)
    return pb.CaptureHoldRequest(hold_id=hold.hold_id, amount_nanos=USD // 2, request_id=request_id())


async def _release_req(c: Credits, user: str) -> Any:
    hold = await c.hold(user, USD)
    return pb.ReleaseHoldRequest(hold_id=hold.hold_id, request_id=request_id())


async def _usage_req(c: Credits, user: str) -> Any:
    return pb.ChargeUsageRequest(user_id=user, charges=[pb.UsageCharge(request_id=request_id(), amount_nanos=USD)])


async def _usage_batch_req(c: Credits, user: str) -> Any:
    # Zero: a probe that moves no money (metering's verify only asks events for charges that did).
    return pb.ChargeUsageBatchRequest(items=[pb.UsageItem(user_id=user, event_id=request_id(), amount_nanos=0)])


async def _holds_req(c: Credits, user: str) -> Any:
    return pb.CreateHoldsRequest(holds=[pb.CreateHoldRequest(user_id=user, amount_nanos=USD, request_id=request_id())])


async def _states_req(c: Credits, user: str) -> Any:
    return pb.GetAccountStatesRequest(user_ids=[user])


async def _tier_req(c: Credits, user: str) -> Any:
    return pb.SetTierRequest(user_id=user, tier="starter", request_id=request_id())


async def _accounts_req(c: Credits, user: str) -> Any:
    return pb.ListAccountsRequest(page_size=1)


async def _watch_req(c: Credits, user: str) -> Any:
    return pb.WatchBalanceRequest(user_id=user)


async def _report_req(c: Credits, user: str) -> Any:
    return pb.GetPlatformReportRequest(top_users_count=1)


async def _reset_req(c: Credits, user: str) -> Any:
    return pb.ResetPeriodsRequest(user_id=user, request_id=request_id())


HOLDERS = {"admin", "svc-metering"}

MATRIX: dict[str, tuple[Factory, dict[str, grpc.StatusCode], bool]] = {
    # method: (request factory, expected code per caller, mutates)
    "GetBalance": (
        _balance_req,
        expect({"user_self", "admin", "svc-metering", "svc-coupons", "svc-openrouter"}),
        False,
    ),
    "ListTransactions": (_list_req, expect({"user_self", "admin"}), False),
    "CompareTiers": (_tiers_req, expect(set(), public=True), False),
    # An ADMIN grant (the request's default source): admins only. COUPON grants: test below.
    "Allocate": (_allocate_req, expect({"admin"}), True),
    "Deduct": (_deduct_req, expect({"admin", "svc-platform"}), True),
    "Refund": (_refund_req, expect({"admin"}), True),
    "CreateHold": (_hold_req, expect(HOLDERS), True),
    "CaptureHold": (_capture_req, expect(HOLDERS), True),
    "ReleaseHold": (_release_req, expect(HOLDERS), True),
    # Tier changes: admins, and the coupons service for coupon trials; never metering.
    "SetTier": (_tier_req, expect({"admin", "svc-coupons"}), True),
    "ListAccounts": (_accounts_req, expect({"admin"}), False),
    "ResetPeriods": (_reset_req, expect({"admin"}), True),
    "ChargeUsage": (_usage_req, expect({"svc-metering"}), True),
    "ChargeUsageBatch": (_usage_batch_req, expect({"svc-metering"}), True),
    "CreateHolds": (_holds_req, expect({"svc-metering"}), True),
    "GetAccountStates": (_states_req, expect({"admin", "svc-metering"}), False),
    "WatchBalance": (_watch_req, expect({"user_self", "admin"}), False),
    "GetPlatformReport": (_report_req, expect({"admin"}), False),
}


def test_the_matrix_covers_every_rpc() -> None:
    methods = set(pb.DESCRIPTOR.services_by_name["CreditsService"].methods_by_name)
    assert methods == set(MATRIX)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", sorted(MATRIX))
async def test_authorization(credits: Credits, method: str, caller: str) -> None:
    factory, expected, mutates = MATRIX[method]
    target = await credits.funded_user(5 * USD)
    request = await factory(credits, target)
    before = await credits.balance(target)
    token = token_for(credits.keys, caller, target)
    try:
        if method == "WatchBalance":  # server-streaming: the first message (or the refusal) decides
            metadata = (("authorization", f"Bearer {token}"),) if token else ()
            watch = credits.stub.WatchBalance(request, metadata=metadata, timeout=30)
            await watch.read()
            watch.cancel()
        else:
            await credits.call(method, request, token)
        code = OK
    except grpc.aio.AioRpcError as error:
        code = error.code()
    assert code == expected[caller], f"{method} as {caller}: {code.name}, expected {expected[caller].name}"
    if code != OK and mutates:
        after = await credits.balance(target)
        assert (after.balance_nanos, after.held_nanos, after.tier) == (
            before.balance_nanos,
            before.held_nanos,
            before.tier,
        )


async def test_a_token_without_a_known_role_is_refused(credits: Credits) -> None:
    from services.common.auth import mint_token
    from tests.conftest import AUDIENCE, ISSUER

    token = mint_token(
        credits.keys.signing_key,
        "someone",
        "user",
        issuer=ISSUER,
        audience=AUDIENCE,
        extra_claims={"realm_access": {"roles": ["offline_access"]}},
    )
    failure = await credits.fail("GetBalance", pb.GetBalanceRequest(), token)
    assert (failure.code, failure.reason) == (DENIED, "NO_ROLE")


async def test_a_token_for_another_audience_is_refused(credits: Credits) -> None:
    from services.common.auth import mint_token
    from tests.conftest import ISSUER

    token = mint_token(credits.keys.signing_key, "someone", "admin", issuer=ISSUER, audience="other-app")
    failure = await credits.fail("GetBalance", pb.GetBalanceRequest(), token)
    assert (failure.code, failure.reason) == (UNAUTH, "TOKEN_INVALID")


async def test_unauthenticated_reasons_say_what_is_wrong(credits: Credits) -> None:
    missing = await credits.fail("GetBalance", pb.GetBalanceRequest(), None)
    assert missing.reason == "TOKEN_MISSING"
    expired = await credits.fail("GetBalance", pb.GetBalanceRequest(), credits.keys.token("a", "user", ttl=-120))
    assert expired.reason == "TOKEN_EXPIRED"
    forged = await credits.fail("GetBalance", pb.GetBalanceRequest(), credits.keys.forged_token("a", "user"))
    assert forged.reason == "TOKEN_INVALID"


async def test_only_the_coupons_service_grants_coupon_credits_up_to_the_cap(postgres: Postgres, keys: Keys) -> None:
    # Its own database: a coupon grant without a redemption is exactly what the
    # coupons<->ledger cross-check of the shared test database would flag.
    url = await postgres.database("coupon_source_check")
    cap = 5 * USD
    environ = credits_environ(url, keys, CREDITS_COUPON_GRANT_MAX_NANOS=str(cap))
    running = await create_server(CreditsSettings.from_env(environ))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            client = Credits(chan, keys)
            user = await client.funded_user(0)

            def grant(amount: int, source: int = pb.GRANT_SOURCE_COUPON) -> pb.AllocateRequest:
                return pb.AllocateRequest(
                    user_id=user, amount_nanos=amount, reason="coupon", request_id=request_id(), source=source
                )

            coupons = keys.token("svc-coupons", "svc-coupons")
            refusals = {
                "admin, COUPON": await client.fail("Allocate", grant(USD), client.admin_token),
                "metering, COUPON": await client.fail("Allocate", grant(USD), client.service_token),
                "coupons, ADMIN": await client.fail("Allocate", grant(USD, pb.GRANT_SOURCE_ADMIN), coupons),
                "coupons, over the cap": await client.fail("Allocate", grant(cap + 1), coupons),
            }
            assert {k: (f.code, f.reason) for k, f in refusals.items()} == {
                "admin, COUPON": (DENIED, "INVALID_SOURCE"),
                "metering, COUPON": (DENIED, "ROLE_NOT_ALLOWED"),
                "coupons, ADMIN": (DENIED, "INVALID_SOURCE"),
                "coupons, over the cap": (DENIED, "COUPON_GRANT_TOO_LARGE"),
            }
            assert (await client.balance(user)).balance_nanos == 0
            granted = await client.call("Allocate", grant(cap), coupons)
            assert granted.transaction.debit_account == "platform:promotions"
            assert granted.transaction.audit.service == "svc-coupons"
            assert (await client.balance(user)).balance_nanos == cap

            # Tier trials: the coupons identity may set the coupon tiers, never enterprise.
            def tier(name: str) -> pb.SetTierRequest:
                return pb.SetTierRequest(user_id=user, tier=name, request_id=request_id())

            enterprise = await client.fail("SetTier", tier("enterprise"), coupons)
            assert (enterprise.code, enterprise.reason) == (DENIED, "TIER_NOT_ALLOWED_FOR_COUPONS")
            assert (await client.balance(user)).tier == "trial"
            assert (await client.call("SetTier", tier("professional"), coupons)).account.tier == "professional"
    finally:
        await running.stop(1)
