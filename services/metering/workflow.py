"""Metering use cases: authorize, track (record first, then charge from the outbox), recover, report.

Tracking records the event(s) in metering's own database first — validated as
a whole, all or nothing, exact repeats recognised by event id and fingerprint —
and answers from that record. Pricing (from the local price book) and charging
(one multi-account ledger call per gathered chunk) follow through the charger;
the answer waits for them only as long as the caller's deadline allows. An
event whose charge could not happen now stays RECORDED and is charged by the
recovery pass (any replica, rows claimed with SKIP LOCKED); one that can never
be charged is PARKED with a reason after bounded retries. See
docs/usage-pipeline.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as cpb
from creditmeter.openrouter.v1 import openrouter_pb2_grpc as opb_grpc

from services.common import pagetoken
from services.common.batching import Grouper
from services.common.errors import Code, DomainError, invalid, not_found
from services.common.idempotency import StoredResponses
from services.common.rpcstatus import error_info_from, relay
from services.credits.client import CreditsClient
from services.metering import domain
from services.metering import repository as repo
from services.metering.domain import Event
from services.metering.pipeline import (
    EVENT_REFUSALS,
    RETRYABLE,
    SMALL_CALL_EVENTS,
    AccountDirectory,
    Charger,
    EventRecorder,
    HoldBatcher,
    Outcome,
    PriceBookCache,
    Unavailable,
    Work,
)
from services.openrouter import pricebook
from services.openrouter.domain import Quote, Service
from services.openrouter.pricebook import PriceBook

log = logging.getLogger(__name__)

#: How long a busy group of holds waits for more before its CreateHolds call (a lone hold never waits).
HOLD_LINGER_SECONDS = 0.003
#: How long a busy group of Authorize's steps in metering's database (claims, answers) waits for more.
STEP_LINGER_SECONDS = 0.001

_STATE_OF_STATUS = {"RECORDED": "PENDING", "CHARGED": "CHARGED", "SHORTFALL": "SHORTFALL", "PARKED": "PARKED"}


@dataclass(frozen=True)
class Tracked:
    event_id: str
    cost_nanos: int
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    duplicate: bool
    price_version: str
    #: PENDING, CHARGED, SHORTFALL or PARKED.
    state: str = "PENDING"


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    reason: str
    hold_id: str
    held_nanos: int
    estimated_cost_nanos: int
    calls_used: int
    calls_limit: int
    calls_remaining: int
    price_version: str


@dataclass
class Totals:
    event_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    quantity: int = 0
    cost_nanos: int = 0
    charged_nanos: int = 0
    shortfall_nanos: int = 0

    def add(self, row: asyncpg.Record) -> None:
        for name in (
            "event_count",
            "input_tokens",
            "output_tokens",
            "quantity",
            "cost_nanos",
            "charged_nanos",
            "shortfall_nanos",
        ):
            setattr(self, name, getattr(self, name) + row[name])


def _work(event: Event, cost: int | None, version: str, attempts: int = 0) -> Work:
    return Work(
        event.event_id,
        event.user_id,
        event.service,
        event.model,
        event.input_tokens,
        event.output_tokens,
        event.quantity,
        event.byok,
        event.hold_id,
        cost,
        version,
        attempts,
    )


def _work_of_row(row: asyncpg.Record) -> Work:
    return Work(
        row["event_id"],
        row["user_id"],
        row["service"],
        row["model"],
        row["input_tokens"],
        row["output_tokens"],
        row["quantity"],
        row["byok"],
        row["hold_id"],
        row["cost_nanos"],
        row["price_version"],
        row["attempts"],
    )


#: Quotes already computed, by everything a price depends on (the book's version included): the same
#: usage shape recurs constantly and exact decimal pricing is the costliest per-event step of a batch.
_QUOTES: dict[tuple[str, str, bool, str, str, int, int, int, bool], Quote] = {}
_QUOTES_MAX = 100_000


def _quote(book: PriceBook, tier: str, w: Event | Work) -> Quote:
    byok_allowed = tier in book.byok_tiers
    key = (book.version, tier, byok_allowed, w.service, w.model, w.input_tokens, w.output_tokens, w.quantity, w.byok)
    quote = _QUOTES.get(key)
    if quote is None:
        quote = pricebook.price(
            book, tier, Service(w.service), w.model, w.input_tokens, w.output_tokens, w.quantity, w.byok
        )
        if len(_QUOTES) >= _QUOTES_MAX:
            _QUOTES.clear()
        _QUOTES[key] = quote
    return quote


class Metering:
    def __init__(
        self,
        pool: asyncpg.Pool,
        credits: CreditsClient,
        pricing: opb_grpc.OpenRouterServiceStub,
        timeout: float,
        *,
        max_attempts: int = 5,
        max_backoff_seconds: float = 20.0,
        claim_lease_seconds: float = 30.0,
        chunk: int = 2000,
        parallel: int = 2,
        linger_seconds: float = 0.005,
    ) -> None:
        self._pool = pool
        self._credits = credits
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff_seconds
        self._lease = claim_lease_seconds
        self.prices = PriceBookCache(pricing, timeout)
        self.accounts = AccountDirectory(credits.stub, timeout)
        # The events of single calls and small batches are charged apart from those of large batches, each
        # kind with its own slots, so that neither waits behind the other. Small ones go one chunk at a time:
        # the next chunk gathers while one is in the ledger, so each ledger call carries more of them (see
        # docs/usage-pipeline.md, Throughput notes, for the measurement).
        self.charger = Charger(self.charge, chunk=chunk, parallel=1, linger=linger_seconds)
        self.bulk_charger = Charger(self.charge, chunk=chunk, parallel=parallel, linger=linger_seconds)
        self.recorder = EventRecorder(self._record)
        # Authorize calls are all small: one group of each of their steps at a time, for the same reason.
        # While busy, a group of holds also waits a little to fill: each CreateHolds call costs both processes
        # an RPC, which dwarfs the holds themselves (docs/usage-pipeline.md, "Lingering groups").
        self.holds = HoldBatcher(credits.stub, timeout, max_in_flight=1, linger=HOLD_LINGER_SECONDS)
        self.responses = StoredResponses(pool)
        # Authorize's two steps in metering's database, shared by concurrent calls (group commit); two calls
        # with one (user, request id) never share a group.
        self._begins: Grouper[tuple[str, str, datetime, int, str], asyncpg.Record] = Grouper(
            self._begin_group,
            keys=lambda step: [step[:2]],
            order=lambda step: step[:2],  # claims, then quota rows, locked in (user, request id) order
            max_in_flight=1,
            alone_on=RETRYABLE,
            linger=STEP_LINGER_SECONDS,
        )
        self._authorizing: dict[tuple[str, str], list[Any]] = {}
        self._finishes: Grouper[tuple[str, str, str, bytes, bool], bool] = Grouper(
            self._finish_group,
            keys=lambda step: [step[:2]],
            order=lambda step: step[:2],
            max_in_flight=1,
            alone_on=RETRYABLE,
            linger=STEP_LINGER_SECONDS,
        )

    # --- the other contexts -----------------------------------------------------------------

    async def _account(self, user_id: str) -> tuple[str, datetime]:
        """(tier, start of the billing period); a user without an account is on trial from now."""
        try:
            state = (await self.accounts.get({user_id}))[user_id]
        except Unavailable:
            raise DomainError(
                "CREDITS_UNAVAILABLE",
                "the credits service could not be reached",
                code=Code.UNAVAILABLE,
                domain=domain.DOMAIN,
            ) from None
        return state.tier, state.period_start

    async def _estimate(self, tier: str, probe: Event) -> tuple[Quote, str]:
        """A price from the local book; an unknown model gets one on-demand refresh before it is refused."""
        try:
            book = await self.prices.get()
            try:
                return _quote(book, tier, probe), book.version
            except DomainError as error:
                if error.reason != "MODEL_NOT_FOUND":
                    raise
            book = await self.prices.refresh_for_unknown_model()
            return _quote(book, tier, probe), book.version
        except Unavailable:
            raise DomainError(
                "PRICES_UNAVAILABLE", "no price book is available yet", code=Code.UNAVAILABLE, domain=domain.DOMAIN
            ) from None

    async def refresh_prices(self) -> int:
        """For the schedule: keeps the local price book current; a failure keeps the old one."""
        try:
            await self.prices.get()
        except Unavailable as error:
            log.warning("price book not refreshed", extra={"reason": str(error)})
        return 0

    # --- authorize ------------------------------------------------------------------------------

    async def authorize(self, probe: Event, max_output_tokens: int, ttl: int, request_id: str) -> Authorization:
        """Quota, a local price estimate and a credits hold: two statements in metering's database and one
        ledger call; no pricing call (the price book is local) and no balance read (the tier is cached).

        Copies of one (user, request id) arriving together run one after the other in this process: the
        later ones replay the first's answer instead of counting a call of the quota each meanwhile."""
        key = (probe.user_id, request_id)
        entry = self._authorizing.get(key)
        if entry is None:
            entry = self._authorizing[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                return await self._authorize(probe, max_output_tokens, ttl, request_id)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._authorizing[key]

    async def _authorize(self, probe: Event, max_output_tokens: int, ttl: int, request_id: str) -> Authorization:
        fp = hashlib.sha256(json.dumps([probe.fingerprint(), max_output_tokens, ttl]).encode()).hexdigest()
        tier_id, period_start = await self._account(probe.user_id)
        tier = (await self._credits.tiers())[tier_id]
        estimate, version = await self._estimate(tier_id, dataclasses.replace(probe, output_tokens=max_output_tokens))
        window = domain.quota_window(tier.api_call_period, period_start, datetime.now(UTC))
        limit = int(tier.api_call_limit)
        begun = await self._begins.submit((probe.user_id, request_id, window, limit, fp))
        if begun["fingerprint"] is not None:
            if begun["fingerprint"] != fp:
                raise DomainError(
                    "REQUEST_ID_REUSED",
                    "this request_id was used for a different authorization",
                    code=Code.ALREADY_EXISTS,
                    domain=domain.DOMAIN,
                )
            return Authorization(**json.loads(bytes(begun["response"])))
        used = begun["counted"]
        if used is None:
            result = Authorization(
                False, "QUOTA_EXCEEDED", "", 0, estimate.total_nanos, int(begun["current"]), limit, 0, version
            )
            return await self._remember(probe.user_id, request_id, fp, result, refused=True)
        hold_id, held = "", 0
        if estimate.total_nanos > 0:
            refusal: DomainError | None = None
            try:
                hold = await self.holds.hold(
                    cpb.CreateHoldRequest(
                        user_id=probe.user_id,
                        amount_nanos=estimate.total_nanos,
                        ttl_seconds=ttl,
                        request_id=f"authorize:{request_id}",
                        reason=f"{probe.service} call",
                        reference_id=request_id,
                    )
                )
                hold_id, held = hold.hold_id, estimate.total_nanos
            except grpc.aio.AioRpcError as error:
                refusal = relay(error, domain.DOMAIN)
            except DomainError as error:
                refusal = error
            if refusal is not None:
                if refusal.reason != "INSUFFICIENT_CREDITS":
                    # No answer to store: the count goes back and the claim stays open for a retry.
                    async with self._pool.acquire() as conn:
                        await repo.release_claim(conn, probe.user_id, request_id)
                    raise refusal
                result = Authorization(
                    False,
                    "INSUFFICIENT_CREDITS",
                    "",
                    0,
                    estimate.total_nanos,
                    used - 1,
                    limit,
                    max(0, limit - used + 1) if limit else 0,
                    version,
                )
                return await self._remember(probe.user_id, request_id, fp, result, refused=True)
        result = Authorization(
            True,
            "",
            hold_id,
            held,
            estimate.total_nanos,
            used,
            limit,
            max(0, limit - used) if limit else 0,
            version,
        )
        return await self._remember(probe.user_id, request_id, fp, result, refused=False)

    async def _begin_group(
        self, steps: list[tuple[str, str, datetime, int, str]]
    ) -> list[asyncpg.Record | BaseException]:
        async with self._pool.acquire() as conn:
            return list(await repo.begin_authorizations(conn, steps))

    async def _finish_group(self, steps: list[tuple[str, str, str, bytes, bool]]) -> list[bool | BaseException]:
        async with self._pool.acquire() as conn:
            stored = await repo.finish_authorizations(conn, steps)
        return [(step[0], step[1]) in stored for step in steps]

    async def _remember(
        self, user_id: str, request_id: str, fp: str, result: Authorization, *, refused: bool
    ) -> Authorization:
        """Stores the answer on the request id's claim (first answer wins; a refusal gives the claim's count
        back). An attempt with the same request id that answered first answers instead."""
        body = json.dumps(dataclasses.asdict(result)).encode()
        if not await self._finishes.submit((user_id, request_id, fp, body, refused)):
            async with self._pool.acquire() as conn:
                saved = await repo.find_authorization(conn, user_id, request_id)
            assert saved is not None
            return Authorization(**json.loads(saved[1]))
        return result

    # --- track: record first ----------------------------------------------------------------------

    async def _price_at_door(self, events: list[Event]) -> tuple[list[int | None], list[str]]:
        """Prices the batch locally when the book and the tiers are at hand; None where not (priced later).

        Refuses (the whole batch) an event that no price book will ever accept: an
        unknown model after one on-demand refresh, BYOK on a tier without it, or a
        cost beyond MAX_EVENT_COST_NANOS.
        """
        unpriced: tuple[list[int | None], list[str]] = ([None] * len(events), [""] * len(events))
        try:
            states = await self.accounts.get({e.user_id for e in events})
            book = await self.prices.get()
        except Unavailable:
            return unpriced
        costs: list[int | None] = []
        versions: list[str] = []
        refreshed = False
        for index, event in enumerate(events):
            tier = states[event.user_id].tier
            try:
                try:
                    quote = _quote(book, tier, event)
                except DomainError as error:
                    if error.reason != "MODEL_NOT_FOUND" or refreshed:
                        raise
                    refreshed = True
                    try:
                        book = await self.prices.refresh_for_unknown_model()
                    except Unavailable:
                        # OpenRouter or its context is away: record it, price it later.
                        costs.append(None)
                        versions.append("")
                        continue
                    quote = _quote(book, tier, event)
                if quote.total_nanos > domain.MAX_EVENT_COST_NANOS:
                    raise invalid(
                        "COST_OUT_OF_RANGE",
                        f"this usage would cost {quote.total_nanos} nanos; one event may cost at most "
                        f"{domain.MAX_EVENT_COST_NANOS}",
                        field="quantity",
                    )
            except DomainError as error:
                error.metadata["index"] = str(index)
                raise
            costs.append(quote.total_nanos)
            versions.append(book.version)
        return costs, versions

    async def track(self, events: list[Event], wait_seconds: float = 0.0) -> list[Tracked]:
        """Records the batch (all or nothing) and answers from the record; waits up to ``wait_seconds``
        for the charge. Results in input order."""
        first: dict[str, Event] = {}
        for index, event in enumerate(events):
            seen = first.get(event.event_id)
            if seen is None:
                first[event.event_id] = event
            elif seen.fingerprint() != event.fingerprint():
                error = domain.event_id_reused(event.event_id)
                error.metadata["index"] = str(index)
                raise error
        unique = list(first.values())
        costs, versions = await self._price_at_door(unique)
        try:
            rows = await self.recorder.record(unique, costs, versions)
        except repo.EventIdReused as reused:
            raise domain.event_id_reused(reused.event_id) from None
        recorded = {r["event_id"]: r for r in rows}
        to_charge = [
            _work(first[i], recorded[i]["cost_nanos"], recorded[i]["price_version"])
            for i in first
            if recorded[i]["status"] == "RECORDED"
        ]
        charger = self.charger if len(events) <= SMALL_CALL_EVENTS else self.bulk_charger
        futures = dict(zip([w.event_id for w in to_charge], charger.submit(to_charge), strict=True))
        if futures and wait_seconds > 0:
            await asyncio.wait(list(futures.values()), timeout=wait_seconds)
        out = []
        answered: set[str] = set()
        for event in events:
            row = recorded[event.event_id]
            duplicate = not row["is_new"] or event.event_id in answered
            answered.add(event.event_id)
            future = futures.get(event.event_id)
            outcome = future.result() if future is not None and future.done() else None
            if outcome is not None:
                out.append(
                    Tracked(
                        event.event_id,
                        outcome.cost_nanos,
                        outcome.charged_nanos,
                        outcome.shortfall_nanos,
                        outcome.transaction_id,
                        duplicate,
                        outcome.price_version,
                        outcome.state,
                    )
                )
            else:
                out.append(
                    Tracked(
                        event.event_id,
                        row["cost_nanos"] or 0,
                        row["charged_nanos"],
                        row["shortfall_nanos"],
                        row["transaction_id"],
                        duplicate,
                        row["price_version"],
                        _STATE_OF_STATUS[row["status"]],
                    )
                )
        return out

    async def _record(self, events: list[Event], costs: list[int | None], versions: list[str]) -> list[Any]:
        async with self._pool.acquire() as conn:
            return await repo.record_events(conn, events, costs, versions)

    # --- charge: from the outbox ------------------------------------------------------------------

    async def charge(self, works: list[Work]) -> dict[str, Outcome]:
        """Prices what is not priced yet, then charges everything priced in one ledger call.

        Returns the outcome of each event that settled (CHARGED, SHORTFALL, PARKED);
        the others stay RECORDED with their next attempt scheduled.
        """
        outcomes: dict[str, Outcome] = {}
        priced = [w for w in works if w.cost_nanos is not None]
        unpriced = [w for w in works if w.cost_nanos is None]
        if unpriced:
            priced += await self._price_late(unpriced, outcomes)
        if priced:
            outcomes.update(await self._charge_priced(priced))
        return outcomes

    async def _price_late(self, works: list[Work], outcomes: dict[str, Outcome]) -> list[Work]:
        try:
            states = await self.accounts.get({w.user_id for w in works})
            book = await self.prices.get()
        except Unavailable as error:
            async with self._pool.acquire() as conn:
                await repo.retry_later(conn, [w.event_id for w in works], str(error), self._max_backoff)
            return []
        if any(w.service == "LLM" and w.model not in book.models for w in works):
            try:
                book = await self.prices.refresh_for_unknown_model()
            except Unavailable as error:
                async with self._pool.acquire() as conn:
                    await repo.retry_later(conn, [w.event_id for w in works], str(error), self._max_backoff)
                return []
        priced: list[Work] = []
        parked: dict[str, str] = {}
        for w in works:
            try:
                quote = _quote(book, states[w.user_id].tier, w)
            except DomainError as error:
                parked[w.event_id] = error.reason
                continue
            # Recorded usage is always chargeable: a cost beyond the per-event maximum is capped
            # there (the ledger charges at most the balance anyway; the rest is shortfall).
            cost = min(quote.total_nanos, domain.MAX_EVENT_COST_NANOS)
            priced.append(dataclasses.replace(w, cost_nanos=cost, price_version=book.version))
        async with self._pool.acquire() as conn:
            if parked:
                await repo.park(conn, list(parked), list(parked.values()))
            stored = (
                await repo.set_prices(
                    conn,
                    [w.event_id for w in priced],
                    [w.cost_nanos or 0 for w in priced],
                    [w.price_version for w in priced],
                )
                if priced
                else {}
            )
        for event_id, reason in parked.items():
            outcomes[event_id] = Outcome("PARKED", 0, "", park_reason=reason)
        return [
            dataclasses.replace(w, cost_nanos=stored[w.event_id][0], price_version=stored[w.event_id][1])
            for w in priced
            if w.event_id in stored and stored[w.event_id][0] is not None
        ]

    async def _charge_priced(self, works: list[Work]) -> dict[str, Outcome]:
        """One ChargeUsageBatch for the chunk; a refusal that is not transient is bisected down to the
        event that causes it, which alone is retried and, after max_attempts, parked."""
        request = cpb.ChargeUsageBatchRequest(
            items=[
                cpb.UsageItem(
                    user_id=w.user_id,
                    event_id=w.event_id,
                    amount_nanos=w.cost_nanos or 0,
                    hold_id=w.hold_id,
                    service=w.service,
                    model=w.model,
                    price_version=w.price_version,
                )
                for w in works
            ]
        )
        try:
            answer = await self._credits.stub.ChargeUsageBatch(request, timeout=max(self._timeout, 30))
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            reason = info.reason if info is not None else error.code().name
            if error.code() not in EVENT_REFUSALS:
                async with self._pool.acquire() as conn:
                    await repo.retry_later(conn, [w.event_id for w in works], reason, self._max_backoff)
                return {}
            if len(works) > 1:
                half = len(works) // 2
                left, right = await asyncio.gather(self._charge_priced(works[:half]), self._charge_priced(works[half:]))
                return left | right
            (w,) = works
            async with self._pool.acquire() as conn:
                if w.attempts + 1 >= self._max_attempts:
                    await repo.park(conn, [w.event_id], [reason])
                    log.warning("usage event parked", extra={"event_id": w.event_id, "reason": reason})
                    return {w.event_id: Outcome("PARKED", w.cost_nanos or 0, w.price_version, park_reason=reason)}
                await repo.retry_later(conn, [w.event_id], reason, self._max_backoff)
            return {}
        outcomes: dict[str, Outcome] = {}
        settled: list[tuple[Work, cpb.UsageItemResult]] = []
        reused: list[str] = []
        for w, result in zip(works, answer.results, strict=True):
            if result.outcome == cpb.USAGE_OUTCOME_REUSED:
                reused.append(w.event_id)
                outcomes[w.event_id] = Outcome(
                    "PARKED", w.cost_nanos or 0, w.price_version, park_reason="LEDGER_EVENT_ID_REUSED"
                )
            else:
                settled.append((w, result))
                outcomes[w.event_id] = Outcome(
                    "SHORTFALL" if result.shortfall_nanos > 0 else "CHARGED",
                    w.cost_nanos or 0,
                    w.price_version,
                    result.charged_nanos,
                    result.shortfall_nanos,
                    result.transaction_id,
                )
        async with self._pool.acquire() as conn:
            if settled:
                await repo.settle(
                    conn,
                    [w.event_id for w, _ in settled],
                    [r.charged_nanos for _, r in settled],
                    [r.shortfall_nanos for _, r in settled],
                    [r.transaction_id for _, r in settled],
                )
            if reused:
                await repo.park(conn, reused, ["LEDGER_EVENT_ID_REUSED"] * len(reused))
        for w, _ in settled:
            if w.hold_id:
                # The account's holds changed; its next authorization must not trust a stale period either.
                self.accounts.forget(w.user_id)
        return outcomes

    async def recover(self, batch: int = 2000, max_rounds: int = 50) -> int:
        """Charges due RECORDED events (crash, unreachable dependency, backoff over): claims them with
        SKIP LOCKED so any number of replicas share the work. Returns how many were claimed."""
        total = 0
        for _ in range(max_rounds):
            async with self._pool.acquire() as conn:
                rows = await repo.claim_due(conn, batch, self._lease)
            if not rows:
                break
            total += len(rows)
            await self.charge([_work_of_row(r) for r in rows])
            if len(rows) < batch:
                break
        return total

    # --- reports ---------------------------------------------------------------------------------

    async def usage(self, user_id: str, start: datetime | None, end: datetime | None) -> list[asyncpg.Record]:
        first, last = domain.day_range(start, end, datetime.now(UTC).date())
        async with self._pool.acquire() as conn:
            return await repo.usage_rows(conn, user_id, first, last)

    async def quota(self, user_id: str) -> tuple[int, int, datetime]:
        tier_id, period_start = await self._account(user_id)
        tier = (await self._credits.tiers())[tier_id]
        window = domain.quota_window(tier.api_call_period, period_start, datetime.now(UTC))
        async with self._pool.acquire() as conn:
            return await repo.calls_in(conn, user_id, window), int(tier.api_call_limit), window

    async def events(self, user_id: str, before: tuple[datetime, str] | None, limit: int) -> list[asyncpg.Record]:
        async with self._pool.acquire() as conn:
            return await repo.list_events(conn, user_id, before, limit)

    async def event(self, event_id: str) -> asyncpg.Record | None:
        async with self._pool.acquire() as conn:
            return (await repo.events_by_id(conn, [event_id])).get(event_id)

    async def parked(self, user_id: str, before: tuple[datetime, str] | None, limit: int) -> list[asyncpg.Record]:
        async with self._pool.acquire() as conn:
            return await repo.list_parked(conn, user_id, before, limit)

    async def pending(
        self, user_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[asyncpg.Record], int]:
        async with self._pool.acquire() as conn:
            return await repo.list_pending(conn, user_id, after, limit)

    async def retry_parked(self, event_ids: list[str], wait_seconds: float) -> list[tuple[asyncpg.Record, bool]]:
        """Puts the parked ones of ``event_ids`` back into the outbox and charges them at once, waiting up to
        ``wait_seconds``; each event as it stands then, with whether it was retried, in input order.

        An unknown id refuses the request before anything commits. The requeued events are claimed for a
        lease, like the recovery pass's claims: if this process dies before settling them, the outbox does.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            known = await repo.lock_events(conn, event_ids)
            missing = [i for i in event_ids if i not in known]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise not_found(
                    "EVENT_NOT_FOUND",
                    f"no usage event {missing[0]!r}{more}",
                    event_id=missing[0],
                    missing=str(len(missing)),
                )
            requeued = await repo.requeue_parked(conn, event_ids, self._lease)
        retried = {r["event_id"] for r in requeued}
        if requeued:
            log.info("parked usage events retried", extra={"events": len(requeued)})
            futures = self.bulk_charger.submit([_work_of_row(r) for r in requeued])
            if wait_seconds > 0:
                await asyncio.wait(futures, timeout=wait_seconds)
        async with self._pool.acquire() as conn:
            rows = await repo.events_by_id(conn, event_ids)
        return [(rows[i], i in retried) for i in event_ids]


def summarize(rows: list[asyncpg.Record], key: Any) -> dict[Any, Totals]:
    out: dict[Any, Totals] = defaultdict(Totals)
    for row in rows:
        out[key(row)].add(row)
    return out


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_event_token(token: str) -> tuple[datetime, str] | None:
    """Event pages continue after (recorded_at, event_id)."""
    position = pagetoken.decode("metering.ListEvents", token, 2)
    return (pagetoken.position_time(position[0]), position[1]) if position else None


def event_token(row: asyncpg.Record) -> str:
    return pagetoken.encode("metering.ListEvents", row["recorded_at"].isoformat(), row["event_id"])


def check_hold_id(hold_id: str) -> str:
    if hold_id:
        try:
            uuid.UUID(hold_id)
        except ValueError:
            raise invalid("INVALID_HOLD_ID", "hold_id must be the id Authorize returned", field="hold_id") from None
    return hold_id
