"""Metering use cases: authorize, track (record exactly once, then charge), recover, report.

Tracking is two steps with a crash-safe seam between them: the event is first
recorded (with its price) in this service's database — the event id is unique
forever, so a repeat is recognised here — and then charged in credits with the
event id as the credits request id (a replay there never charges twice). An
event recorded but not yet charged is charged by the recovery pass.
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
from creditmeter.openrouter.v1 import openrouter_pb2 as opb
from creditmeter.openrouter.v1 import openrouter_pb2_grpc as opb_grpc

from services.common import pagetoken, service_kind
from services.common.errors import Code, DomainError, invalid
from services.common.rpcstatus import error_info_from, relay
from services.credits.client import CreditsClient
from services.metering import domain
from services.metering import repository as repo
from services.metering.domain import Event

log = logging.getLogger(__name__)

#: Hold refusals after which the event is charged directly instead.
_HOLD_UNUSABLE = {"CAPTURE_EXCEEDS_HOLD", "HOLD_EXPIRED", "HOLD_ALREADY_SETTLED", "HOLD_NOT_FOUND"}


@dataclass(frozen=True)
class Tracked:
    event_id: str
    cost_nanos: int
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    duplicate: bool
    price_version: str


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


def _tracked(row: asyncpg.Record, duplicate: bool) -> Tracked:
    return Tracked(
        row["event_id"],
        row["cost_nanos"],
        row["charged_nanos"],
        row["shortfall_nanos"],
        row["transaction_id"],
        duplicate,
        row["price_version"],
    )


class Metering:
    def __init__(
        self, pool: asyncpg.Pool, credits: CreditsClient, pricing: opb_grpc.OpenRouterServiceStub, timeout: float
    ) -> None:
        self._pool = pool
        self._credits = credits
        self._pricing = pricing
        self._timeout = timeout

    # --- the other contexts -----------------------------------------------------------------

    async def _account(self, user_id: str) -> tuple[str, datetime]:
        """(tier, start of the billing period); a user without an account is on trial from now."""
        try:
            balance = await self._credits.stub.GetBalance(cpb.GetBalanceRequest(user_id=user_id), timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return "trial", datetime.now(UTC)
            raise relay(error, domain.DOMAIN) from None
        return str(balance.tier), balance.period_start.ToDatetime(tzinfo=UTC)

    def _quote_request(self, tier: str, event: Event, output_tokens: int | None = None) -> opb.QuotePriceRequest:
        return opb.QuotePriceRequest(
            tier=tier,
            service=service_kind.value_of(event.service),
            model=event.model,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens if output_tokens is None else output_tokens,
            quantity=event.quantity,
            byok=event.byok,
        )

    async def _price(self, requests: list[opb.QuotePriceRequest]) -> list[opb.QuotePriceResponse]:
        try:
            answer = await self._pricing.QuotePrices(opb.QuotePricesRequest(quotes=requests), timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise relay(error, domain.DOMAIN) from None
        return list(answer.quotes)

    async def _tiers(self, user_ids: set[str]) -> dict[str, str]:
        found = await asyncio.gather(*(self._account(u) for u in sorted(user_ids)))
        return {u: tier for u, (tier, _) in zip(sorted(user_ids), found, strict=True)}

    # --- authorize ------------------------------------------------------------------------------

    async def authorize(self, probe: Event, max_output_tokens: int, ttl: int, request_id: str) -> Authorization:
        fp = hashlib.sha256(json.dumps([probe.fingerprint(), max_output_tokens, ttl]).encode()).hexdigest()
        async with self._pool.acquire() as conn:
            saved = await repo.find_authorization(conn, probe.user_id, request_id)
        if saved is not None:
            if saved[0] != fp:
                raise DomainError(
                    "REQUEST_ID_REUSED",
                    "this request_id was used for a different authorization",
                    code=Code.ALREADY_EXISTS,
                    domain=domain.DOMAIN,
                )
            return Authorization(**json.loads(saved[1]))
        tier_id, period_start = await self._account(probe.user_id)
        tier = (await self._credits.tiers())[tier_id]
        (estimate,) = await self._price([self._quote_request(tier_id, probe, max_output_tokens)])
        window = domain.quota_window(tier.api_call_period, period_start, datetime.now(UTC))
        limit = int(tier.api_call_limit)
        async with self._pool.acquire() as conn:
            used = await repo.count_call(conn, probe.user_id, window, limit)
            if used is None:
                result = Authorization(
                    False,
                    "QUOTA_EXCEEDED",
                    "",
                    0,
                    estimate.total_nanos,
                    await repo.calls_in(conn, probe.user_id, window),
                    limit,
                    0,
                    estimate.price_version,
                )
                return await self._remember(probe.user_id, request_id, fp, result)
        hold_id, held = "", 0
        if estimate.total_nanos > 0:
            try:
                hold = await self._credits.stub.CreateHold(
                    cpb.CreateHoldRequest(
                        user_id=probe.user_id,
                        amount_nanos=estimate.total_nanos,
                        ttl_seconds=ttl,
                        request_id=f"authorize:{request_id}",
                        reason=f"{probe.service} call",
                        reference_id=request_id,
                    ),
                    timeout=self._timeout,
                )
                hold_id, held = hold.hold_id, estimate.total_nanos
            except grpc.aio.AioRpcError as error:
                async with self._pool.acquire() as conn:
                    await repo.uncount_call(conn, probe.user_id, window)
                info = error_info_from(error)
                if info is None or info.reason != "INSUFFICIENT_CREDITS":
                    raise relay(error, domain.DOMAIN) from None
                result = Authorization(
                    False,
                    "INSUFFICIENT_CREDITS",
                    "",
                    0,
                    estimate.total_nanos,
                    used - 1,
                    limit,
                    max(0, limit - used + 1) if limit else 0,
                    estimate.price_version,
                )
                return await self._remember(probe.user_id, request_id, fp, result)
        result = Authorization(
            True,
            "",
            hold_id,
            held,
            estimate.total_nanos,
            used,
            limit,
            max(0, limit - used) if limit else 0,
            estimate.price_version,
        )
        return await self._remember(probe.user_id, request_id, fp, result)

    async def _remember(self, user_id: str, request_id: str, fp: str, result: Authorization) -> Authorization:
        async with self._pool.acquire() as conn:
            if not await repo.save_authorization(
                conn, user_id, request_id, fp, json.dumps(dataclasses.asdict(result)).encode()
            ):
                saved = await repo.find_authorization(conn, user_id, request_id)
                assert saved is not None
                return Authorization(**json.loads(saved[1]))
        return result

    # --- track ------------------------------------------------------------------------------------

    async def track(self, events: list[Event]) -> list[Tracked]:
        """Records the events not seen before and charges every uncharged one; results in input order."""
        if len({e.event_id for e in events}) != len(events):
            raise invalid("DUPLICATE_EVENT_ID", "each event in a batch needs its own event_id", field="events")
        tiers = await self._tiers({e.user_id for e in events})
        quotes = await self._price([self._quote_request(tiers[e.user_id], e) for e in events])
        ids = [e.event_id for e in events]
        async with self._pool.acquire() as conn, conn.transaction():
            new = await repo.record_events(
                conn, events, [q.total_nanos for q in quotes], [q.price_version for q in quotes]
            )
            stored = await repo.events_by_id(conn, ids)
        for event in events:
            if event.event_id not in new and stored[event.event_id]["fingerprint"] != event.fingerprint():
                raise domain.event_id_reused(event.event_id)
        pending = [stored[i] for i in ids if stored[i]["status"] == "RECORDED"]
        if pending:
            await self._charge(pending)
            async with self._pool.acquire() as conn:
                stored = await repo.events_by_id(conn, ids)
        unfinished = [i for i in ids if stored[i]["status"] != "CHARGED"]
        if unfinished:
            raise DomainError(
                "CHARGE_PENDING",
                "the usage is recorded but the ledger did not answer; it will be charged, or retry the same event",
                code=Code.UNAVAILABLE,
                domain=domain.DOMAIN,
                metadata={"event_id": unfinished[0]},
            )
        return [_tracked(stored[i], i not in new) for i in ids]

    async def _charge(self, rows: list[asyncpg.Record]) -> None:
        """Charges recorded events: captures holds where named, and one ledger call per account for the rest."""
        outcomes: dict[str, tuple[int, int, str]] = {}
        direct: dict[str, list[asyncpg.Record]] = defaultdict(list)
        failures: list[DomainError] = []
        for row in rows:
            if row["hold_id"]:
                try:
                    captured = await self._capture(row)
                except DomainError as error:
                    failures.append(error)
                    continue
                if captured is not None:
                    outcomes[row["event_id"]] = captured
                    continue
            direct[row["user_id"]].append(row)
        for user_id, group in direct.items():
            for start in range(0, len(group), domain.MAX_BATCH):
                chunk = group[start : start + domain.MAX_BATCH]
                request = cpb.ChargeUsageRequest(
                    user_id=user_id,
                    allow_partial=True,
                    charges=[
                        cpb.UsageCharge(
                            request_id=r["event_id"],
                            amount_nanos=r["cost_nanos"],
                            model=r["model"],
                            reference_id=f"usage:{r['event_id']}",
                            price_version=r["price_version"],
                            reason=f"{r['service']} usage",
                        )
                        for r in chunk
                    ],
                )
                try:
                    answer = await self._credits.stub.ChargeUsage(request, timeout=max(self._timeout, 30))
                except grpc.aio.AioRpcError as error:
                    failures.append(relay(error, domain.DOMAIN))
                    continue
                for result in answer.results:
                    outcomes[result.request_id] = (result.charged_nanos, result.shortfall_nanos, result.transaction_id)
        if outcomes:
            ids = list(outcomes)
            async with self._pool.acquire() as conn:
                await repo.mark_charged(
                    conn,
                    ids,
                    [outcomes[i][0] for i in ids],
                    [outcomes[i][1] for i in ids],
                    [outcomes[i][2] for i in ids],
                )
        if failures:
            log.warning("some usage is recorded but not charged yet", extra={"reason": failures[0].reason})

    async def _capture(self, row: asyncpg.Record) -> tuple[int, int, str] | None:
        """Captures the event's cost from its hold; None when the hold cannot take it (charge directly)."""
        event_id = row["event_id"]
        try:
            answer = await self._credits.stub.CaptureHold(
                cpb.CaptureHoldRequest(
                    hold_id=row["hold_id"],
                    amount_nanos=row["cost_nanos"],
                    request_id=event_id,
                    reason=f"{row['service']} usage",
                    model=row["model"],
                    reference_id=f"usage:{event_id}",
                    price_version=row["price_version"],
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            if info is None or info.reason not in _HOLD_UNUSABLE:
                raise relay(error, domain.DOMAIN) from None
            if info.reason == "CAPTURE_EXCEEDS_HOLD":
                # Give the hold back so the whole cost can be charged from the balance.
                try:
                    await self._credits.stub.ReleaseHold(
                        cpb.ReleaseHoldRequest(hold_id=row["hold_id"], request_id=f"{event_id}:release"),
                        timeout=self._timeout,
                    )
                except grpc.aio.AioRpcError:
                    log.warning("could not release a hold; it will expire", extra={"event_id": event_id})
            return None
        tx = answer.transaction.transaction_id if answer.HasField("transaction") else ""
        return row["cost_nanos"], 0, tx

    async def recover(self, older_than_seconds: float = 10.0, batch: int = 1000) -> int:
        """Charges events recorded but not charged (a crash or an unreachable ledger in between)."""
        async with self._pool.acquire() as conn:
            rows = await repo.uncharged(conn, older_than_seconds, batch)
        if rows:
            await self._charge(rows)
        return len(rows)

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
