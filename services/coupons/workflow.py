"""The coupon use cases: create, validate, redeem (claim here, grant in credits), recover, revert trials.

A redemption is first claimed in this service's database (one statement:
rules re-checked under the user's and the coupon's locks, the unit counted,
the redemption recorded PENDING), then granted through the credits service
with the redemption id as the credits request_id. Either both happen or, if
credits refuses for good, the redemption is marked FAILED and its unit given
back; a failure in between leaves it PENDING for a retry or the recovery pass,
which can never grant twice because credits replays the same request id.
"""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as credits_pb

from services.common import pagetoken
from services.common.errors import Code, DomainError, already_exists
from services.common.idempotency import StoredResponses
from services.common.ids import uuid7
from services.common.rpcstatus import error_info_from
from services.common.timestamps import to_timestamp
from services.coupons import domain
from services.coupons import repository as repo
from services.coupons.domain import Coupon, CouponSpec, Kind, Redemption, Status
from services.credits.client import CreditsClient

log = logging.getLogger(__name__)

#: Credits answers that mean "never going to work": the redemption fails and its unit is released.
_PERMANENT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
}


class Coupons:
    """Coupon use cases over this service's pool and a credits client."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        credits: CreditsClient,
        *,
        max_failed_attempts: int,
        attempt_window_seconds: int,
        max_failed_attempts_per_address: int = 50,
        revert_max_delay_seconds: int = 3600,
    ) -> None:
        self._pool = pool
        #: First responses of the changes that create no row of their own (AIP-155).
        self.responses = StoredResponses(pool)
        self._credits = credits
        self._max_failed = max_failed_attempts
        self._max_failed_address = max_failed_attempts_per_address
        self._window = attempt_window_seconds
        self._revert_max_delay = revert_max_delay_seconds

    # --- the credits side ---------------------------------------------------------------

    async def known_tiers(self) -> set[str]:
        return set(await self._credits.tiers())

    async def user_tier(self, user_id: str) -> str:
        return await self._credits.tier_of(user_id)

    # --- admin ----------------------------------------------------------------------------

    async def create(self, spec: CouponSpec, created_by: str, request_id: str) -> Coupon:
        fp = spec.fingerprint()
        async with self._pool.acquire() as conn:
            replay = await repo.coupon_by_request(conn, request_id)
            if replay is not None:
                if replay[1] != fp:
                    raise domain.request_id_reused(request_id)
                return replay[0]
            try:
                coupon = await repo.insert_coupon(conn, spec, created_by, request_id, fp)
            except asyncpg.UniqueViolationError:
                replay = await repo.coupon_by_request(conn, request_id)
                if replay is not None and replay[1] == fp:
                    return replay[0]
                raise already_exists(
                    "COUPON_CODE_TAKEN", f"a coupon with code {spec.code} exists", code=spec.code
                ) from None
        log.info("coupon created", extra={"code": coupon.code, "by": created_by, "kind": coupon.kind.value})
        return coupon

    async def seed_dev(self) -> int:
        """Creates the development coupons on an empty database; returns how many it created."""
        async with self._pool.acquire() as conn:
            if await repo.count_coupons(conn) > 0:
                return 0
        for spec in domain.DEV_SEED:
            await self.create(spec, "dev-seed", f"dev-seed-{spec.code}")
        return len(domain.DEV_SEED)

    async def get(self, raw_code: str) -> Coupon:
        code = domain.normalize_code(raw_code)
        async with self._pool.acquire() as conn:
            coupon = await repo.get_coupon(conn, code)
        if coupon is None:
            raise domain.coupon_not_found(code)
        return coupon

    async def disable(self, raw_code: str, by: str, reason: str) -> Coupon:
        code = domain.normalize_code(raw_code)
        async with self._pool.acquire() as conn:
            coupon = await repo.disable_coupon(conn, code)
        if coupon is None:
            raise domain.coupon_not_found(code)
        log.info("coupon disabled", extra={"code": code, "by": by, "reason": reason})
        return coupon

    async def list_coupons(
        self, before: tuple[datetime, str] | None, include_disabled: bool, limit: int
    ) -> list[Coupon]:
        async with self._pool.acquire() as conn:
            return await repo.list_coupons(conn, before, include_disabled, limit)

    async def list_redemptions(self, *, code: str, user_id: str, before: str | None, limit: int) -> list[Redemption]:
        async with self._pool.acquire() as conn:
            return await repo.list_redemptions(conn, code=code, user_id=user_id, before=before, limit=limit)

    # --- users ------------------------------------------------------------------------------

    async def _take_attempt(self, conn: asyncpg.Connection, user_id: str, address: str) -> datetime:
        """Takes one unit of the user's attempt limit before a code is looked at.

        The check and the increment are one statement, so parallel guesses by one user can never
        exceed the limit: each holds a unit while it runs, and an attempt that does not turn out to
        be a miss gives it back (:meth:`_settle_attempt`). A client address already over its own
        limit is refused here too, before any work.
        """
        if address:
            wait = await repo.attempt_wait(conn, f"ip:{address}", self._max_failed_address, self._window)
            if wait:
                raise domain.too_many_attempts(wait, "ip")
        window, wait = await repo.take_attempt(conn, f"user:{user_id}", self._max_failed, self._window)
        if window is None:
            raise domain.too_many_attempts(wait, "user")
        return window

    async def _settle_attempt(self, user_id: str, window: datetime, address: str, outcome: str) -> None:
        """After the look-up: a miss (the code names no coupon) keeps the user's unit and takes one
        from the client address's limit (again check-and-increment in one statement: of parallel
        misses from one address, exactly as many as the limit are answered, the rest get
        TOO_MANY_ATTEMPTS). Anything else — valid, or a refusal of a code that exists (expired,
        exhausted, …) — gives the user's unit back: those are not guesses, and many people behind
        one address racing for a popular coupon must not lock each other out.
        """
        if outcome != "COUPON_NOT_FOUND":
            async with self._pool.acquire() as conn:
                await repo.give_back_attempt(conn, f"user:{user_id}", window)
            return
        if address:
            async with self._pool.acquire() as conn:
                taken, wait = await repo.take_attempt(conn, f"ip:{address}", self._max_failed_address, self._window)
            if taken is None:
                raise domain.too_many_attempts(wait, "ip")

    async def validate(self, user_id: str, raw_code: str, address: str = "") -> tuple[str, str, Coupon | None]:
        """(normalised code, refusal reason or '', the coupon if it exists); nothing is redeemed.

        Misses count against the attempt limits of the user and of the client address."""
        code = domain.normalize_code(raw_code)
        async with self._pool.acquire() as conn:
            window = await self._take_attempt(conn, user_id, address)
        reason = "ERROR"
        try:
            tier = await self.user_tier(user_id)
            async with self._pool.acquire() as conn:
                refusal = await repo.refusal(conn, code, user_id, tier)
                coupon = await repo.get_coupon(conn, code) if refusal is not None else None
            reason = "COUPON_NOT_FOUND" if refusal is None else refusal
        finally:
            await self._settle_attempt(user_id, window, address, reason)
        return code, reason, coupon

    async def redeem(self, user_id: str, raw_code: str, request_id: str, address: str = "") -> Redemption:
        code = domain.normalize_code(raw_code)
        fp = domain.fingerprint("redeem", code=code)
        async with self._pool.acquire() as conn:
            existing = await repo.redemption_by_request(conn, user_id, request_id)
            if existing is None:
                window = await self._take_attempt(conn, user_id, address)
        if existing is not None:
            return await self._resume(existing, fp, request_id)
        refusal = "ERROR"
        try:
            tier = await self.user_tier(user_id)
            redemption_id = uuid7()
            async with self._pool.acquire() as conn:
                try:
                    refusal = await repo.claim(conn, code, user_id, tier, redemption_id, request_id, fp)
                except asyncpg.UniqueViolationError:
                    raced = await repo.redemption_by_request(conn, user_id, request_id)
                    assert raced is not None
                    return await self._resume(raced, fp, request_id)
                claimed = None if refusal else await repo.get_redemption(conn, str(redemption_id))
        finally:
            await self._settle_attempt(user_id, window, address, refusal)
        if refusal:
            raise domain.refusal_error(refusal, code)
        assert claimed is not None
        log.info("coupon claimed", extra={"code": code, "user_id": user_id, "redemption_id": str(redemption_id)})
        return await self.complete(claimed)

    async def _resume(self, existing: Redemption, fp: str, request_id: str) -> Redemption:
        """A retry of an earlier redemption request: its result, driving it to completion if pending."""
        if not domain.same_digest(existing.fingerprint, fp):
            raise domain.request_id_reused(request_id)
        if existing.status is Status.FAILED:
            raise _failed(existing)
        if existing.status is Status.PENDING:
            return await self.complete(existing)
        return existing

    async def complete(self, redemption: Redemption) -> Redemption:
        """Makes the grant for a pending redemption in credits (idempotent by redemption id) and records it."""
        rid = redemption.redemption_id
        try:
            if redemption.kind is Kind.CREDIT_GRANT:
                request = credits_pb.AllocateRequest(
                    user_id=redemption.user_id,
                    amount_nanos=redemption.credits_nanos,
                    reason=f"coupon {redemption.code}",
                    request_id=rid,
                    source=credits_pb.GRANT_SOURCE_COUPON,
                    reference_id=rid,
                )
                if redemption.credits_expire_at is not None:
                    request.expires_at.CopyFrom(to_timestamp(redemption.credits_expire_at))
                granted = await self._credits.stub.Allocate(request, timeout=self._credits.timeout)
                async with self._pool.acquire() as conn:
                    await repo.complete_credit_grant(
                        conn, rid, granted.transaction.transaction_id, granted.transaction.balance_after_nanos
                    )
            else:
                changed = await self._credits.stub.SetTier(
                    credits_pb.SetTierRequest(
                        user_id=redemption.user_id,
                        tier=redemption.trial_tier,
                        request_id=rid,
                        reason=f"coupon {redemption.code}: {redemption.trial_days}-day trial",
                    ),
                    timeout=self._credits.timeout,
                )
                async with self._pool.acquire() as conn:
                    await repo.complete_trial(conn, rid, changed.previous_tier or "trial", changed.change_id)
        except grpc.aio.AioRpcError as error:
            detail = f"{error.code().name}: {error.details()}"
            async with self._pool.acquire() as conn:
                if error.code() in _PERMANENT:
                    await repo.fail_redemption(conn, rid, detail)
                    log.warning("coupon grant refused; redemption failed", extra={"redemption_id": rid})
                    failed = await repo.get_redemption(conn, rid)
                    assert failed is not None
                    raise _failed(failed) from None
                await repo.note_grant_failure(conn, rid, detail)
            log.warning("coupon grant pending", extra={"redemption_id": rid, "error": error.code().name})
            raise DomainError(
                "REDEMPTION_PENDING",
                "the coupon is reserved for you but the credits service did not answer; retry with the same request_id",
                code=Code.UNAVAILABLE,
                domain=domain.DOMAIN,
                metadata={"redemption_id": rid},
            ) from None
        async with self._pool.acquire() as conn:
            done = await repo.get_redemption(conn, rid)
        assert done is not None
        return done

    # --- background ------------------------------------------------------------------------

    async def recover_pending(self, older_than_seconds: float = 10.0, batch: int = 100) -> int:
        """Completes redemptions left pending by a failure between the two steps."""
        async with self._pool.acquire() as conn:
            pending = await repo.pending_redemptions(conn, older_than_seconds, batch)
        healed = 0
        for redemption in pending:
            try:
                await self.complete(redemption)
                healed += 1
            except DomainError as error:
                log.warning(
                    "recovery did not complete a redemption",
                    extra={"redemption_id": redemption.redemption_id, "reason": error.reason},
                )
        return healed

    async def prune_attempts(self) -> int:
        """Drops attempt counters whose window has ended, so the table holds only live windows."""
        async with self._pool.acquire() as conn:
            return await repo.prune_attempts(conn, self._window)

    async def revert_due_trials(self, batch: int = 100) -> int:
        """Returns users whose tier trial has ended to the tier they had before it.

        The revert is a conditional SetTier: it applies only while the trial's own tier change is still the
        account's latest (credits checks this under the account lock, so there is no window between a check
        and the change). A user who changed tier since — bought the trial's tier, was moved by an admin —
        keeps their choice. Each trial is reverted on its own: one that fails is noted and retried later with
        backoff, and the pass goes on with the others.
        """
        async with self._pool.acquire() as conn:
            due = await repo.trials_due(conn, batch)
        reverted = 0
        for trial in due:
            try:
                note = await self._revert(trial)
            except Exception as error:  # isolate: the next trial must not wait for this one
                detail = (
                    f"{error.code().name} {_reason(error)}: {error.details()}"
                    if isinstance(error, grpc.aio.AioRpcError)
                    else type(error).__name__
                )
                async with self._pool.acquire() as conn:
                    await repo.note_revert_failure(conn, trial.redemption_id, detail, self._revert_max_delay)
                log.warning(
                    "trial revert failed; will retry",
                    extra={"redemption_id": trial.redemption_id, "attempt": trial.revert_attempts + 1},
                )
                continue
            async with self._pool.acquire() as conn:
                await repo.mark_reverted(conn, trial.redemption_id, note)
            if note.startswith("returned"):
                reverted += 1
        return reverted

    async def _revert(self, trial: Redemption) -> str:
        """Reverts one ended trial; returns what happened (for the redemption's note)."""
        if not trial.trial_change_id:
            # Completed before tier changes had ids: the old rule (still on the trial tier) is all we have.
            if await self.user_tier(trial.user_id) != trial.trial_tier:
                return "left as is: the tier was changed during the trial"
        if not trial.previous_tier or trial.previous_tier == trial.trial_tier:
            return "left as is: nothing to return to"
        try:
            await self._credits.stub.SetTier(
                credits_pb.SetTierRequest(
                    user_id=trial.user_id,
                    tier=trial.previous_tier,
                    request_id=f"{trial.redemption_id}:revert",
                    reason=f"coupon {trial.code}: trial ended",
                    expected_change_id=trial.trial_change_id,
                ),
                timeout=self._credits.timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.FAILED_PRECONDITION and _reason(error) == "TIER_CHANGED_SINCE":
                return "left as is: the tier was changed since the trial began"
            raise
        return f"returned to {trial.previous_tier}"


def _reason(error: grpc.aio.AioRpcError) -> str:
    info = error_info_from(error)
    return info.reason if info is not None else ""


def _failed(redemption: Redemption) -> DomainError:
    return DomainError(
        "REDEMPTION_FAILED",
        "the grant for this redemption was refused; the coupon was not used",
        code=Code.FAILED_PRECONDITION,
        domain=domain.DOMAIN,
        metadata={"redemption_id": redemption.redemption_id},
    )


def parse_page_token(token: str) -> tuple[datetime, str] | None:
    """Coupons pages continue after (created_at, code)."""
    position = pagetoken.decode("coupons.ListCoupons", token, 2)
    return (pagetoken.position_time(position[0]), position[1]) if position else None


def page_token(coupon: Coupon) -> str:
    return pagetoken.encode("coupons.ListCoupons", coupon.created_at.isoformat(), coupon.code)


def parse_redemption_token(token: str) -> str | None:
    """Redemption pages continue before a redemption id."""
    position = pagetoken.decode("coupons.ListRedemptions", token, 1)
    return pagetoken.position_uuid(position[0]) if position else None


def redemption_token(redemption: Redemption) -> str:
    return pagetoken.encode("coupons.ListRedemptions", redemption.redemption_id)
