"""CouponsService servicer: proto ↔ domain and access rules; no SQL."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import grpc
from creditmeter.coupons.v1 import coupons_pb2 as pb
from creditmeter.coupons.v1 import coupons_pb2_grpc as pb_grpc

from services.common.auth import Forbidden
from services.common.errors import invalid
from services.common.grpcserver import MethodPolicy, principal
from services.common.idempotency import fingerprint
from services.common.timestamps import field_time, to_timestamp
from services.coupons import domain
from services.coupons.domain import Coupon, Kind, Redemption
from services.coupons.workflow import Coupons, page_token, parse_page_token, parse_redemption_token, redemption_token

_SERVICE = "/creditmeter.coupons.v1.CouponsService/"

POLICIES: dict[str, MethodPolicy] = {
    _SERVICE + "CreateCoupon": MethodPolicy.allow("admin"),
    _SERVICE + "ValidateCoupon": MethodPolicy.allow("user"),
    _SERVICE + "RedeemCoupon": MethodPolicy.allow("user"),
    _SERVICE + "ListCoupons": MethodPolicy.allow("admin"),
    _SERVICE + "GetCoupon": MethodPolicy.allow("admin"),
    _SERVICE + "DisableCoupon": MethodPolicy.allow("admin"),
    _SERVICE + "ListRedemptions": MethodPolicy.allow("user", "admin", limits={"user": "own redemptions"}),
}

_KINDS = {pb.COUPON_KIND_CREDIT_GRANT: Kind.CREDIT_GRANT, pb.COUPON_KIND_TIER_TRIAL: Kind.TIER_TRIAL}
_KIND_PB = {Kind.CREDIT_GRANT: pb.COUPON_KIND_CREDIT_GRANT, Kind.TIER_TRIAL: pb.COUPON_KIND_TIER_TRIAL}
_STATUS_PB = {
    domain.Status.PENDING: pb.REDEMPTION_STATUS_PENDING,
    domain.Status.COMPLETED: pb.REDEMPTION_STATUS_COMPLETED,
    domain.Status.FAILED: pb.REDEMPTION_STATUS_FAILED,
}


#: The gateway sets this header to the client address it determined (the connection's peer, or the
#: x-forwarded-for entry its trusted hops name), overwriting whatever the client sent.
CLIENT_ADDRESS_HEADER = "x-creditmeter-client-address"


def client_address(context: grpc.aio.ServicerContext) -> str:
    """The caller's client address as the gateway reports it, for the per-address attempt limit.

    Trust model: only the gateway (and the other services) can reach this service (NetworkPolicy), and the
    gateway overwrites the header on every request, so its value is the gateway's view of the client. Calls
    that do not come through the gateway carry no header and are limited per user only. IPv6 addresses
    count per /64 (one subscriber's usual allocation), so rotating addresses within it does not help.
    """
    for key, value in context.invocation_metadata() or ():
        if key == CLIENT_ADDRESS_HEADER and isinstance(value, str):
            try:
                address = ipaddress.ip_address(value.strip())
            except ValueError:
                return ""
            if isinstance(address, ipaddress.IPv6Address):
                if address.ipv4_mapped is not None:
                    return str(address.ipv4_mapped)
                return str(ipaddress.ip_network(f"{address}/64", strict=False))
            return str(address)
    return ""


def _coupon_pb(coupon: Coupon) -> pb.Coupon:
    return pb.Coupon(
        code=coupon.code,
        description=coupon.description,
        kind=_KIND_PB[coupon.kind],
        credit_amount_nanos=coupon.credit_amount_nanos,
        credit_expiry_days=coupon.credit_expiry_days,
        trial_tier=coupon.trial_tier,
        trial_days=coupon.trial_days,
        valid_from=to_timestamp(coupon.valid_from),
        expires_at=to_timestamp(coupon.expires_at),
        max_redemptions=coupon.max_redemptions,
        per_user_limit=coupon.per_user_limit,
        eligible_tiers=list(coupon.eligible_tiers),
        first_time_only=coupon.first_time_only,
        disabled=coupon.disabled,
        redemption_count=coupon.redemption_count,
        created_at=to_timestamp(coupon.created_at),
        created_by=coupon.created_by,
        stacks_on_trial=coupon.stacks_on_trial,
    )


def _grant_of_coupon(coupon: Coupon) -> pb.Grant:
    return pb.Grant(
        kind=_KIND_PB[coupon.kind],
        credits_nanos=coupon.credit_amount_nanos,
        trial_tier=coupon.trial_tier,
        trial_days=coupon.trial_days,
    )


def _redemption_pb(r: Redemption) -> pb.Redemption:
    return pb.Redemption(
        redemption_id=r.redemption_id,
        code=r.code,
        user_id=r.user_id,
        status=_STATUS_PB[r.status],
        grant=pb.Grant(
            kind=_KIND_PB[r.kind],
            credits_nanos=r.credits_nanos,
            credits_expire_at=to_timestamp(r.credits_expire_at),
            trial_tier=r.trial_tier,
            trial_days=r.trial_days,
        ),
        transaction_id=r.transaction_id,
        balance_after_nanos=r.balance_after_nanos,
        trial_ends_at=to_timestamp(r.trial_ends_at),
        previous_tier=r.previous_tier,
        created_at=to_timestamp(r.created_at),
        completed_at=to_timestamp(r.completed_at),
    )


class CouponsServicer(pb_grpc.CouponsServiceServicer):
    """The coupons API over :class:`Coupons`."""

    def __init__(self, coupons: Coupons) -> None:
        self._coupons = coupons

    async def CreateCoupon(
        self, request: pb.CreateCouponRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCouponResponse:
        who = principal()
        request_id = domain.validate_request_id(request.request_id)
        spec = domain.build_spec(
            code=request.code,
            description=request.description,
            kind=_KINDS.get(request.kind),
            credit_amount_nanos=request.credit_amount_nanos,
            credit_expiry_days=request.credit_expiry_days,
            trial_tier=request.trial_tier,
            trial_days=request.trial_days,
            valid_from=field_time(request, "valid_from"),
            expires_at=field_time(request, "expires_at"),
            max_redemptions=request.max_redemptions,
            per_user_limit=request.per_user_limit,
            eligible_tiers=list(request.eligible_tiers),
            first_time_only=request.first_time_only,
            known_tiers=await self._coupons.known_tiers(),
            now=datetime.now(UTC),
            stacks_on_trial=request.stacks_on_trial,
        )
        return pb.CreateCouponResponse(coupon=_coupon_pb(await self._coupons.create(spec, who.subject, request_id)))

    async def ValidateCoupon(
        self, request: pb.ValidateCouponRequest, context: grpc.aio.ServicerContext
    ) -> pb.ValidateCouponResponse:
        who = principal()
        code, reason, coupon = await self._coupons.validate(who.subject, request.code, client_address(context))
        response = pb.ValidateCouponResponse(valid=not reason, reason=reason, code=code)
        if coupon is not None:
            response.grant.CopyFrom(_grant_of_coupon(coupon))
            response.description = coupon.description
        return response

    async def RedeemCoupon(
        self, request: pb.RedeemCouponRequest, context: grpc.aio.ServicerContext
    ) -> pb.RedeemCouponResponse:
        who = principal()
        request_id = domain.validate_request_id(request.request_id)
        redemption = await self._coupons.redeem(who.subject, request.code, request_id, client_address(context))
        return pb.RedeemCouponResponse(
            redemption_id=redemption.redemption_id,
            credits_granted_nanos=redemption.credits_nanos,
            balance_after_nanos=redemption.balance_after_nanos,
            trial_tier=redemption.trial_tier,
            trial_ends_at=to_timestamp(redemption.trial_ends_at),
            redemption=_redemption_pb(redemption),
        )

    async def ListCoupons(
        self, request: pb.ListCouponsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCouponsResponse:
        size = domain.validate_page_size(request.page_size)
        rows = await self._coupons.list_coupons(
            parse_page_token(request.page_token), request.include_disabled, size + 1
        )
        page = rows[:size]
        return pb.ListCouponsResponse(
            coupons=[_coupon_pb(c) for c in page], next_page_token=page_token(page[-1]) if len(rows) > size else ""
        )

    async def GetCoupon(self, request: pb.GetCouponRequest, context: grpc.aio.ServicerContext) -> pb.GetCouponResponse:
        return pb.GetCouponResponse(coupon=_coupon_pb(await self._coupons.get(request.code)))

    async def DisableCoupon(
        self, request: pb.DisableCouponRequest, context: grpc.aio.ServicerContext
    ) -> pb.DisableCouponResponse:
        if len(request.reason) > domain.MAX_DESCRIPTION:
            raise invalid("INVALID_REASON", f"reason must be at most {domain.MAX_DESCRIPTION} characters")
        who = principal().subject

        async def run() -> pb.DisableCouponResponse:
            coupon = await self._coupons.disable(request.code, who, request.reason)
            return pb.DisableCouponResponse(coupon=_coupon_pb(coupon))

        return await self._coupons.responses.once(
            caller=who,
            request_id=request.request_id,
            fingerprint=fingerprint("DisableCoupon", code=domain.normalize_code(request.code), reason=request.reason),
            response_type=pb.DisableCouponResponse,
            run=run,
        )

    async def ListRedemptions(
        self, request: pb.ListRedemptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRedemptionsResponse:
        who = principal()
        user_id = domain.validate_user_id(request.user_id) if request.user_id else ""
        if not who.is_admin:
            if user_id and user_id != who.subject:
                raise Forbidden("FORBIDDEN", "users may only list their own redemptions")
            user_id = who.subject
        code = domain.normalize_code(request.code) if request.code else ""
        size = domain.validate_page_size(request.page_size)
        rows = await self._coupons.list_redemptions(
            code=code, user_id=user_id, before=parse_redemption_token(request.page_token), limit=size + 1
        )
        page = rows[:size]
        return pb.ListRedemptionsResponse(
            redemptions=[_redemption_pb(r) for r in page],
            next_page_token=redemption_token(page[-1]) if len(rows) > size else "",
        )
