"""Coupons domain: codes, coupon definitions, grants, refusal reasons. Pure Python."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from services.common.errors import Code, DomainError, already_exists, invalid, not_found
from services.common.idempotency import ID_PATTERN
from services.common.idempotency import fingerprint as fingerprint
from services.common.idempotency import validate_request_id as validate_request_id

DOMAIN = "coupons.creditmeter.dev"
# One coupon grants at most $10,000: the credits service caps COUPON grants by the coupons
# identity at the same amount by default (CREDITS_COUPON_GRANT_MAX_NANOS).
MAX_AMOUNT_NANOS = 10_000 * 1_000_000_000
MAX_CREDIT_EXPIRY_DAYS = 3650
MAX_TRIAL_DAYS = 365
MAX_DESCRIPTION = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

_CODE_RE = re.compile(r"^[A-Z0-9_-]{3,64}\Z")


class Kind(StrEnum):
    CREDIT_GRANT = "CREDIT_GRANT"
    TIER_TRIAL = "TIER_TRIAL"


class Status(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


#: Why a coupon cannot be redeemed, and the status each maps to when redeeming.
REFUSALS: dict[str, Code] = {
    "COUPON_NOT_FOUND": Code.NOT_FOUND,
    "COUPON_NOT_YET_VALID": Code.FAILED_PRECONDITION,
    "COUPON_EXPIRED": Code.FAILED_PRECONDITION,
    "COUPON_EXHAUSTED": Code.FAILED_PRECONDITION,
    "COUPON_ALREADY_REDEEMED": Code.FAILED_PRECONDITION,
    "COUPON_DISABLED": Code.FAILED_PRECONDITION,
    "COUPON_TIER_NOT_ELIGIBLE": Code.FAILED_PRECONDITION,
    "COUPON_FIRST_TIME_ONLY": Code.FAILED_PRECONDITION,
    "COUPON_TRIAL_ACTIVE": Code.FAILED_PRECONDITION,
}

_MESSAGES = {
    "COUPON_NOT_FOUND": "no such coupon",
    "COUPON_NOT_YET_VALID": "this coupon is not valid yet",
    "COUPON_EXPIRED": "this coupon has expired",
    "COUPON_EXHAUSTED": "this coupon has been redeemed as often as it may be",
    "COUPON_ALREADY_REDEEMED": "you have already redeemed this coupon",
    "COUPON_DISABLED": "this coupon has been disabled",
    "COUPON_TIER_NOT_ELIGIBLE": "this coupon is not available on your tier",
    "COUPON_FIRST_TIME_ONLY": "this coupon is only for people who have never redeemed a coupon",
    "COUPON_TRIAL_ACTIVE": "you already have a trial running; this one can be redeemed after it ends",
}


def refusal_error(reason: str, code: str) -> DomainError:
    return DomainError(reason, _MESSAGES[reason], code=REFUSALS[reason], domain=DOMAIN, metadata={"code": code})


def too_many_attempts(retry_after_seconds: int, limit: str) -> DomainError:
    """The attempt limit of the user (``limit`` "user") or of their client address ("ip") is reached."""
    who = "you have" if limit == "user" else "your network address has"
    return DomainError(
        "TOO_MANY_ATTEMPTS",
        f"{who} made too many refused coupon attempts; try again in {retry_after_seconds} seconds",
        code=Code.RESOURCE_EXHAUSTED,
        domain=DOMAIN,
        metadata={"retry_after_seconds": str(retry_after_seconds), "limit": limit},
    )


def coupon_not_found(code: str) -> DomainError:
    return not_found("COUPON_NOT_FOUND", "no such coupon", code=code)


def normalize_code(raw: str) -> str:
    """Codes compare case-insensitively and ignore surrounding spaces (spaces only: a newline is bad input)."""
    code = raw.strip(" ").upper()
    if not _CODE_RE.match(code):
        raise invalid("INVALID_CODE", "a coupon code is 3 to 64 letters, digits, '-' or '_'", field="code")
    return code


def same_digest(a: str, b: str) -> bool:
    """Constant-time comparison (codes themselves are looked up through the unique index)."""
    return hmac.compare_digest(a.encode(), b.encode())


def validate_user_id(user_id: str) -> str:
    if not ID_PATTERN.match(user_id):
        raise invalid("INVALID_USER_ID", "user_id must be 1-128 characters of letters, digits and ._:@|+=/-")
    return user_id


def validate_page_size(page_size: int) -> int:
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise invalid("INVALID_PAGE_SIZE", f"page_size must be from 1 to {MAX_PAGE_SIZE}", field="page_size")
    return page_size


def request_id_reused(request_id: str) -> DomainError:
    return already_exists(
        "REQUEST_ID_REUSED", "this request_id was already used for a different request", request_id=request_id
    )


@dataclass(frozen=True)
class CouponSpec:
    """A coupon as an admin defines it, validated."""

    code: str
    description: str
    kind: Kind
    credit_amount_nanos: int
    credit_expiry_days: int
    trial_tier: str
    trial_days: int
    valid_from: datetime | None
    expires_at: datetime | None
    max_redemptions: int
    per_user_limit: int
    eligible_tiers: tuple[str, ...]
    first_time_only: bool
    stacks_on_trial: bool = False

    def fingerprint(self) -> str:
        # stacks_on_trial joins the fingerprint only when set, so keys stored before it existed still replay.
        fields = {k: v for k, v in self.__dict__.items() if k != "stacks_on_trial" or v}
        return fingerprint("create", **fields)


def build_spec(
    *,
    code: str,
    description: str,
    kind: Kind | None,
    credit_amount_nanos: int,
    credit_expiry_days: int,
    trial_tier: str,
    trial_days: int,
    valid_from: datetime | None,
    expires_at: datetime | None,
    max_redemptions: int,
    per_user_limit: int,
    eligible_tiers: list[str],
    first_time_only: bool,
    known_tiers: set[str],
    now: datetime,
    stacks_on_trial: bool = False,
) -> CouponSpec:
    """Checks a coupon definition; raises INVALID_ARGUMENT naming the first problem."""
    normalized = normalize_code(code)
    if len(description) > MAX_DESCRIPTION:
        raise invalid("INVALID_DESCRIPTION", f"description must be at most {MAX_DESCRIPTION} characters")
    if kind is None:
        raise invalid("INVALID_KIND", "kind must be COUPON_KIND_CREDIT_GRANT or COUPON_KIND_TIER_TRIAL", field="kind")
    if kind is Kind.CREDIT_GRANT:
        if not 1 <= credit_amount_nanos <= MAX_AMOUNT_NANOS:
            raise invalid("INVALID_AMOUNT", f"credit_amount_nanos must be from 1 to {MAX_AMOUNT_NANOS}")
        if not 0 <= credit_expiry_days <= MAX_CREDIT_EXPIRY_DAYS:
            raise invalid("INVALID_EXPIRY", f"credit_expiry_days must be from 0 to {MAX_CREDIT_EXPIRY_DAYS}")
        if trial_tier or trial_days or stacks_on_trial:
            raise invalid("INVALID_TRIAL", "a CREDIT_GRANT coupon has no trial_tier, trial_days or stacks_on_trial")
    else:
        if trial_tier not in known_tiers:
            raise invalid("UNKNOWN_TIER", f"trial_tier must be one of {', '.join(sorted(known_tiers))}")
        if not 1 <= trial_days <= MAX_TRIAL_DAYS:
            raise invalid("INVALID_TRIAL", f"trial_days must be from 1 to {MAX_TRIAL_DAYS}")
        if credit_amount_nanos or credit_expiry_days:
            raise invalid("INVALID_AMOUNT", "a TIER_TRIAL coupon grants no credits")
    if expires_at is not None:
        if expires_at <= now:
            raise invalid("INVALID_WINDOW", "expires_at must be in the future", field="expires_at")
        if valid_from is not None and expires_at <= valid_from:
            raise invalid("INVALID_WINDOW", "expires_at must be after valid_from", field="expires_at")
    if max_redemptions < 0:
        raise invalid("INVALID_LIMIT", "max_redemptions must be 0 (unlimited) or more", field="max_redemptions")
    if per_user_limit < 0 or per_user_limit > 1000:
        raise invalid("INVALID_LIMIT", "per_user_limit must be from 1 to 1000 (0 means 1)", field="per_user_limit")
    unknown = sorted(set(eligible_tiers) - known_tiers)
    if unknown:
        raise invalid("UNKNOWN_TIER", f"unknown eligible tiers: {', '.join(unknown)}", field="eligible_tiers")
    return CouponSpec(
        code=normalized,
        description=description,
        kind=kind,
        credit_amount_nanos=credit_amount_nanos,
        credit_expiry_days=credit_expiry_days,
        trial_tier=trial_tier,
        trial_days=trial_days,
        valid_from=valid_from,
        expires_at=expires_at,
        max_redemptions=max_redemptions,
        per_user_limit=per_user_limit or 1,
        eligible_tiers=tuple(sorted(set(eligible_tiers))),
        first_time_only=first_time_only,
        stacks_on_trial=stacks_on_trial,
    )


@dataclass(frozen=True)
class Coupon:
    code: str
    description: str
    kind: Kind
    credit_amount_nanos: int
    credit_expiry_days: int
    trial_tier: str
    trial_days: int
    valid_from: datetime
    expires_at: datetime | None
    max_redemptions: int
    per_user_limit: int
    eligible_tiers: tuple[str, ...]
    first_time_only: bool
    disabled: bool
    redemption_count: int
    created_at: datetime
    created_by: str
    stacks_on_trial: bool = False


@dataclass(frozen=True)
class Redemption:
    redemption_id: str
    code: str
    user_id: str
    status: Status
    kind: Kind
    credits_nanos: int
    credits_expire_at: datetime | None
    trial_tier: str
    trial_days: int
    trial_ends_at: datetime | None
    previous_tier: str
    transaction_id: str
    balance_after_nanos: int
    created_at: datetime
    completed_at: datetime | None
    fingerprint: str = field(default="", repr=False)
    #: TIER_TRIAL: the credits tier change the trial made; its revert applies only while it is the latest.
    trial_change_id: str = ""
    #: TIER_TRIAL: the running trial this stacking trial replaced.
    supersedes: str = ""
    revert_attempts: int = 0
    revert_note: str = ""


#: The two coupons `make run` seeds into an empty database.
DEV_SEED = (
    CouponSpec(
        code="WELCOME10",
        description="$10 of credits to get started",
        kind=Kind.CREDIT_GRANT,
        credit_amount_nanos=10_000_000_000,
        credit_expiry_days=0,
        trial_tier="",
        trial_days=0,
        valid_from=None,
        expires_at=None,
        max_redemptions=0,
        per_user_limit=1,
        eligible_tiers=(),
        first_time_only=False,
    ),
    CouponSpec(
        code="FREEMONTH",
        description="Professional for 30 days",
        kind=Kind.TIER_TRIAL,
        credit_amount_nanos=0,
        credit_expiry_days=0,
        trial_tier="professional",
        trial_days=30,
        valid_from=None,
        expires_at=None,
        max_redemptions=0,
        per_user_limit=1,
        eligible_tiers=("starter", "trial"),
        first_time_only=False,
    ),
)
