"""Coupon abuse limits under concurrency, and tier trials that revert safely (issue 11, items 4 and 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
from creditmeter.coupons.v1 import coupons_pb2 as cpb
from creditmeter.credits.v1 import credits_pb2 as pb

from services.common.auth import StaticTokenSource
from services.common.bootstrap import RunningService
from services.common.db import create_pool
from services.common.grpcserver import connect
from services.common.rpcstatus import error_info_from
from services.coupons.config import CouponsSettings
from services.coupons.server import build_workflow
from services.coupons.workflow import Coupons
from tests.conftest import Keys, coupons_environ, new_user, request_id
from tests.integration.conftest import CouponsClient, Credits, assert_everything_ok, assert_ledger_ok

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
ADDRESS = "x-creditmeter-client-address"


async def _validate(coupons: CouponsClient, user: str, code: str, address: str = "") -> tuple[str, dict[str, str]]:
    """ValidateCoupon's answer: (reason or 'VALID', {}) or ('TOO_MANY_ATTEMPTS', error metadata + retry-after)."""
    metadata: list[tuple[str, str]] = [("authorization", f"Bearer {coupons.keys.token(user, 'user')}")]
    if address:
        metadata.append((ADDRESS, address))
    try:
        answer = await coupons.stub.ValidateCoupon(cpb.ValidateCouponRequest(code=code), metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as error:
        info = error_info_from(error)
        assert info is not None and error.code() is EXHAUSTED, error
        trailers = {k: v for k, v in (error.trailing_metadata() or ()) if isinstance(v, str)}
        return info.reason, {**info.metadata, "header": trailers.get("retry-after", "")}
    return answer.reason or "VALID", {}


async def test_parallel_guesses_never_exceed_the_attempt_limit(
    coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(0)
    results = await asyncio.gather(*(_validate(coupons, user, f"GUESS-{i:04d}") for i in range(40)))
    reasons = [reason for reason, _ in results]
    # The limit is 10 refused attempts per window: exactly 10 guesses got an answer, however they raced.
    assert reasons.count("COUPON_NOT_FOUND") == 10
    assert reasons.count("TOO_MANY_ATTEMPTS") == 30
    limited = [meta for reason, meta in results if reason == "TOO_MANY_ATTEMPTS"]
    for meta in limited:
        assert meta["limit"] == "user"
        assert 1 <= int(meta["retry_after_seconds"]) <= 600
        assert meta["header"] == meta["retry_after_seconds"]
    async with coupons_db.acquire() as conn:
        assert await conn.fetchval("SELECT attempts FROM attempt_counters WHERE subject = $1", f"user:{user}") == 10
    # Redeeming is held to the same counter.
    assert (await _validate(coupons, user, "WELCOME10"))[0] == "TOO_MANY_ATTEMPTS"
    blocked = await coupons.fail(
        "RedeemCoupon",
        cpb.RedeemCouponRequest(code="GUESS-9999", request_id=request_id()),
        coupons.keys.token(user, "user"),
    )
    assert (blocked.code, blocked.reason) == (EXHAUSTED, "TOO_MANY_ATTEMPTS")
    # When the window has passed the user may try again.
    async with coupons_db.acquire() as conn:
        await conn.execute(
            "UPDATE attempt_counters SET window_start = window_start - interval '601 seconds' WHERE subject = $1",
            f"user:{user}",
        )
    assert (await _validate(coupons, user, "GUESS-AGAIN"))[0] == "COUPON_NOT_FOUND"


async def test_allowed_attempts_do_not_count(coupons: CouponsClient, credits: Credits) -> None:
    user = await credits.funded_user(0)
    good = await coupons.create(per_user_limit=1)
    # Every look-up holds one unit while it runs (so a flood of parallel guesses is held to the limit
    # even when one of them hits); an allowed one gives it back. Five at a time, 25 in all, all fit.
    for _ in range(5):
        answers = await asyncio.gather(*(_validate(coupons, user, good.code) for _ in range(5)))
        assert {reason for reason, _ in answers} == {"VALID"}
    await coupons.redeem(user, good.code)
    # Only misses (codes that name no coupon) are guesses: refusals of a real code do not count either.
    for _ in range(12):
        assert (await _validate(coupons, user, good.code))[0] == "COUPON_ALREADY_REDEEMED"
    # So all ten misses still fit, and the eleventh is refused.
    for i in range(10):
        assert (await _validate(coupons, user, f"MISS-{i:04d}"))[0] == "COUPON_NOT_FOUND"
    assert (await _validate(coupons, user, "MISS-LAST"))[0] == "TOO_MANY_ATTEMPTS"


async def test_attempts_are_limited_per_client_address(
    coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool
) -> None:
    address = f"198.51.100.{int(new_user('n')[-4:], 16) % 250 + 1}"
    async with coupons_db.acquire() as conn:
        await conn.execute("DELETE FROM attempt_counters WHERE subject = $1", f"ip:{address}")
    users = [await credits.funded_user(0) for _ in range(6)]
    # 6 users x 9 guesses from one address: every user is under their own limit of 10, the address
    # (limit 50) is not; exactly 50 guesses are answered, in any interleaving.
    calls = [_validate(coupons, u, f"IP-{n}-{i:03d}", address) for n, u in enumerate(users) for i in range(9)]
    results = await asyncio.gather(*calls)
    answered = [r for r, _ in results if r == "COUPON_NOT_FOUND"]
    refused = [meta for r, meta in results if r == "TOO_MANY_ATTEMPTS"]
    assert (len(answered), len(refused)) == (50, 4)
    assert {meta["limit"] for meta in refused} == {"ip"}
    async with coupons_db.acquire() as conn:
        counted = await conn.fetchval("SELECT attempts FROM attempt_counters WHERE subject = $1", f"ip:{address}")
    assert counted == 50
    # The same users from another address, or without one (inside the cluster), are not held by it.
    assert (await _validate(coupons, users[0], "IP-OTHER", "192.0.2.200"))[0] == "COUPON_NOT_FOUND"
    assert (await _validate(coupons, users[1], "IP-NONE"))[0] == "COUPON_NOT_FOUND"


async def test_ipv6_clients_are_limited_per_64(coupons: CouponsClient, credits: Credits) -> None:
    prefix = f"2001:db8:{int(new_user('n')[-4:], 16):x}:1"
    users = [await credits.funded_user(0) for _ in range(6)]
    calls = [
        _validate(coupons, u, f"V6-{n}-{i:03d}", f"{prefix}::{n * 16 + i + 1:x}")
        for n, u in enumerate(users)
        for i in range(9)
    ]
    reasons = [r for r, _ in await asyncio.gather(*calls)]
    assert reasons.count("COUPON_NOT_FOUND") == 50 and reasons.count("TOO_MANY_ATTEMPTS") == 4


# --- SetTier ---------------------------------------------------------------------------------


async def test_concurrent_tier_changes_of_a_new_user_match_one_serial_order(credits: Credits, db: asyncpg.Pool) -> None:
    for _ in range(3):
        user = new_user("tiers")
        wanted = ["starter", "professional", "enterprise", "trial", "starter", "professional"]
        answers = await asyncio.gather(
            *(
                credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier=t, request_id=request_id()))
                for t in wanted
            )
        )
        # The answers must form one serial order: a chain from "no account" (previous_tier "") through
        # every change exactly once, each naming the tier the one before it set, ending at the final tier.
        final = (await credits.balance(user)).tier
        steps = [(a.previous_tier, a.account.tier) for a in answers]
        assert _chains(steps, "", final), steps
        current = final
        assert (await credits.balance(user)).tier == current
        async with db.acquire() as conn:
            history = await conn.fetch(
                "SELECT previous_tier, tier FROM tier_changes WHERE user_id = $1 ORDER BY changed_at", user
            )
        assert history[0]["previous_tier"] == "" and history[-1]["tier"] == current
        assert all(history[i]["tier"] == history[i + 1]["previous_tier"] for i in range(len(history) - 1))
        assert len({a.change_id for a in answers}) == len(wanted)
    await assert_ledger_ok(db)


async def test_a_conditional_tier_change_applies_only_while_its_change_is_the_latest(credits: Credits) -> None:
    user = await credits.funded_user(0)
    first = await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="starter", request_id="t1"))
    rid = request_id()
    undo = pb.SetTierRequest(user_id=user, tier="trial", request_id=rid, expected_change_id=first.change_id)
    done = await credits.as_admin("SetTier", undo)
    assert (done.previous_tier, done.account.tier) == ("starter", "trial")
    # A retry replays; the change it expected is no longer the latest, but the answer is the first one.
    again = await credits.as_admin("SetTier", undo)
    assert (again.change_id, again.account.tier) == (done.change_id, "trial")
    await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="professional", request_id="t3"))
    stale = await credits.fail(
        "SetTier",
        pb.SetTierRequest(user_id=user, tier="trial", request_id=request_id(), expected_change_id=done.change_id),
        credits.admin_token,
    )
    assert (stale.code, stale.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TIER_CHANGED_SINCE")
    assert (await credits.balance(user)).tier == "professional"


def _chains(steps: list[tuple[str, str]], start: str, end: str) -> bool:
    """Whether the (from, to) steps, each used once, form a path from ``start`` to ``end``."""
    if not steps:
        return start == end
    return any(_chains(steps[:i] + steps[i + 1 :], to, end) for i, (frm, to) in enumerate(steps) if frm == start)


# --- trials ----------------------------------------------------------------------------------


@pytest.fixture
async def reverter(credits_db: str, keys: Keys, credits_server: RunningService) -> AsyncIterator[Coupons]:
    """A coupons workflow of its own, to run the trial revert pass on demand."""
    settings = CouponsSettings.from_env(coupons_environ(credits_db, keys, credits_server.port))
    pool = await create_pool(credits_db, "coupons", application_name="test-reverter")
    chan = connect(f"127.0.0.1:{credits_server.port}", StaticTokenSource(keys.token("svc-coupons", "svc-coupons")))
    yield build_workflow(settings, pool, chan)
    await chan.close()
    await pool.close()


async def _end_trials(coupons_db: asyncpg.Pool, *redemption_ids: str) -> None:
    async with coupons_db.acquire() as conn:
        await conn.execute(
            "UPDATE redemptions SET trial_ends_at = now() - interval '1 second' WHERE redemption_id = ANY($1::uuid[])",
            list(redemption_ids),
        )


async def _trial_state(coupons_db: asyncpg.Pool, redemption_id: str) -> asyncpg.Record:
    async with coupons_db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT reverted_at IS NOT NULL AS reverted, revert_note, revert_attempts, revert_after"
            " FROM redemptions WHERE redemption_id = $1",
            redemption_id,
        )
    assert row is not None
    return row


async def test_a_trial_does_not_downgrade_a_user_who_bought_its_tier(
    coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool, reverter: Coupons, db: asyncpg.Pool
) -> None:
    trial = await coupons.create(kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="professional", trial_days=30)
    bought, kept = await credits.funded_user(0), await credits.funded_user(0)
    r_bought = await coupons.redeem(bought, trial.code)
    r_kept = await coupons.redeem(kept, trial.code)
    # During the trial one user buys Professional (the same tier the trial gave them).
    await credits.as_admin("SetTier", pb.SetTierRequest(user_id=bought, tier="professional", request_id="buy"))
    await _end_trials(coupons_db, r_bought.redemption_id, r_kept.redemption_id)
    await reverter.revert_due_trials()
    assert (await credits.balance(bought)).tier == "professional"
    assert (await credits.balance(kept)).tier == "trial"
    state = await _trial_state(coupons_db, r_bought.redemption_id)
    assert state["reverted"] and "changed since" in state["revert_note"]
    assert (await _trial_state(coupons_db, r_kept.redemption_id))["revert_note"] == "returned to trial"
    await assert_everything_ok(db, coupons_db)


async def test_trials_do_not_stack_unless_the_coupon_says_so(
    coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool, reverter: Coupons, db: asyncpg.Pool
) -> None:
    first = await coupons.create(kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="starter", trial_days=30)
    plain = await coupons.create(kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="professional", trial_days=7)
    stacking = await coupons.create(
        kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="professional", trial_days=7, stacks_on_trial=True
    )
    assert stacking.stacks_on_trial and not plain.stacks_on_trial
    user = await credits.funded_user(0)
    r_first = await coupons.redeem(user, first.code)
    assert (await coupons.validate(user, plain.code)).reason == "COUPON_TRIAL_ACTIVE"
    token = coupons.keys.token(user, "user")
    refused = await coupons.fail("RedeemCoupon", cpb.RedeemCouponRequest(code=plain.code, request_id="p1"), token)
    assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "COUPON_TRIAL_ACTIVE")
    assert (await credits.balance(user)).tier == "starter"
    # A coupon that stacks replaces the running trial; at its end the user returns to the tier they
    # had before the first trial.
    r_stack = await coupons.redeem(user, stacking.code)
    assert r_stack.redemption.previous_tier == "trial"
    assert (await credits.balance(user)).tier == "professional"
    replaced = await _trial_state(coupons_db, r_first.redemption_id)
    assert replaced["reverted"] and r_stack.redemption_id in replaced["revert_note"]
    await _end_trials(coupons_db, r_first.redemption_id, r_stack.redemption_id)
    assert await reverter.revert_due_trials() >= 1
    assert (await credits.balance(user)).tier == "trial"
    # With no trial running, a new one may start.
    assert (await coupons.validate(user, plain.code)).valid
    await assert_everything_ok(db, coupons_db)


async def test_a_failing_revert_is_isolated_and_retried(
    coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool, reverter: Coupons
) -> None:
    trial = await coupons.create(kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="professional", trial_days=30)
    broken_user, fine_user = await credits.funded_user(0), await credits.funded_user(0)
    broken = await coupons.redeem(broken_user, trial.code)
    fine = await coupons.redeem(fine_user, trial.code)
    async with coupons_db.acquire() as conn:
        # Credits refuses this revert (a tier that is not in the catalog); it ended first, so it is first in line.
        await conn.execute(
            "UPDATE redemptions SET previous_tier = 'no-such-tier', trial_ends_at = now() - interval '1 hour'"
            " WHERE redemption_id = $1",
            broken.redemption_id,
        )
    await _end_trials(coupons_db, fine.redemption_id)
    await reverter.revert_due_trials()
    assert (await credits.balance(fine_user)).tier == "trial"
    failed = await _trial_state(coupons_db, broken.redemption_id)
    assert not failed["reverted"] and failed["revert_attempts"] == 1 and failed["revert_after"] is not None
    assert "UNKNOWN_TIER" in failed["revert_note"]  # credits' refusal, noted
    # Not retried before its time ...
    await reverter.revert_due_trials()
    assert (await _trial_state(coupons_db, broken.redemption_id))["revert_attempts"] == 1
    # ... and retried once it is due (here with the cause fixed).
    async with coupons_db.acquire() as conn:
        await conn.execute(
            "UPDATE redemptions SET previous_tier = 'trial', revert_after = now() - interval '1 second'"
            " WHERE redemption_id = $1",
            broken.redemption_id,
        )
    await reverter.revert_due_trials()
    assert (await _trial_state(coupons_db, broken.redemption_id))["reverted"]
    assert (await credits.balance(broken_user)).tier == "trial"


async def test_many_people_behind_one_address_can_race_for_a_real_coupon(
    coupons: CouponsClient, credits: Credits
) -> None:
    """Only misses count against an address: 80 users behind one NAT all get their own answer."""
    coupon = await coupons.create(max_redemptions=5)
    address = "198.51.100.250"
    users = [await credits.funded_user(0) for _ in range(80)]
    answers = await asyncio.gather(*(_validate(coupons, u, coupon.code, address) for u in users))
    assert {reason for reason, _ in answers} == {"VALID"}


async def test_ended_attempt_windows_are_pruned(
    coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool, reverter: Coupons
) -> None:
    old, live = await credits.funded_user(0), await credits.funded_user(0)
    for user in (old, live):
        assert (await _validate(coupons, user, "PRUNE-ME"))[0] == "COUPON_NOT_FOUND"
    async with coupons_db.acquire() as conn:
        await conn.execute(
            "UPDATE attempt_counters SET window_start = now() - interval '1 hour' WHERE subject = $1", f"user:{old}"
        )
    assert await reverter.prune_attempts() >= 1
    async with coupons_db.acquire() as conn:
        left = await conn.fetch(
            "SELECT subject FROM attempt_counters WHERE subject = ANY($1::text[])", [f"user:{old}", f"user:{live}"]
        )
    assert [r["subject"] for r in left] == [f"user:{live}"]


async def test_a_trial_returns_a_user_to_a_tier_coupons_may_not_grant(
    coupons: CouponsClient, credits: Credits, coupons_db: asyncpg.Pool, reverter: Coupons
) -> None:
    """The coupons identity may not set enterprise, but may undo its own trial back to it."""
    trial = await coupons.create(kind=cpb.COUPON_KIND_TIER_TRIAL, trial_tier="professional", trial_days=30)
    user = await credits.funded_user(0)
    await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="enterprise", request_id="ent"))
    # It cannot pass off an admin's change as its own to reach enterprise ...
    moved = await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="starter", request_id="down"))
    sneaky = await credits.fail(
        "SetTier",
        pb.SetTierRequest(user_id=user, tier="enterprise", request_id="sneak", expected_change_id=moved.change_id),
        credits.coupons_token,
    )
    assert (sneaky.code, sneaky.reason) == (grpc.StatusCode.PERMISSION_DENIED, "TIER_NOT_ALLOWED_FOR_COUPONS")
    await credits.as_admin("SetTier", pb.SetTierRequest(user_id=user, tier="enterprise", request_id="up"))
    # ... but a trial it granted on top of enterprise ends back on enterprise.
    redeemed = await coupons.redeem(user, trial.code)
    assert (await credits.balance(user)).tier == "professional"
    await _end_trials(coupons_db, redeemed.redemption_id)
    await reverter.revert_due_trials()
    assert (await credits.balance(user)).tier == "enterprise"
    assert (await _trial_state(coupons_db, redeemed.redemption_id))["revert_note"] == "returned to enterprise"
