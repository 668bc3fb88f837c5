"""CreditsService servicer: proto ↔ domain, access rules per RPC; no SQL."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from services.common import pagetoken
from services.common.auth import Forbidden, Principal
from services.common.errors import DomainError, invalid
from services.common.grpcserver import MethodPolicy, principal
from services.common.idempotency import ID_PATTERN, ID_RULE
from services.common.rpcstatus import status_of
from services.common.timestamps import field_time, to_timestamp
from services.credits import domain
from services.credits.domain import Actor, ChargeMeta, Source
from services.credits.ledger import HoldRequest, HoldResult, Ledger
from services.credits.watch import BalanceWatchers

_SERVICE = "/creditmeter.credits.v1.CreditsService/"
#: Most holds one CreateHolds call may carry (the contract says so too).
MAX_HOLDS = 1000

#: Who may call each RPC (docs/authorization.md is generated from this). Self-versus-other and
#: per-caller limits are enforced in the methods.
_OWN = {"user": "own account"}
POLICIES: dict[str, MethodPolicy] = {
    _SERVICE + "GetBalance": MethodPolicy.allow(
        "user", "admin", "svc-metering", "svc-coupons", "svc-openrouter", limits=_OWN
    ),
    _SERVICE + "WatchBalance": MethodPolicy.allow("user", "admin", limits=_OWN),
    _SERVICE + "ListTransactions": MethodPolicy.allow("user", "admin", limits=_OWN),
    _SERVICE + "CompareTiers": MethodPolicy.anyone(),
    _SERVICE + "Allocate": MethodPolicy.allow(
        "admin",
        "svc-coupons",
        limits={"admin": "source ADMIN", "svc-coupons": "source COUPON, at most CREDITS_COUPON_GRANT_MAX_NANOS"},
    ),
    _SERVICE + "Deduct": MethodPolicy.allow("admin", "svc-platform"),
    _SERVICE + "Refund": MethodPolicy.allow("admin"),
    _SERVICE + "CreateHold": MethodPolicy.allow("admin", "svc-metering"),
    _SERVICE + "CaptureHold": MethodPolicy.allow("admin", "svc-metering"),
    _SERVICE + "ReleaseHold": MethodPolicy.allow("admin", "svc-metering"),
    _SERVICE + "SetTier": MethodPolicy.allow(
        "admin",
        "svc-coupons",
        limits={"svc-coupons": "coupon trials: tiers in CREDITS_COUPON_TIERS, or undoing its own trial"},
    ),
    _SERVICE + "ListAccounts": MethodPolicy.allow("admin"),
    _SERVICE + "GetPlatformReport": MethodPolicy.allow("admin"),
    _SERVICE + "ResetPeriods": MethodPolicy.allow("admin"),
    _SERVICE + "ChargeUsage": MethodPolicy.allow("svc-metering"),
    _SERVICE + "ChargeUsageBatch": MethodPolicy.allow("svc-metering"),
    _SERVICE + "CreateHolds": MethodPolicy.allow("svc-metering"),
    _SERVICE + "GetAccountStates": MethodPolicy.allow("admin", "svc-metering"),
}

_OUTCOMES = {
    "CHARGED": pb.USAGE_OUTCOME_CHARGED,
    "SHORTFALL": pb.USAGE_OUTCOME_SHORTFALL,
    "REUSED": pb.USAGE_OUTCOME_REUSED,
}

_SOURCES = {
    pb.GRANT_SOURCE_UNSPECIFIED: Source.ADMIN,
    pb.GRANT_SOURCE_ADMIN: Source.ADMIN,
    pb.GRANT_SOURCE_COUPON: Source.COUPON,
}
_SOURCE_TO_PB = {
    "TIER": pb.GRANT_SOURCE_TIER,
    "ADMIN": pb.GRANT_SOURCE_ADMIN,
    "COUPON": pb.GRANT_SOURCE_COUPON,
    "REFUND": pb.GRANT_SOURCE_REFUND,
}
_HOLD_STATUS = {
    "ACTIVE": pb.HOLD_STATUS_ACTIVE,
    "CAPTURED": pb.HOLD_STATUS_CAPTURED,
    "RELEASED": pb.HOLD_STATUS_RELEASED,
    "EXPIRED": pb.HOLD_STATUS_EXPIRED,
}

#: Stored kinds are the short names ("DEDUCTION"); the enum values carry the type prefix.
_KIND_PREFIX = "TRANSACTION_KIND_"


def _actor(who: Principal) -> Actor:
    return Actor(subject=who.subject, role=who.role, service=who.service_identity or "")


def _transaction_pb(tx: domain.Transaction) -> pb.Transaction:
    return pb.Transaction(
        transaction_id=tx.transaction_id,
        user_id=tx.user_id,
        kind=pb.TransactionKind.Value(_KIND_PREFIX + tx.kind),
        amount_nanos=tx.amount_nanos,
        balance_after_nanos=tx.balance_after_nanos,
        debit_account=tx.debit_account,
        credit_account=tx.credit_account,
        request_id=tx.request_id,
        related_transaction_id=tx.related_transaction_id,
        hold_id=tx.hold_id,
        audit=pb.Audit(
            actor_subject=tx.actor_subject,
            actor_role=tx.actor_role,
            reason=tx.reason,
            service=tx.service,
            model=tx.model,
            reference_id=tx.reference_id,
            price_version=tx.price_version,
        ),
        created_at=to_timestamp(tx.created_at),
    )


def _account_pb(account: domain.Account) -> pb.Account:
    return pb.Account(
        user_id=account.user_id,
        tier=account.tier_id,
        balance_nanos=account.balance_nanos,
        available_nanos=account.available_nanos,
        held_nanos=account.held_nanos,
        period_start=to_timestamp(account.period_start),
        period_end=to_timestamp(account.period_end),
        created_at=to_timestamp(account.created_at),
    )


def _hold_pb(hold: domain.Hold) -> pb.Hold:
    return pb.Hold(
        hold_id=hold.hold_id,
        user_id=hold.user_id,
        amount_nanos=hold.amount_nanos,
        captured_nanos=hold.captured_nanos,
        status=_HOLD_STATUS[hold.status],
        expires_at=to_timestamp(hold.expires_at),
        created_at=to_timestamp(hold.created_at),
        capture_transaction_id=hold.capture_transaction_id,
    )


def _hold_response(result: HoldResult) -> pb.CreateHoldResponse:
    return pb.CreateHoldResponse(
        hold_id=result.hold.hold_id, hold=_hold_pb(result.hold), available_after_nanos=result.available_after_nanos
    )


def _hold_request(request: pb.CreateHoldRequest) -> HoldRequest:
    """A CreateHold request (alone or as an item of CreateHolds), validated."""
    return HoldRequest(
        user_id=domain.validate_user_id(request.user_id),
        amount=domain.validate_amount(request.amount_nanos),
        ttl=domain.validate_ttl(request.ttl_seconds),
        request_id=domain.validate_request_id(request.request_id),
        reason=domain.validate_reason(request.reason, required=False),
        reference_id=domain.validate_text(request.reference_id, "reference_id"),
    )


def _uuid(value: str, field: str, reason: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise invalid(reason, f"{field} must be a UUID", field=field) from None


class CreditsServicer(pb_grpc.CreditsServiceServicer):
    """The credits API over a :class:`Ledger`."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        watchers: BalanceWatchers | None = None,
        heartbeat_seconds: float = 30.0,
        coupon_grant_max_nanos: int = 10_000 * 1_000_000_000,
        coupon_tiers: tuple[str, ...] = ("trial", "starter", "professional"),
    ) -> None:
        self._ledger = ledger
        self._watchers = watchers
        self._heartbeat_seconds = heartbeat_seconds
        self._coupon_grant_max = coupon_grant_max_nanos
        self._coupon_tiers = frozenset(coupon_tiers)

    async def _target_user(self, requested: str, who: Principal, *, ensure: bool = True) -> str:
        """The user an RPC acts on: the caller by default, another only for admins and services.

        A user's first authenticated call creates their account on the trial tier (``ensure``;
        a caller that creates it itself, like the balance read, passes False).
        """
        user_id = domain.validate_user_id(requested) if requested else who.subject
        if not who.may_act_for(user_id):
            raise Forbidden("FORBIDDEN", "users may only access their own account")
        if ensure and user_id == who.subject and not who.is_privileged:
            await self._ledger.ensure_account(user_id)
        return user_id

    async def _balance_pb(self, user_id: str, who: Principal) -> pb.GetBalanceResponse:
        account, expiring = await self._ledger.get_balance(user_id, create=user_id == who.subject)
        return pb.GetBalanceResponse(
            user_id=account.user_id,
            tier=account.tier_id,
            balance_nanos=account.balance_nanos,
            available_nanos=account.available_nanos,
            held_nanos=account.held_nanos,
            period_start=to_timestamp(account.period_start),
            period_end=to_timestamp(account.period_end),
            expiring=[
                pb.GrantSummary(
                    grant_id=g.grant_id,
                    source=_SOURCE_TO_PB[g.source],
                    remaining_nanos=g.remaining_nanos,
                    expires_at=to_timestamp(g.expires_at),
                )
                for g in expiring
            ],
        )

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBalanceResponse:
        who = principal()
        # The balance read creates a caller's missing account itself (create=True below).
        user_id = await self._target_user(request.user_id, who, ensure=False)
        return await self._balance_pb(user_id, who)

    async def WatchBalance(self, request: pb.WatchBalanceRequest, context: grpc.aio.ServicerContext) -> None:
        """Writes the balance now and after every notified change (see services.credits.watch)."""
        who = principal()
        user_id = await self._target_user(request.user_id, who)
        if self._watchers is None:
            raise Forbidden("WATCH_UNAVAILABLE", "balance streaming is not enabled on this server")
        with self._watchers.watch(user_id) as changed:
            await self._watchers.ready()
            renewed = -math.inf
            while True:
                # Renewed once per heartbeat, valid for three: a lapse needs three missed renewals.
                if time.monotonic() - renewed >= self._heartbeat_seconds:
                    await self._watchers.mark_watched(user_id, self._heartbeat_seconds * 3)
                    renewed = time.monotonic()
                changed.clear()
                current = await self._balance_pb(user_id, who)
                # A heartbeat resends an unchanged balance so idle proxies keep the stream open.
                await context.write(pb.WatchBalanceResponse(balance=current))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self._heartbeat_seconds)

    async def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTransactionsResponse:
        who = principal()
        user_id = await self._target_user(request.user_id, who)
        size = domain.validate_page_size(request.page_size)
        position = pagetoken.decode("credits.ListTransactions", request.page_token, 1)
        before = pagetoken.position_uuid(position[0]) if position else None
        kind = None
        if request.kind != pb.TRANSACTION_KIND_UNSPECIFIED:
            if request.kind not in pb.TransactionKind.values():
                raise invalid("INVALID_KIND", "unknown transaction kind", field="kind")
            kind = pb.TransactionKind.Name(request.kind).removeprefix(_KIND_PREFIX)
        start = field_time(request, "start_time")
        end = field_time(request, "end_time")
        if start and end and end <= start:
            raise invalid("INVALID_TIME_RANGE", "end_time must be after start_time", field="end_time")
        rows = await self._ledger.list_transactions(
            user_id, before_id=before, kind=kind, start=start, end=end, limit=size + 1
        )
        page = rows[:size]
        token = pagetoken.encode("credits.ListTransactions", page[-1].transaction_id) if len(rows) > size else ""
        return pb.ListTransactionsResponse(transactions=[_transaction_pb(t) for t in page], next_page_token=token)

    async def CompareTiers(
        self, request: pb.CompareTiersRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompareTiersResponse:
        tiers = await self._ledger.tiers()
        return pb.CompareTiersResponse(
            tiers=[
                pb.Tier(
                    tier_id=t.tier_id,
                    display_name=t.display_name,
                    price_cents=t.price_cents,
                    billing_period=t.billing_period,
                    credits_nanos=t.credits_nanos,
                    api_call_limit=t.api_call_limit,
                    api_call_period=t.api_call_period,
                    byok_allowed=t.byok_allowed,
                    markup_percent=t.markup_bps // 100,
                    markup_basis_points=t.markup_bps,
                    byok_markup_basis_points=t.byok_markup_bps,
                    free_model_fee_per_1k_tokens_nanos=t.free_model_fee_per_1k_tokens_nanos,
                    features=list(t.features),
                )
                for t in sorted(tiers.values(), key=lambda t: t.sort_order)
            ]
        )

    async def Allocate(self, request: pb.AllocateRequest, context: grpc.aio.ServicerContext) -> pb.AllocateResponse:
        who = principal()
        user_id = domain.validate_user_id(request.user_id)
        amount = domain.validate_amount(request.amount_nanos)
        reason = domain.validate_reason(request.reason, required=True)
        request_id = domain.validate_request_id(request.request_id)
        reference = domain.validate_text(request.reference_id, "reference_id")
        if request.source not in _SOURCES:
            raise invalid("INVALID_SOURCE", "source must be ADMIN or COUPON", field="source")
        source = _SOURCES[request.source]
        # ADMIN credits only from admins; COUPON credits only from the coupons service, capped.
        if source is Source.COUPON and who.service_identity != "svc-coupons":
            raise domain.forbidden_source(source)
        if source is Source.ADMIN and not who.is_admin:
            raise domain.forbidden_source(source)
        if source is Source.COUPON and amount > self._coupon_grant_max:
            raise Forbidden(
                "COUPON_GRANT_TOO_LARGE",
                f"a coupon grant may be at most {self._coupon_grant_max} nanos",
                metadata={"max_nanos": str(self._coupon_grant_max), "requested_nanos": str(amount)},
            )
        expires = field_time(request, "expires_at")
        tx, grant_id = await self._ledger.allocate(
            user_id,
            amount,
            request_id,
            _actor(who),
            source,
            expires,
            ChargeMeta(reason=reason, reference_id=reference),
        )
        return pb.AllocateResponse(transaction=_transaction_pb(tx), grant_id=grant_id)

    async def Deduct(self, request: pb.DeductRequest, context: grpc.aio.ServicerContext) -> pb.DeductResponse:
        who = principal()
        user_id = domain.validate_user_id(request.user_id)
        amount = domain.validate_amount(request.amount_nanos)
        meta = ChargeMeta(
            reason=domain.validate_reason(request.reason, required=True),
            model=domain.validate_text(request.model, "model", 256),
            reference_id=domain.validate_text(request.reference_id, "reference_id"),
            price_version=domain.validate_text(request.price_version, "price_version"),
        )
        request_id = domain.validate_request_id(request.request_id)
        result = await self._ledger.deduct(user_id, amount, request_id, _actor(who), meta)
        return pb.DeductResponse(
            transaction=_transaction_pb(result.transaction),
            available_after_nanos=result.available_after_nanos,
        )

    async def Refund(self, request: pb.RefundRequest, context: grpc.aio.ServicerContext) -> pb.RefundResponse:
        who = principal()
        user_id = domain.validate_user_id(request.user_id)
        amount = domain.validate_amount(request.amount_nanos)
        reason = domain.validate_reason(request.reason, required=True)
        request_id = domain.validate_request_id(request.request_id)
        if not request.transaction_id:
            raise invalid("MISSING_TRANSACTION_ID", "transaction_id of the charge to refund is required")
        charge_id = _uuid(request.transaction_id, "transaction_id", "INVALID_TRANSACTION_ID")
        tx, left = await self._ledger.refund(user_id, charge_id, amount, request_id, _actor(who), reason)
        return pb.RefundResponse(transaction=_transaction_pb(tx), refundable_remaining_nanos=left)

    async def CreateHold(
        self, request: pb.CreateHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateHoldResponse:
        who = principal()
        return _hold_response(await self._ledger.create_hold(_hold_request(request), _actor(who)))

    async def CreateHolds(
        self, request: pb.CreateHoldsRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateHoldsResponse:
        if not 1 <= len(request.holds) <= MAX_HOLDS:
            raise invalid("TOO_MANY_HOLDS", f"send 1 to {MAX_HOLDS} holds", field="holds")
        items = []
        for index, h in enumerate(request.holds):
            try:
                items.append(_hold_request(h))
            except DomainError as error:
                error.metadata["index"] = str(index)
                raise
        results = await self._ledger.create_holds(items, _actor(principal()))
        return pb.CreateHoldsResponse(
            results=[
                pb.CreateHoldsResult(error=status_of(r, domain.DOMAIN))
                if isinstance(r, DomainError)
                else pb.CreateHoldsResult(hold=_hold_response(r))
                for r in results
            ]
        )

    async def CaptureHold(
        self, request: pb.CaptureHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.CaptureHoldResponse:
        who = principal()
        hold_id = _uuid(request.hold_id, "hold_id", "INVALID_HOLD_ID")
        amount = domain.validate_amount(request.amount_nanos, allow_zero=True)
        request_id = domain.validate_request_id(request.request_id)
        meta = ChargeMeta(
            reason=domain.validate_reason(request.reason, required=False),
            model=domain.validate_text(request.model, "model", 256),
            reference_id=domain.validate_text(request.reference_id, "reference_id"),
            price_version=domain.validate_text(request.price_version, "price_version"),
        )
        result = await self._ledger.settle_hold(hold_id, amount, request_id, _actor(who), meta)
        response = pb.CaptureHoldResponse(
            hold=_hold_pb(result.hold),
            released_nanos=result.hold.amount_nanos - result.hold.captured_nanos,
        )
        if result.transaction is not None:
            response.transaction.CopyFrom(_transaction_pb(result.transaction))
        return response

    async def ReleaseHold(
        self, request: pb.ReleaseHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseHoldResponse:
        who = principal()
        hold_id = _uuid(request.hold_id, "hold_id", "INVALID_HOLD_ID")
        request_id = domain.validate_request_id(request.request_id)
        result = await self._ledger.settle_hold(hold_id, None, request_id, _actor(who), ChargeMeta())
        return pb.ReleaseHoldResponse(hold=_hold_pb(result.hold))

    async def SetTier(self, request: pb.SetTierRequest, context: grpc.aio.ServicerContext) -> pb.SetTierResponse:
        who = principal()
        user_id = domain.validate_user_id(request.user_id)
        if not request.tier:
            raise invalid("UNKNOWN_TIER", "tier is required", field="tier")
        request_id = domain.validate_request_id(request.request_id)
        reason = domain.validate_reason(request.reason, required=False)
        expected = request.expected_change_id
        if expected and not ID_PATTERN.match(expected):
            raise invalid("INVALID_CHANGE_ID", "expected_change_id is not a change id", field="expected_change_id")
        # The coupons identity sets only the coupon tiers — except to undo its own trial: a conditional
        # change back to exactly the tier its own change replaced (checked by the ledger under the lock)
        # gives nothing the user did not have, e.g. an enterprise user's professional trial ending.
        revert_only = who.service_identity == "svc-coupons" and request.tier not in self._coupon_tiers
        if revert_only and not expected:
            raise Forbidden(
                "TIER_NOT_ALLOWED_FOR_COUPONS",
                f"coupon trials may set only the tiers {', '.join(sorted(self._coupon_tiers))}",
                metadata={"tier": request.tier},
            )
        account, previous, change_id = await self._ledger.set_tier(
            user_id, request.tier, request_id, _actor(who), reason, expected, revert_only=revert_only
        )
        return pb.SetTierResponse(account=_account_pb(account), previous_tier=previous, change_id=change_id)

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccountsResponse:
        size = domain.validate_page_size(request.page_size)
        position = pagetoken.decode("credits.ListAccounts", request.page_token, 1)
        after = domain.validate_user_id(position[0]) if position else ""
        if request.tier:
            await self._ledger.tier(request.tier)
        rows = await self._ledger.list_accounts(after, request.tier, size + 1, request.user_id_prefix)
        page = rows[:size]
        token = pagetoken.encode("credits.ListAccounts", page[-1].user_id) if len(rows) > size else ""
        return pb.ListAccountsResponse(accounts=[_account_pb(a) for a in page], next_page_token=token)

    async def GetPlatformReport(
        self, request: pb.GetPlatformReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPlatformReportResponse:
        end = field_time(request, "end_time") or datetime.now(UTC)
        start = field_time(request, "start_time") or end - timedelta(days=30)
        if end <= start or end - start > timedelta(days=400):
            raise invalid(
                "INVALID_TIME_RANGE", "the range must be non-empty and at most 400 days long", field="end_time"
            )
        if request.top_users_count < 0 or request.top_users_count > 100:
            raise invalid("INVALID_PAGE_SIZE", "top_users_count must be from 0 to 100", field="top_users_count")
        report = await self._ledger.platform_report(
            start,
            end,
            monthly=request.interval == pb.REPORT_INTERVAL_MONTH,
            top=request.top_users_count or 10,
        )
        return pb.GetPlatformReportResponse(
            by_date=[
                pb.PlatformDateRow(
                    date=r["bucket"],
                    usage_revenue_nanos=r["usage"],
                    granted_nanos=r["granted"],
                    active_user_count=r["active"],
                    charge_count=r["charges"],
                )
                for r in report["by_date"]
            ],
            by_model=[
                pb.PlatformModelRow(model=r["model"], usage_revenue_nanos=r["usage"], charge_count=r["charges"])
                for r in report["by_model"]
            ],
            by_tier=[
                pb.PlatformTierRow(
                    tier=r["tier_id"],
                    account_count=r["accounts"],
                    usage_revenue_nanos=r["usage"],
                    price_cents=r["price_cents"],
                )
                for r in report["by_tier"]
            ],
            top_users=[
                pb.PlatformUserRow(user_id=r["user_id"], tier=r["tier_id"], usage_revenue_nanos=r["usage"])
                for r in report["top_users"]
            ],
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
        )

    async def ChargeUsage(
        self, request: pb.ChargeUsageRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChargeUsageResponse:
        who = principal()
        user_id = domain.validate_user_id(request.user_id)
        if not 1 <= len(request.charges) <= domain.MAX_USAGE_CHARGES:
            raise invalid("TOO_MANY_CHARGES", f"send 1 to {domain.MAX_USAGE_CHARGES} charges", field="charges")
        charges = [
            domain.UsageCharge(
                request_id=domain.validate_request_id(c.request_id),
                amount_nanos=domain.validate_amount(c.amount_nanos, allow_zero=True),
                model=domain.validate_text(c.model, "model", 256),
                reference_id=domain.validate_text(c.reference_id, "reference_id"),
                price_version=domain.validate_text(c.price_version, "price_version"),
                reason=domain.validate_reason(c.reason, required=False),
            )
            for c in request.charges
        ]
        if len({c.request_id for c in charges}) != len(charges):
            raise invalid("DUPLICATE_REQUEST_ID", "each charge needs its own request_id", field="charges")
        results, balance = await self._ledger.charge_usage(user_id, charges, request.allow_partial, _actor(who))
        return pb.ChargeUsageResponse(
            results=[
                pb.UsageChargeResult(
                    request_id=r.request_id,
                    charged_nanos=r.charged_nanos,
                    shortfall_nanos=r.shortfall_nanos,
                    transaction_id=r.transaction_id,
                    duplicate=r.duplicate,
                )
                for r in results
            ],
            balance_after_nanos=balance,
        )

    async def ChargeUsageBatch(
        self, request: pb.ChargeUsageBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChargeUsageBatchResponse:
        if not 1 <= len(request.items) <= domain.MAX_USAGE_CHARGES:
            raise invalid("TOO_MANY_CHARGES", f"send 1 to {domain.MAX_USAGE_CHARGES} items", field="items")
        items = []
        for index, i in enumerate(request.items):
            try:
                if not ID_PATTERN.match(i.event_id):
                    raise invalid("INVALID_EVENT_ID", f"event_id must be {ID_RULE}", field="event_id")
                items.append(
                    domain.UsageItem(
                        user_id=domain.validate_user_id(i.user_id),
                        event_id=i.event_id,
                        amount_nanos=domain.validate_amount(i.amount_nanos, allow_zero=True),
                        hold_id=_uuid(i.hold_id, "hold_id", "INVALID_HOLD_ID") if i.hold_id else "",
                        service=domain.validate_text(i.service, "service", 32),
                        model=domain.validate_text(i.model, "model", 256),
                        price_version=domain.validate_text(i.price_version, "price_version"),
                    )
                )
            except DomainError as error:
                error.metadata["index"] = str(index)
                raise
        if len({(i.user_id, i.event_id) for i in items}) != len(items):
            raise invalid("DUPLICATE_EVENT_ID", "each (user_id, event_id) may appear once", field="items")
        results = await self._ledger.charge_usage_batch(items, _actor(principal()))
        return pb.ChargeUsageBatchResponse(
            results=[
                pb.UsageItemResult(
                    user_id=r.user_id,
                    event_id=r.event_id,
                    outcome=_OUTCOMES[r.outcome],
                    charged_nanos=r.charged_nanos,
                    shortfall_nanos=r.shortfall_nanos,
                    transaction_id=r.transaction_id,
                    duplicate=r.duplicate,
                )
                for r in results
            ]
        )

    async def GetAccountStates(
        self, request: pb.GetAccountStatesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAccountStatesResponse:
        if not 1 <= len(request.user_ids) <= domain.MAX_USAGE_CHARGES:
            raise invalid("TOO_MANY_USERS", f"send 1 to {domain.MAX_USAGE_CHARGES} user ids", field="user_ids")
        user_ids = [domain.validate_user_id(u) for u in request.user_ids]
        found = await self._ledger.account_states(sorted(set(user_ids)))
        out = []
        for user_id in user_ids:
            row = found.get(user_id)
            if row is None:
                out.append(pb.AccountState(user_id=user_id, exists=False, tier="trial"))
            else:
                out.append(
                    pb.AccountState(
                        user_id=user_id,
                        exists=True,
                        tier=row["tier_id"],
                        period_start=to_timestamp(row["period_start"]),
                        period_end=to_timestamp(row["period_end"]),
                    )
                )
        return pb.GetAccountStatesResponse(accounts=out)

    async def ResetPeriods(
        self, request: pb.ResetPeriodsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResetPeriodsResponse:
        user_id = domain.validate_user_id(request.user_id) if request.user_id else ""
        request_id = domain.validate_request_id(request.request_id)
        if user_id and not await self._ledger.account_exists(user_id):
            raise domain.account_not_found(user_id)
        return pb.ResetPeriodsResponse(reset_count=await self._ledger.reset_periods(user_id, request_id))
