"""A thin client over the real gRPC channel: calls with a token, errors with their ErrorInfo."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from services.common.rpcstatus import error_info_from
from services.credits import verify
from tests.conftest import Keys, new_user, request_id

USD = 1_000_000_000


@dataclass
class Failure:
    code: grpc.StatusCode
    reason: str
    message: str


class Credits:
    """Calls CreditsService as a given identity."""

    def __init__(self, channel: grpc.aio.Channel, keys: Keys) -> None:
        self.stub = pb_grpc.CreditsServiceStub(channel)
        self.keys = keys
        self.admin_token = keys.token("admin-1", "admin")
        #: The metering service's identity: holds, usage charges, balances.
        self.service_token = keys.token("svc-metering", "svc-metering")
        #: The AI platform's identity: direct charges (Deduct).
        self.platform_token = keys.token("svc-platform", "svc-platform")
        #: The coupons service's identity: COUPON grants, tier trials.
        self.coupons_token = keys.token("svc-coupons", "svc-coupons")

    async def call(self, method: str, request: Any, token: str | None) -> Any:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=30)

    async def fail(self, method: str, request: Any, token: str | None) -> Failure:
        try:
            await self.call(method, request, token)
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            return Failure(error.code(), info.reason if info else "", error.details() or "")
        raise AssertionError(f"{method} succeeded but was expected to fail")

    async def as_admin(self, method: str, request: Any) -> Any:
        return await self.call(method, request, self.admin_token)

    async def as_service(self, method: str, request: Any) -> Any:
        """Calls as the service identity whose work the method is (see docs/authorization.md)."""
        token = {"Deduct": self.platform_token, "Allocate": self.coupons_token}.get(method, self.service_token)
        return await self.call(method, request, token)

    async def balance(self, user: str) -> pb.GetBalanceResponse:
        return await self.as_admin("GetBalance", pb.GetBalanceRequest(user_id=user))

    async def funded_user(self, total_nanos: int, prefix: str = "u") -> str:
        """A new account whose balance is exactly ``total_nanos`` (the trial allocation included)."""
        user = new_user(prefix)
        opened = await self.call("GetBalance", pb.GetBalanceRequest(), self.keys.token(user, "user"))
        extra = total_nanos - opened.balance_nanos
        if extra > 0:
            await self.allocate(user, extra)
        elif extra < 0:
            await self.deduct(user, -extra)
        assert (await self.balance(user)).balance_nanos == total_nanos
        return user

    async def allocate(self, user: str, amount: int, **kw: Any) -> pb.AllocateResponse:
        kw.setdefault("reason", "test grant")
        kw.setdefault("request_id", request_id())
        return await self.as_admin("Allocate", pb.AllocateRequest(user_id=user, amount_nanos=amount, **kw))

    async def deduct(self, user: str, amount: int, **kw: Any) -> pb.DeductResponse:
        kw.setdefault("reason", "test charge")
        kw.setdefault("request_id", request_id())
        return await self.as_service("Deduct", pb.DeductRequest(user_id=user, amount_nanos=amount, **kw))

    async def hold(self, user: str, amount: int, **kw: Any) -> pb.CreateHoldResponse:
        kw.setdefault("request_id", request_id())
        return await self.as_service("CreateHold", pb.CreateHoldRequest(user_id=user, amount_nanos=amount, **kw))


@pytest.fixture(scope="session")
def credits(channel: grpc.aio.Channel, keys: Keys) -> Credits:
    return Credits(channel, keys)


async def assert_ledger_ok(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        results = await verify.verify(conn)
    failures = [r.line() for r in results if not r.ok]
    assert not failures, "\n".join(failures)


async def time_travel(db: asyncpg.Pool, user: str, days: int = 0, hours: int = 0) -> None:
    """Moves an account's timeline into the past, as if that much time had gone by."""
    shift = timedelta(days=days, hours=hours)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE accounts SET period_anchor = period_anchor - $2::interval,"
            " period_start = period_start - $2::interval,"
            " period_end = period_end - $2::interval, next_expiry_at = next_expiry_at - $2::interval,"
            " created_at = created_at - $2::interval WHERE user_id = $1",
            user,
            shift,
        )
        await conn.execute(
            "UPDATE grants SET expires_at = expires_at - $2::interval, period_start = period_start - $2::interval"
            " WHERE user_id = $1",
            user,
            shift,
        )
        await conn.execute(
            "UPDATE holds SET expires_at = expires_at - $2::interval WHERE user_id = $1 AND status = 'ACTIVE'",
            user,
            shift,
        )


class CouponsClient:
    """Calls CouponsService as a given identity."""

    def __init__(self, channel: grpc.aio.Channel, keys: Keys) -> None:
        from creditmeter.coupons.v1 import coupons_pb2_grpc

        self.stub = coupons_pb2_grpc.CouponsServiceStub(channel)
        self.keys = keys
        self.admin_token = keys.token("coupon-admin", "admin")

    async def call(self, method: str, request: Any, token: str | None) -> Any:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=30)

    async def fail(self, method: str, request: Any, token: str | None) -> Failure:
        try:
            await self.call(method, request, token)
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            return Failure(error.code(), info.reason if info else "", error.details() or "")
        raise AssertionError(f"{method} succeeded but was expected to fail")

    async def create(self, **fields: Any) -> Any:
        from creditmeter.coupons.v1 import coupons_pb2 as cpb

        fields.setdefault("code", f"C{uuid.uuid4().hex[:10].upper()}")
        fields.setdefault("kind", cpb.COUPON_KIND_CREDIT_GRANT)
        if fields["kind"] == cpb.COUPON_KIND_CREDIT_GRANT:
            fields.setdefault("credit_amount_nanos", 5 * USD)
        fields.setdefault("request_id", request_id())
        response = await self.call("CreateCoupon", cpb.CreateCouponRequest(**fields), self.admin_token)
        return response.coupon

    async def redeem(self, user: str, code: str, rid: str | None = None) -> Any:
        from creditmeter.coupons.v1 import coupons_pb2 as cpb

        return await self.call(
            "RedeemCoupon",
            cpb.RedeemCouponRequest(code=code, request_id=rid or request_id()),
            self.keys.token(user, "user"),
        )

    async def validate(self, user: str, code: str) -> Any:
        from creditmeter.coupons.v1 import coupons_pb2 as cpb

        return await self.call("ValidateCoupon", cpb.ValidateCouponRequest(code=code), self.keys.token(user, "user"))


@pytest.fixture(scope="session")
def coupons(coupons_channel: grpc.aio.Channel, keys: Keys) -> CouponsClient:
    return CouponsClient(coupons_channel, keys)


async def assert_metering_ok(credits_pool: asyncpg.Pool, metering_pool: asyncpg.Pool) -> None:
    """Every ledger invariant, metering's own, and the events<->ledger cross-check."""
    from services.metering import verify as metering_verify

    async with credits_pool.acquire() as credits_conn, metering_pool.acquire() as metering_conn:
        results = await verify.verify(credits_conn)
        results += await metering_verify.verify(metering_conn)
        results += await metering_verify.cross_check_credits(metering_conn, credits_conn)
    failures = [r.line() for r in results if not r.ok]
    assert not failures, "\n".join(failures)


async def assert_everything_ok(credits_pool: asyncpg.Pool, coupons_pool: asyncpg.Pool) -> None:
    """Every invariant of both contexts, including the coupons↔ledger cross-check."""
    from services.coupons import verify as coupons_verify

    async with credits_pool.acquire() as credits_conn, coupons_pool.acquire() as coupons_conn:
        results = await verify.verify(credits_conn)
        results += await coupons_verify.verify(coupons_conn)
        results += await coupons_verify.cross_check_credits(coupons_conn, credits_conn)
    failures = [r.line() for r in results if not r.ok]
    assert not failures, "\n".join(failures)


class OpenRouterCaller:
    """Calls OpenRouterService as a given identity."""

    def __init__(self, channel: grpc.aio.Channel, keys: Keys) -> None:
        from creditmeter.openrouter.v1 import openrouter_pb2_grpc

        self.stub = openrouter_pb2_grpc.OpenRouterServiceStub(channel)
        self.keys = keys

    async def call(self, method: str, request: Any, token: str | None) -> Any:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=30)

    async def reason(self, method: str, request: Any, token: str | None) -> tuple[grpc.StatusCode, str]:
        try:
            await self.call(method, request, token)
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            return error.code(), info.reason if info else ""
        raise AssertionError(f"{method} succeeded")

    def user(self, user_id: str) -> str:
        return self.keys.token(user_id, "user")

    @property
    def admin(self) -> str:
        return self.keys.token("or-admin", "admin")

    @property
    def service(self) -> str:
        return self.keys.token("svc-metering", "svc-metering")

    @property
    def key_reader(self) -> str:
        """The openrouter service's own identity: the only one that may read decrypted keys."""
        return self.keys.token("svc-openrouter", "svc-openrouter")


@pytest.fixture(scope="session")
async def openrouter(openrouter_channel: grpc.aio.Channel, keys: Keys) -> AsyncIterator[OpenRouterCaller]:
    client = OpenRouterCaller(openrouter_channel, keys)
    from creditmeter.openrouter.v1 import openrouter_pb2

    await client.call("SyncModels", openrouter_pb2.SyncModelsRequest(request_id=request_id()), client.admin)
    yield client


class MeteringCaller:
    """Calls MeteringService as a given identity."""

    def __init__(self, channel: grpc.aio.Channel, keys: Keys) -> None:
        from creditmeter.metering.v1 import metering_pb2_grpc

        self.stub = metering_pb2_grpc.MeteringServiceStub(channel)
        self.keys = keys
        self.service = keys.token("svc-platform", "svc-platform")

    async def call(self, method: str, request: Any, token: str | None = None) -> Any:
        token = self.service if token is None else token
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        return await getattr(self.stub, method)(request, metadata=metadata, timeout=120)

    async def reason(self, method: str, request: Any, token: str | None = None) -> tuple[grpc.StatusCode, str]:
        try:
            await self.call(method, request, token)
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            return error.code(), info.reason if info else ""
        raise AssertionError(f"{method} succeeded")


@pytest.fixture(scope="session")
async def metering(metering_channel: grpc.aio.Channel, keys: Keys, openrouter: OpenRouterCaller) -> MeteringCaller:
    return MeteringCaller(metering_channel, keys)
