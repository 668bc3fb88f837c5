"""The usage pipeline's moving parts: local prices, account states, and the outbox charger.

Nothing here is on the path that records an event: recording needs only
metering's own database. Prices come from a local copy of the openrouter
context's price book; tiers and billing periods from a short-lived cache of
the credits context's account states; charges go out through the
:class:`Charger`, which gathers recorded events across concurrent requests
and charges each gathered chunk with one multi-account ledger call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as cpb
from creditmeter.credits.v1 import credits_pb2_grpc as cpb_grpc
from creditmeter.openrouter.v1 import openrouter_pb2 as opb
from creditmeter.openrouter.v1 import openrouter_pb2_grpc as opb_grpc

from services.common.batching import Grouper
from services.common.rpcstatus import error_of
from services.metering.repository import EventIdReused
from services.openrouter import pricebook
from services.openrouter.pricebook import PriceBook

log = logging.getLogger(__name__)

#: gRPC codes by which the ledger refuses the items themselves: only these can make an event a poison
#: event (found by bisecting the chunk, retried with backoff, then parked). Every other failure — the
#: ledger down, slow, busy, misconfigured or a different version — is the ledger's, not the event's:
#: it is retried with backoff for as long as it takes and never parks anything.
EVENT_REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
}


#: Database refusals of a whole group of recordings after which each is recorded again on its own.
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


GROUP_REFUSALS = (EventIdReused, *RETRYABLE)


class Unavailable(Exception):
    """A dependency could not answer now; the work is retried later, never dropped."""


@dataclass(frozen=True)
class AccountState:
    tier: str
    period_start: datetime
    period_end: datetime | None


class PriceBookCache:
    """Metering's local, versioned copy of the published price book.

    Refreshed when older than ``max_age`` (by version: an unchanged book costs
    a tiny answer), and on demand — at most one refresh in flight at a time —
    when an event names a model the copy does not know.
    """

    def __init__(self, stub: opb_grpc.OpenRouterServiceStub, timeout: float, max_age: float = 30.0) -> None:
        self._stub = stub
        self._timeout = timeout
        self._max_age = max_age
        self.book: PriceBook | None = None
        self._fetched = 0.0
        self._inflight: asyncio.Task[PriceBook] | None = None
        self._inflight_refresh = False

    async def _fetch(self, refresh_catalog: bool) -> PriceBook:
        known = self.book.version if self.book is not None else ""
        try:
            answer = await self._stub.GetPriceBook(
                opb.GetPriceBookRequest(known_version=known, refresh_catalog=refresh_catalog),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"openrouter: {error.code().name}") from None
        if not answer.unchanged:
            self.book = pricebook.from_message(answer)
            log.info("price book loaded", extra={"price_version": self.book.version})
        self._fetched = time.monotonic()
        assert self.book is not None
        return self.book

    async def _shared(self, refresh_catalog: bool) -> PriceBook:
        task = self._inflight
        if task is None or task.done() or (refresh_catalog and not self._inflight_refresh):
            task = asyncio.ensure_future(self._fetch(refresh_catalog))
            self._inflight, self._inflight_refresh = task, refresh_catalog
        return await asyncio.shield(task)

    async def get(self) -> PriceBook:
        """The local book; fetched when missing, re-checked when stale (a stale book beats none)."""
        if self.book is None:
            return await self._shared(False)
        if time.monotonic() - self._fetched > self._max_age:
            try:
                return await self._shared(False)
            except Unavailable:
                return self.book
        return self.book

    async def refresh_for_unknown_model(self) -> PriceBook:
        """One on-demand refresh, the catalog synced from OpenRouter first (shared by concurrent callers)."""
        return await self._shared(True)


class AccountDirectory:
    """Tiers and billing periods of accounts, from credits in one call per batch, cached briefly.

    A tier change reaches pricing and quotas within ``ttl`` seconds; a cached
    period that has ended is looked up again at once.
    """

    def __init__(self, stub: cpb_grpc.CreditsServiceStub, timeout: float, ttl: float = 30.0) -> None:
        self._stub = stub
        self._timeout = timeout
        self._ttl = ttl
        self._cache: dict[str, tuple[float, AccountState]] = {}

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def get(self, user_ids: set[str]) -> dict[str, AccountState]:
        now_mono = time.monotonic()
        now = datetime.now(UTC)
        found: dict[str, AccountState] = {}
        missing: list[str] = []
        for user_id in user_ids:
            hit = self._cache.get(user_id)
            if hit and now_mono - hit[0] < self._ttl and (hit[1].period_end is None or hit[1].period_end > now):
                found[user_id] = hit[1]
            else:
                missing.append(user_id)
        for start in range(0, len(missing), 10_000):
            chunk = sorted(missing[start : start + 10_000])
            try:
                answer = await self._stub.GetAccountStates(
                    cpb.GetAccountStatesRequest(user_ids=chunk), timeout=self._timeout
                )
            except grpc.aio.AioRpcError as error:
                raise Unavailable(f"credits: {error.code().name}") from None
            for state in answer.accounts:
                if state.exists:
                    value = AccountState(
                        state.tier,
                        state.period_start.ToDatetime(tzinfo=UTC),
                        state.period_end.ToDatetime(tzinfo=UTC),
                    )
                    self._cache[state.user_id] = (now_mono, value)
                else:
                    # Not cached: the first hold or charge creates the account.
                    value = AccountState(state.tier or "trial", now, None)
                found[state.user_id] = value
        if len(self._cache) > 200_000:
            self._cache.clear()
        return found


@dataclass(frozen=True)
class Work:
    """One recorded event as the charger needs it."""

    event_id: str
    user_id: str
    service: str
    model: str
    input_tokens: int
    output_tokens: int
    quantity: int
    byok: bool
    hold_id: str
    cost_nanos: int | None
    price_version: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """Where an event ended after one charging attempt (state PENDING: it will be tried again)."""

    state: str
    cost_nanos: int
    price_version: str
    charged_nanos: int = 0
    shortfall_nanos: int = 0
    transaction_id: str = ""
    park_reason: str = ""


#: A charger that finished a chunk this recently is under load (see Charger's linger).
_BUSY_SECONDS = 0.1


class Charger:
    """Gathers recorded events from concurrent requests and charges them in chunks.

    While up to ``parallel`` chunks are in flight, newly recorded events wait
    in the queue and go out together in the next chunk — group commit: the
    busier it is, the more each ledger call carries; under load a small chunk
    also lingers a few milliseconds (``linger``) to fill up. Every event has
    one future, shared by every request waiting on it in this process, and
    answered once metering has settled its record of the charge, so that a
    caller told CHARGED reads CHARGED in its usage right after.
    """

    def __init__(
        self,
        process: Callable[[list[Work]], Awaitable[dict[str, Outcome]]],
        chunk: int = 2000,
        parallel: int = 4,
        linger: float = 0.0,
        fill: int = 64,
    ) -> None:
        self._process = process
        self._chunk = chunk
        self._linger = linger
        self._fill = fill
        self._last_done = 0.0
        self._slots = asyncio.Semaphore(parallel)
        self._queue: list[Work] = []
        self._futures: dict[str, asyncio.Future[Outcome | None]] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, items: list[Work]) -> list[asyncio.Future[Outcome | None]]:
        loop = asyncio.get_running_loop()
        out = []
        for item in items:
            future = self._futures.get(item.event_id)
            if future is None:
                future = loop.create_future()
                self._futures[item.event_id] = future
                self._queue.append(item)
            out.append(future)
        self._wake.set()
        return out

    async def run(self) -> None:
        """The charger loop (a background task of the server)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._slots.acquire()
                busy = time.monotonic() - self._last_done < _BUSY_SECONDS
                if busy and self._linger > 0 and len(self._queue) < self._fill:
                    # Each ledger call has a fixed cost (an RPC, planning, a commit, a settle) that a busy
                    # charger spreads over more events by letting a small chunk gather a little longer. An
                    # idle charger sends at once: a lone event is charged without waiting.
                    await asyncio.sleep(self._linger)
                chunk, self._queue = self._queue[: self._chunk], self._queue[self._chunk :]
                task = asyncio.create_task(self._run_chunk(chunk))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run_chunk(self, chunk: list[Work]) -> None:
        outcomes: dict[str, Outcome] = {}
        try:
            outcomes = await self._process(chunk)
        except Exception:
            # The events stay RECORDED; the recovery pass picks them up.
            log.exception("charging a chunk failed", extra={"events": len(chunk)})
        finally:
            self._last_done = time.monotonic()
            self._slots.release()
            for item in chunk:
                future = self._futures.pop(item.event_id, None)
                if future is not None and not future.done():
                    future.set_result(outcomes.get(item.event_id))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for future in self._futures.values():
            if not future.done():
                future.set_result(None)


#: Calls of at most this many events (single ``track`` calls, small batches) are recorded and charged in lanes
#: of their own, apart from large batches.
SMALL_CALL_EVENTS = 64

#: What one recording call hands its caller: the rows, in input order.
Recorded = list[Any]
#: One recording call: its events, their costs and price versions.
_Call = tuple[list[Any], list[int | None], list[str]]


class EventRecorder:
    """Group commit for recording: events of concurrent track calls share one ``record_events`` call.

    Each call to :meth:`record` is all or nothing on its own, as before. While
    earlier groups are in the database, newly arriving calls queue and go
    together (services/common/batching.py): one statement, one commit, one disk
    sync for all of them. Two calls that name the same event id never share a
    group (the later one waits for the next), so every call keeps its own
    duplicate answer. A group the database refuses as a whole — an event id
    reused with another payload (only that call must fail), a deadlock or a
    serialization failure — is recorded again call by call, each alone (retried
    on a deadlock), so one bad call never refuses another. A lone call runs at
    once.

    Small calls (single ``track`` calls, small batches: at most ``small_events``
    events) and large ones queue apart. Small calls go one group at a time
    (``small_in_flight``): while it is in the database the next group gathers,
    so each statement and commit carries more of them (measured with ``make
    bench --only tiers_compare,track``, three alternating rounds: PostgreSQL's
    CPU per ``track`` 12 % lower than with two small groups in flight, and the
    route's ratio 0.38-0.43 against 0.35-0.37). Large calls keep their own
    ``max_in_flight`` slots, so a 10,000-event batch never holds up single
    events, nor they it.
    """

    def __init__(
        self,
        record: Callable[[list[Any], list[int | None], list[str]], Awaitable[Recorded]],
        *,
        max_events: int = 5000,
        max_in_flight: int = 2,
        small_events: int = SMALL_CALL_EVENTS,
        small_in_flight: int = 1,
    ) -> None:
        self._record = record
        self._small_events = small_events
        self._small = self._lane(max(small_events, 1) * 4, small_in_flight)
        self._large = self._lane(max_events, max_in_flight)

    def _lane(self, max_group: int, max_in_flight: int) -> Grouper[_Call, Recorded]:
        return Grouper(
            self._run,
            keys=lambda call: (e.event_id for e in call[0]),
            weight=lambda call: len(call[0]),
            max_group=max_group,
            max_in_flight=max_in_flight,
            alone_on=GROUP_REFUSALS,
        )

    async def record(self, events: list[Any], costs: list[int | None], versions: list[str]) -> Recorded:
        lane = self._small if len(events) <= self._small_events else self._large
        return await lane.submit((events, costs, versions))

    async def _run(self, calls: list[_Call]) -> list[Recorded | BaseException]:
        if len(calls) == 1:
            (events, costs, versions), attempt = calls[0], 0
            while True:
                try:
                    return [await self._record(events, costs, versions)]
                except RETRYABLE:
                    attempt += 1
                    if attempt == 3:
                        raise
        rows = await self._record(
            [e for call in calls for e in call[0]],
            [c for call in calls for c in call[1]],
            [v for call in calls for v in call[2]],
        )
        out: list[Recorded | BaseException] = []
        start = 0
        for events, _, _ in calls:
            out.append(rows[start : start + len(events)])
            start += len(events)
        return out


class HoldBatcher:
    """The holds of concurrent Authorize calls go to the ledger together: one CreateHolds call.

    Every hold would otherwise be its own RPC and its own ledger transaction;
    the RPC costs both processes far more than the hold itself. Holds queued
    while earlier batches are in flight (at most ``max_in_flight``) go together
    (services/common/batching.py); a lone hold goes at once. Each caller gets
    its own answer: the hold, or the ledger's refusal of that hold alone (a
    :class:`DomainError`), or the failure of the whole call (a
    ``grpc.aio.AioRpcError``: the ledger is away or slow). A ledger that
    predates CreateHolds, or a batch it refuses as malformed, is served hold by
    hold with CreateHold, so one bad hold never refuses another.
    """

    def __init__(
        self,
        stub: cpb_grpc.CreditsServiceStub,
        timeout: float,
        *,
        max_batch: int = 500,
        max_in_flight: int = 2,
        linger: float = 0.0,
    ) -> None:
        self._stub = stub
        self._timeout = timeout
        self._holds: Grouper[cpb.CreateHoldRequest, cpb.CreateHoldResponse] = Grouper(
            self._send, max_group=max_batch, max_in_flight=max_in_flight, linger=linger
        )

    async def hold(self, request: cpb.CreateHoldRequest) -> cpb.CreateHoldResponse:
        return await self._holds.submit(request)

    async def _send(self, batch: list[cpb.CreateHoldRequest]) -> list[cpb.CreateHoldResponse | BaseException]:
        try:
            answer = await self._stub.CreateHolds(cpb.CreateHoldsRequest(holds=batch), timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            alone = error.code() == grpc.StatusCode.UNIMPLEMENTED or (
                error.code() == grpc.StatusCode.INVALID_ARGUMENT and len(batch) > 1
            )
            if not alone:
                raise
            return list(await asyncio.gather(*(self._one(request) for request in batch)))
        return [
            error_of(result.error, "credits.creditmeter.dev") if result.HasField("error") else result.hold
            for result in answer.results
        ]

    async def _one(self, request: cpb.CreateHoldRequest) -> cpb.CreateHoldResponse | BaseException:
        try:
            answer: cpb.CreateHoldResponse = await self._stub.CreateHold(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            return error
        return answer
