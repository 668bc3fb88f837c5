"""Credits domain rules: pure, no database."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import Code, DomainError
from services.credits import domain
from services.credits.domain import DueGrant


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (_utc(2026, 1, 31), 1, _utc(2026, 2, 28)),
        (_utc(2028, 1, 31), 1, _utc(2028, 2, 29)),
        (_utc(2026, 1, 31), 2, _utc(2026, 3, 31)),
        (_utc(2026, 11, 15, 10, 30), 2, _utc(2027, 1, 15, 10, 30)),
        (_utc(2026, 12, 31), 12, _utc(2027, 12, 31)),
    ],
)
def test_add_months_clamps_to_short_months(start: datetime, months: int, expected: datetime) -> None:
    assert domain.add_months(start, months) == expected


def test_monthly_periods_keep_the_anchor_day() -> None:
    anchor = _utc(2026, 1, 31, 12)
    bounds = [domain.period_bounds(anchor, "month", i) for i in range(3)]
    assert [b[0].date().isoformat() for b in bounds] == ["2026-01-31", "2026-02-28", "2026-03-31"]
    assert all(b[1] == nxt[0] for b, nxt in itertools.pairwise(bounds))


def test_period_containing_finds_the_current_week() -> None:
    anchor = _utc(2026, 11, 1)
    start, end = domain.period_containing(anchor, "week", _utc(2026, 11, 16, 9))
    assert (start, end) == (_utc(2026, 11, 15), _utc(2026, 11, 22))
    # A boundary instant belongs to the period it starts.
    assert domain.period_containing(anchor, "week", _utc(2026, 11, 8))[0] == _utc(2026, 11, 8)


@given(
    anchor=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2000)),
    period=st.sampled_from(["week", "month"]),
)
def test_the_current_period_always_contains_now(anchor: datetime, offset: timedelta, period: str) -> None:
    now = anchor + offset
    start, end = domain.period_containing(anchor, period, now)
    assert start <= now < end
    assert end - start <= timedelta(days=31)


def test_expiry_spares_only_what_active_holds_still_need() -> None:
    due = [DueGrant("a", 10), DueGrant("b", 5)]
    assert domain.plan_expiry(due, held_nanos=0) == [("a", 10), ("b", 5)]
    assert domain.plan_expiry(due, held_nanos=8) == [("a", 7)]
    assert domain.plan_expiry(due, held_nanos=15) == []
    assert domain.plan_expiry(due, held_nanos=100) == []


@given(
    remaining=st.lists(st.integers(min_value=0, max_value=10**12), max_size=8),
    held=st.integers(min_value=0, max_value=10**13),
)
def test_expiry_plan_never_takes_more_than_due_minus_held(remaining: list[int], held: int) -> None:
    due = [DueGrant(str(i), r) for i, r in enumerate(remaining)]
    plan = domain.plan_expiry(due, held)
    assert sum(a for _, a in plan) == max(0, sum(remaining) - held)
    by_id = dict(plan)
    assert all(0 < by_id[g.grant_id] <= g.remaining_nanos for g in due if g.grant_id in by_id)


def test_refund_limit() -> None:
    domain.check_refund(charged_nanos=100, refunded_nanos=40, amount_nanos=60)
    with pytest.raises(DomainError) as error:
        domain.check_refund(charged_nanos=100, refunded_nanos=40, amount_nanos=61)
    assert (error.value.code, error.value.reason) == (
        Code.FAILED_PRECONDITION,
        "REFUND_EXCEEDS_CHARGE",
    )
    assert error.value.metadata["refundable_nanos"] == "60"


@pytest.mark.parametrize("amount", [0, -1, domain.MAX_AMOUNT_NANOS + 1, True])
def test_amounts_outside_the_range_are_refused(amount: int) -> None:
    with pytest.raises(DomainError) as error:
        domain.validate_amount(amount)
    assert error.value.reason == "INVALID_AMOUNT"


def test_zero_is_a_valid_capture() -> None:
    assert domain.validate_amount(0, allow_zero=True) == 0


@pytest.mark.parametrize("value", ["", " ", "a b", "x" * 129, "tab\there", "é"])
def test_ids_are_printable_and_bounded(value: str) -> None:
    with pytest.raises(DomainError):
        domain.validate_request_id(value)


def test_fingerprint_depends_on_every_field_and_nothing_else() -> None:
    base = domain.fingerprint("deduct", user="u", amount=5)
    assert base == domain.fingerprint("deduct", amount=5, user="u")
    assert base != domain.fingerprint("deduct", user="u", amount=6)
    assert base != domain.fingerprint("hold", user="u", amount=5)


def test_page_size_defaults_and_bounds() -> None:
    assert domain.validate_page_size(0) == domain.DEFAULT_PAGE_SIZE
    assert domain.validate_page_size(500) == 500
    with pytest.raises(DomainError):
        domain.validate_page_size(501)


def test_coupon_credits_come_from_promotions() -> None:
    assert domain.grant_source_account(domain.Source.COUPON) == "platform:promotions"
    assert domain.grant_source_account(domain.Source.ADMIN) == "platform:grants"


def test_the_set_of_known_accounts_is_bounded_and_forgets_the_oldest_first() -> None:
    """Accounts are never deleted, so remembering that one exists never goes stale; the memory is bounded."""
    from services.credits.ledger import Ledger

    ledger = Ledger(pool=None, known_accounts_max=3)  # type: ignore[arg-type]  # no database is touched
    for user in ["a", "b", "c", "d"]:
        ledger._remember_account(user)
    assert list(ledger._known_accounts) == ["b", "c", "d"]
    ledger._remember_account("c")  # already known: nothing is forgotten for it
    assert list(ledger._known_accounts) == ["b", "c", "d"]
