"""WatchBalance: the balance now, then again after every change made elsewhere; same access rules as GetBalance."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as pb

from services.common.rpcstatus import error_info_from
from tests.conftest import new_user
from tests.integration.conftest import USD, Credits


async def test_a_watcher_sees_charges_and_grants_made_by_others(credits: Credits) -> None:
    user = await credits.funded_user(5 * USD, prefix="watch")
    token = credits.keys.token(user, "user")
    stream = credits.stub.WatchBalance(
        pb.WatchBalanceRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=30
    )
    try:
        first = await asyncio.wait_for(stream.read(), 10)
        assert first.balance.balance_nanos == 5 * USD and first.balance.user_id == user
        await credits.deduct(user, USD // 4)
        second = await asyncio.wait_for(stream.read(), 10)
        assert second.balance.balance_nanos == 5 * USD - USD // 4
        await credits.hold(user, USD)
        third = await asyncio.wait_for(stream.read(), 10)
        assert (third.balance.held_nanos, third.balance.available_nanos) == (USD, 5 * USD - USD // 4 - USD)
    finally:
        stream.cancel()


async def test_a_watcher_is_not_woken_by_other_users(credits: Credits) -> None:
    user = await credits.funded_user(2 * USD, prefix="watch")
    other = await credits.funded_user(2 * USD, prefix="watch")
    stream = credits.stub.WatchBalance(
        pb.WatchBalanceRequest(user_id=user),
        metadata=(("authorization", f"Bearer {credits.admin_token}"),),
        timeout=30,
    )
    try:
        await asyncio.wait_for(stream.read(), 10)
        await credits.deduct(other, USD)
        await credits.deduct(user, USD // 2)
        # The next message is the user's own change, not a wake-up for the other account.
        nxt = await asyncio.wait_for(stream.read(), 10)
        assert nxt.balance.balance_nanos == 2 * USD - USD // 2
    finally:
        stream.cancel()


async def test_users_cannot_watch_someone_else_and_anonymous_callers_are_refused(credits: Credits) -> None:
    owner = new_user("watch")
    intruder = credits.keys.token(new_user("watch"), "user")
    for metadata, code, reason in (
        ((("authorization", f"Bearer {intruder}"),), grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN"),
        ((), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
    ):
        stream = credits.stub.WatchBalance(pb.WatchBalanceRequest(user_id=owner), metadata=metadata, timeout=10)
        try:
            await stream.read()
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            assert error.code() == code
            assert info is not None and info.reason == reason
        else:
            raise AssertionError("the stream was opened for a caller who may not watch")


async def test_admins_search_accounts_by_prefix_and_see_platform_revenue(credits: Credits) -> None:
    spender = await credits.funded_user(5 * USD, prefix="platrep")
    await credits.deduct(spender, 2 * USD, model="openai/gpt-test")
    charge = (await credits.deduct(spender, USD, model="openai/gpt-test")).transaction
    await credits.as_admin(
        "Refund",
        pb.RefundRequest(
            user_id=spender,
            transaction_id=charge.transaction_id,
            amount_nanos=USD // 2,
            reason="r",
            request_id=new_user("r"),
        ),
    )
    found = await credits.as_admin("ListAccounts", pb.ListAccountsRequest(user_id_prefix=spender[:-2], page_size=500))
    assert spender in [a.user_id for a in found.accounts]
    assert all(a.user_id.startswith(spender[:-2]) for a in found.accounts)
    none = await credits.as_admin("ListAccounts", pb.ListAccountsRequest(user_id_prefix="%"))
    assert list(none.accounts) == []  # % is a character, not a wildcard

    report = await credits.as_admin("GetPlatformReport", pb.GetPlatformReportRequest(top_users_count=100))
    mine = [u for u in report.top_users if u.user_id == spender]
    assert mine and mine[0].usage_revenue_nanos == 3 * USD - USD // 2
    model = next(m for m in report.by_model if m.model == "openai/gpt-test")
    assert model.usage_revenue_nanos >= 3 * USD - USD // 2 and model.charge_count >= 2
    assert sum(d.usage_revenue_nanos for d in report.by_date) == sum(m.usage_revenue_nanos for m in report.by_model)
    assert [t.tier for t in report.by_tier] == ["trial", "starter", "professional", "enterprise"]

    bad = await credits.fail(
        "GetPlatformReport",
        pb.GetPlatformReportRequest(top_users_count=101),
        credits.admin_token,
    )
    assert (bad.code, bad.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE")


async def test_only_watched_accounts_notify(credits: Credits, db: asyncpg.Pool) -> None:
    """NOTIFY serialises commits, so accounts nobody watches must not send any."""
    quiet = await credits.funded_user(2 * USD, prefix="watch")
    watched = await credits.funded_user(2 * USD, prefix="watch")
    heard: list[str] = []

    def hear(connection: object, pid: int, channel: str, payload: str) -> None:
        heard.append(payload)

    async with db.acquire() as listener:
        await listener.add_listener("balance_credits", hear)
        token = credits.keys.token(watched, "user")
        stream = credits.stub.WatchBalance(
            pb.WatchBalanceRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=30
        )
        try:
            await asyncio.wait_for(stream.read(), 10)
            await credits.deduct(quiet, USD // 10)
            await credits.deduct(watched, USD // 10)
            await asyncio.wait_for(stream.read(), 10)
            await asyncio.sleep(0.2)
            assert watched in heard and quiet not in heard
            until = await db.fetchval("SELECT expires_at - now() FROM balance_watches WHERE user_id = $1", watched)
            assert until.total_seconds() > 30
        finally:
            stream.cancel()
            await listener.remove_listener("balance_credits", hear)
