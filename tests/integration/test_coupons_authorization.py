"""CouponsService: every RPC times every kind of caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from creditmeter.coupons.v1 import coupons_pb2 as cpb

from tests.conftest import request_id
from tests.integration.authz import CALLERS, OK, expect, token_for
from tests.integration.conftest import CouponsClient, Credits

Factory = Callable[[CouponsClient, str], Awaitable[Any]]


async def _create(c: CouponsClient, user: str) -> Any:
    return cpb.CreateCouponRequest(
        code=f"AZ{request_id()[:10].upper()}",
        kind=cpb.COUPON_KIND_CREDIT_GRANT,
        credit_amount_nanos=1,
        request_id=request_id(),
    )


async def _validate(c: CouponsClient, user: str) -> Any:
    return cpb.ValidateCouponRequest(code=(await c.create()).code)


async def _redeem(c: CouponsClient, user: str) -> Any:
    return cpb.RedeemCouponRequest(code=(await c.create()).code, request_id=request_id())


async def _list(c: CouponsClient, user: str) -> Any:
    return cpb.ListCouponsRequest(page_size=1)


async def _get(c: CouponsClient, user: str) -> Any:
    return cpb.GetCouponRequest(code=(await c.create()).code)


async def _disable(c: CouponsClient, user: str) -> Any:
    return cpb.DisableCouponRequest(code=(await c.create()).code, request_id=request_id())


async def _redemptions(c: CouponsClient, user: str) -> Any:
    return cpb.ListRedemptionsRequest(user_id=user)


MATRIX: dict[str, tuple[Factory, dict[str, grpc.StatusCode]]] = {
    "CreateCoupon": (_create, expect({"admin"})),
    "ValidateCoupon": (_validate, expect({"user_self", "user_other"})),
    "RedeemCoupon": (_redeem, expect({"user_self", "user_other"})),
    "ListCoupons": (_list, expect({"admin"})),
    "GetCoupon": (_get, expect({"admin"})),
    "DisableCoupon": (_disable, expect({"admin"})),
    # A user may list their own redemptions, not another's.
    "ListRedemptions": (_redemptions, expect({"user_self", "admin"})),
}


def test_the_matrix_covers_every_rpc() -> None:
    assert set(cpb.DESCRIPTOR.services_by_name["CouponsService"].methods_by_name) == set(MATRIX)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", sorted(MATRIX))
async def test_authorization(coupons: CouponsClient, credits: Credits, method: str, caller: str) -> None:
    factory, expected = MATRIX[method]
    target = await credits.funded_user(0)
    request = await factory(coupons, target)
    try:
        await coupons.call(method, request, token_for(coupons.keys, caller, target))
        code = OK
    except grpc.aio.AioRpcError as error:
        code = error.code()
    assert code == expected[caller], f"{method} as {caller}: {code.name}, expected {expected[caller].name}"
    if method in ("RedeemCoupon", "DisableCoupon", "CreateCoupon") and code != OK:
        code_name = getattr(request, "code", "")
        if code_name and method != "CreateCoupon":
            got = await coupons.call("GetCoupon", cpb.GetCouponRequest(code=code_name), coupons.admin_token)
            assert got.coupon.redemption_count == 0 and not got.coupon.disabled
