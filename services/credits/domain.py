"""Credits domain: amounts, tiers, billing periods, expiry planning, idempotency fingerprints.

Pure Python: no gRPC, no database. Money is int nano-USD everywhere.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.common.errors import (
    Code,
    DomainError,
    already_exists,
    invalid,
    not_found,
    precondition,
)
from services.common.idempotency import ID_PATTERN
from services.common.idempotency import fingerprint as fingerprint
from services.common.idempotency import validate_request_id as validate_request_id

DOMAIN = "credits.creditmeter.dev"
NANOS_PER_USD = 1_000_000_000
#: The largest amount one request may move: $100,000,000.
MAX_AMOUNT_NANOS = 100_000_000 * NANOS_PER_USD
MAX_HOLD_TTL_SECONDS = 86_400
DEFAULT_HOLD_TTL_SECONDS = 900
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_ID_LENGTH = 128
MAX_REASON_LENGTH = 500


class Kind(StrEnum):
    """Transaction kinds, as stored."""

    TIER_ALLOCATION = "TIER_ALLOCATION"
    ALLOCATION = "ALLOCATION"
    DEDUCTION = "DEDUCTION"
    HOLD_CAPTURE = "HOLD_CAPTURE"
    REFUND = "REFUND"
    EXPIRY = "EXPIRY"


#: Charges: the kinds a refund may refer to.
CHARGE_KINDS = frozenset({Kind.DEDUCTION.value, Kind.HOLD_CAPTURE.value})


class Source(StrEnum):
    """Grant sources, as stored."""

    TIER = "TIER"
    ADMIN = "ADMIN"
    COUPON = "COUPON"
    REFUND = "REFUND"


#: The platform account each kind of movement uses on its other side.
PLATFORM_GRANTS = "platform:grants"
PLATFORM_PROMOTIONS = "platform:promotions"
PLATFORM_REVENUE = "platform:revenue"
PLATFORM_EXPIRED = "platform:expired"


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def grant_source_account(source: Source) -> str:
    """Where granted credits come from: promotions for coupons, grants otherwise."""
    return PLATFORM_PROMOTIONS if source is Source.COUPON else PLATFORM_GRANTS


# --- Errors -----------------------------------------------------------------


def insufficient(available: int, requested: int) -> DomainError:
    return precondition(
        "INSUFFICIENT_CREDITS",
        f"available balance {available} nanos does not cover {requested} nanos",
        available_nanos=str(available),
        requested_nanos=str(requested),
    )


def request_id_reused(request_id: str) -> DomainError:
    return already_exists(
        "REQUEST_ID_REUSED",
        "this request_id was already used for a different request",
        request_id=request_id,
    )


def tier_changed_since(user_id: str, expected_change_id: str) -> DomainError:
    return precondition(
        "TIER_CHANGED_SINCE",
        "the account's tier was changed after the expected change; nothing was changed",
        user_id=user_id,
        expected_change_id=expected_change_id,
    )


def account_not_found(user_id: str) -> DomainError:
    return not_found("ACCOUNT_NOT_FOUND", "no account exists for this user", user_id=user_id)


# --- Validation ---------------------------------------------------------------


def validate_user_id(user_id: str, field: str = "user_id") -> str:
    if not user_id:
        raise invalid("INVALID_USER_ID", f"{field} is required", field=field)
    if not ID_PATTERN.match(user_id):
        raise invalid(
            "INVALID_USER_ID",
            f"{field} must be 1-128 characters of letters, digits and ._:@|+=/-",
            field=field,
        )
    return user_id


def validate_amount(amount: int, *, allow_zero: bool = False, field: str = "amount_nanos") -> int:
    low = 0 if allow_zero else 1
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < low or amount > MAX_AMOUNT_NANOS:
        raise invalid(
            "INVALID_AMOUNT",
            f"{field} must be an integer number of nano-USD from {low} to {MAX_AMOUNT_NANOS}",
            field=field,
        )
    return amount


def validate_reason(reason: str, *, required: bool) -> str:
    if required and not reason.strip():
        raise invalid("MISSING_REASON", "reason is required", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise invalid(
            "INVALID_REASON",
            f"reason must be at most {MAX_REASON_LENGTH} characters",
            field="reason",
        )
    return reason


def validate_text(value: str, field: str, limit: int = MAX_ID_LENGTH) -> str:
    if len(value) > limit:
        raise invalid("INVALID_ARGUMENT", f"{field} must be at most {limit} characters", field=field)
    return value


def validate_ttl(ttl_seconds: int) -> int:
    if ttl_seconds == 0:
        return DEFAULT_HOLD_TTL_SECONDS
    if ttl_seconds < 1 or ttl_seconds > MAX_HOLD_TTL_SECONDS:
        raise invalid(
            "INVALID_TTL",
            f"ttl_seconds must be from 1 to {MAX_HOLD_TTL_SECONDS}",
            field="ttl_seconds",
        )
    return ttl_seconds


def validate_page_size(page_size: int) -> int:
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise invalid("INVALID_PAGE_SIZE", f"page_size must be from 1 to {MAX_PAGE_SIZE}", field="page_size")
    return page_size


# --- Tiers and periods --------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    tier_id: str
    display_name: str
    sort_order: int
    price_cents: int
    billing_period: str
    credits_nanos: int
    api_call_limit: int
    api_call_period: str
    byok_allowed: bool
    markup_bps: int
    byok_markup_bps: int
    free_model_fee_per_1k_tokens_nanos: int
    features: tuple[str, ...]


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, clamped to the end of shorter months."""
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_bounds(anchor: datetime, billing_period: str, index: int) -> tuple[datetime, datetime]:
    """The ``index``-th billing period counted from ``anchor`` (index 0 starts at it)."""
    if billing_period == "week":
        start = anchor + timedelta(days=7 * index)
        return start, start + timedelta(days=7)
    if billing_period == "month":
        # Always step from the anchor so that Jan 31 → Feb 29 → Mar 31 keeps its day.
        return add_months(anchor, index), add_months(anchor, index + 1)
    raise ValueError(f"unknown billing period {billing_period!r}")


def period_containing(anchor: datetime, billing_period: str, now: datetime) -> tuple[datetime, datetime]:
    """The billing period that contains ``now`` (start inclusive, end exclusive)."""
    if now < anchor:
        return period_bounds(anchor, billing_period, 0)
    if billing_period == "week":
        index = (now - anchor) // timedelta(days=7)
    else:
        index = max(0, (now.year - anchor.year) * 12 + (now.month - anchor.month) - 1)
    start, end = period_bounds(anchor, billing_period, index)
    while end <= now:
        index += 1
        start, end = period_bounds(anchor, billing_period, index)
    return start, end


@dataclass(frozen=True)
class DueGrant:
    grant_id: str
    remaining_nanos: int


def plan_expiry(due: list[DueGrant], held_nanos: int) -> list[tuple[str, int]]:
    """How much of each due grant expires now.

    Credits that active holds still need stay until the holds settle: of the
    total due, only what exceeds the held amount expires. Spending takes the
    soonest-expiring credits first, so the holds would have consumed due
    credits before any later ones; expiring all but ``held_nanos`` of them is
    what leaves the user's unexpired credits untouched. The earliest-due grants
    expire first.
    """
    total_due = sum(g.remaining_nanos for g in due)
    to_expire = max(0, total_due - held_nanos)
    plan: list[tuple[str, int]] = []
    for grant in due:
        if to_expire == 0:
            break
        amount = min(grant.remaining_nanos, to_expire)
        if amount > 0:
            plan.append((grant.grant_id, amount))
            to_expire -= amount
    return plan


def refundable(charged_nanos: int, refunded_nanos: int) -> int:
    return max(0, charged_nanos - refunded_nanos)


def check_refund(charged_nanos: int, refunded_nanos: int, amount_nanos: int) -> None:
    left = refundable(charged_nanos, refunded_nanos)
    if amount_nanos > left:
        raise precondition(
            "REFUND_EXCEEDS_CHARGE",
            f"only {left} nanos of this charge are left to refund",
            refundable_nanos=str(left),
        )


def forbidden_source(source: Source) -> DomainError:
    return DomainError(
        "INVALID_SOURCE",
        f"grants with source {source.value} cannot be made through Allocate by this caller",
        code=Code.PERMISSION_DENIED,
    )


# --- Records --------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit trail."""

    subject: str
    role: str
    service: str = ""


SYSTEM = Actor(subject="system", role="system", service="credits")


@dataclass(frozen=True)
class Account:
    user_id: str
    tier_id: str
    balance_nanos: int
    held_nanos: int
    period_start: datetime
    period_end: datetime
    created_at: datetime

    @property
    def available_nanos(self) -> int:
        return self.balance_nanos - self.held_nanos


@dataclass(frozen=True)
class GrantView:
    grant_id: str
    source: str
    remaining_nanos: int
    expires_at: datetime | None


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    user_id: str
    kind: str
    amount_nanos: int
    balance_after_nanos: int
    debit_account: str
    credit_account: str
    request_id: str
    related_transaction_id: str
    hold_id: str
    actor_subject: str
    actor_role: str
    reason: str
    service: str
    model: str
    reference_id: str
    price_version: str
    created_at: datetime


@dataclass(frozen=True)
class Hold:
    hold_id: str
    user_id: str
    amount_nanos: int
    captured_nanos: int
    status: str
    expires_at: datetime
    created_at: datetime
    capture_transaction_id: str


@dataclass(frozen=True)
class ChargeMeta:
    """The audit fields a charge carries besides who made it."""

    reason: str = ""
    model: str = ""
    reference_id: str = ""
    price_version: str = ""


MAX_USAGE_CHARGES = 10_000


@dataclass(frozen=True)
class UsageCharge:
    """One usage event to charge (see ChargeUsage)."""

    request_id: str
    amount_nanos: int
    model: str = ""
    reference_id: str = ""
    price_version: str = ""
    reason: str = ""

    def fingerprint(self, user_id: str) -> str:
        return fingerprint(
            "usage",
            user=user_id,
            amount=self.amount_nanos,
            model=self.model,
            ref=self.reference_id,
            price=self.price_version,
            reason=self.reason,
        )


@dataclass(frozen=True)
class UsageResult:
    request_id: str
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    duplicate: bool


@dataclass(frozen=True)
class UsageItem:
    """One usage event of a multi-account batch (see ChargeUsageBatch)."""

    user_id: str
    event_id: str
    amount_nanos: int
    hold_id: str = ""
    service: str = ""
    model: str = ""
    price_version: str = ""

    def fingerprint(self) -> str:
        """What makes two charges of (user, event) the same charge. A unit-separated digest rather than
        the JSON one of ``fingerprint()``: computed for every item of 10,000-item batches, and none of
        the fields can contain the separator (ids are restricted; the rest is length-checked text)."""
        fields = (
            self.user_id,
            self.event_id,
            str(self.amount_nanos),
            self.hold_id,
            self.service,
            self.model,
            self.price_version,
        )
        return hashlib.sha256("\x1f".join(("usage-item", *fields)).encode()).hexdigest()


@dataclass(frozen=True)
class UsageItemResult:
    user_id: str
    event_id: str
    #: CHARGED, SHORTFALL or REUSED (the event id was charged with another payload: nothing charged now).
    outcome: str
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    duplicate: bool
