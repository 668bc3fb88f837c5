"""MeteringService servicer: proto ↔ domain and access rules; no SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import grpc
from creditmeter.metering.v1 import metering_pb2 as pb
from creditmeter.metering.v1 import metering_pb2_grpc as pb_grpc

from services.common import service_kind
from services.common.auth import Forbidden
from services.common.errors import DomainError, invalid, not_found
from services.common.grpcserver import MethodPolicy, principal
from services.common.idempotency import fingerprint
from services.common.timestamps import field_time, to_timestamp
from services.metering import domain
from services.metering.domain import Event
from services.metering.workflow import (
    Metering,
    Totals,
    Tracked,
    check_hold_id,
    event_token,
    month_of,
    parse_event_token,
    summarize,
)

_SERVICE = "/creditmeter.metering.v1.MeteringService/"
_READERS = MethodPolicy.allow("user", "admin", "svc-platform", limits={"user": "own usage"})

#: Who may call each RPC (docs/authorization.md is generated from this): the AI platform's call path
#: asks and reports; users read their own usage.
POLICIES: dict[str, MethodPolicy] = {
    _SERVICE + "Authorize": MethodPolicy.allow("svc-platform"),
    _SERVICE + "TrackUsage": MethodPolicy.allow("svc-platform"),
    _SERVICE + "TrackUsageBatch": MethodPolicy.allow("svc-platform"),
    _SERVICE + "GetUsageSummary": _READERS,
    _SERVICE + "GetUsageByModel": _READERS,
    _SERVICE + "GetUsageByDate": _READERS,
    _SERVICE + "ListUsageEvents": _READERS,
    _SERVICE + "GetUsageEvent": _READERS,
    _SERVICE + "ListParkedEvents": MethodPolicy.allow("admin"),
    _SERVICE + "ListPendingEvents": MethodPolicy.allow("admin"),
    _SERVICE + "RetryParkedEvents": MethodPolicy.allow("admin"),
}

_STATES = {
    "PENDING": pb.EVENT_STATE_PENDING,
    "CHARGED": pb.EVENT_STATE_CHARGED,
    "SHORTFALL": pb.EVENT_STATE_SHORTFALL,
    "PARKED": pb.EVENT_STATE_PARKED,
}
_STATE_OF_STATUS = {"RECORDED": "PENDING", "CHARGED": "CHARGED", "SHORTFALL": "SHORTFALL", "PARKED": "PARKED"}
#: Kept back from the caller's deadline for answering after waiting on the charge.
_ANSWER_MARGIN_SECONDS = 0.1


def _event(message: pb.UsageEvent, now: datetime) -> Event:
    return domain.validate_event(
        event_id=message.event_id,
        user_id=message.user_id,
        service=service_kind.name_of(message.service),
        model=message.model,
        provider=message.provider,
        input_tokens=message.input_tokens,
        output_tokens=message.output_tokens,
        quantity=message.quantity,
        byok=message.byok,
        hold_id=check_hold_id(message.hold_id),
        occurred_at=field_time(message, "occurred_at"),
        metadata=dict(message.metadata),
        now=now,
    )


def _tracked_pb(t: Tracked) -> pb.TrackUsageResponse:
    return pb.TrackUsageResponse(
        event_id=t.event_id,
        cost_nanos=t.cost_nanos,
        charged_nanos=t.charged_nanos,
        shortfall_nanos=t.shortfall_nanos,
        transaction_id=t.transaction_id,
        duplicate=t.duplicate,
        price_version=t.price_version,
        state=_STATES[t.state],
    )


def _totals_pb(t: Totals) -> pb.UsageTotals:
    return pb.UsageTotals(**t.__dict__)


def _recorded_pb(row: asyncpg.Record) -> pb.RecordedEvent:
    event = pb.UsageEvent(
        event_id=row["event_id"],
        user_id=row["user_id"],
        service=service_kind.value_of(row["service"]),
        model=row["model"],
        provider=row["provider"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        quantity=row["quantity"],
        byok=row["byok"],
        hold_id=row["hold_id"],
        occurred_at=to_timestamp(row["occurred_at"]),
        metadata=json.loads(row["metadata"]) if isinstance(row["metadata"], str) else dict(row["metadata"]),
    )
    return pb.RecordedEvent(
        event=event,
        cost_nanos=row["cost_nanos"] or 0,
        charged_nanos=row["charged_nanos"],
        shortfall_nanos=row["shortfall_nanos"],
        transaction_id=row["transaction_id"],
        price_version=row["price_version"],
        charged=row["status"] in ("CHARGED", "SHORTFALL"),
        recorded_at=to_timestamp(row["recorded_at"]),
        state=_STATES[_STATE_OF_STATUS[row["status"]]],
        park_reason=row["park_reason"],
        attempts=row["attempts"],
        last_error=row["last_error"] or "",
        next_attempt_at=to_timestamp(row["next_attempt_at"]) if row["status"] == "RECORDED" else None,
    )


def _subject(requested: str) -> str:
    """The user a report is about: the caller, or anyone for admins and services."""
    who = principal()
    if not requested or requested == who.subject:
        return who.subject
    if not who.is_privileged:
        raise Forbidden("FORBIDDEN", "users may only read their own usage")
    return requested


def _page_size(requested: int) -> int:
    """A list's page size: 0 means 50; 1 to 500."""
    size = requested or 50
    if not 1 <= size <= 500:
        raise invalid("INVALID_PAGE_SIZE", "page_size must be from 1 to 500", field="page_size")
    return size


def _event_page(rows: list[asyncpg.Record], size: int) -> tuple[list[pb.RecordedEvent], str]:
    """The first ``size`` of ``rows`` (fetched ``size + 1``) and the token of the next page ("" if none)."""
    page = rows[:size]
    return [_recorded_pb(r) for r in page], event_token(page[-1]) if len(rows) > size else ""


def _wait_budget(context: grpc.aio.ServicerContext, limit: float) -> float:
    """How long the answer may wait for the charge: the configured limit, within the caller's deadline."""
    remaining: float | None = context.time_remaining()
    if remaining is None:
        return limit
    return max(0.0, min(limit, remaining - _ANSWER_MARGIN_SECONDS))


class MeteringServicer(pb_grpc.MeteringServiceServicer):
    def __init__(self, metering: Metering, track_wait_seconds: float = 2.0) -> None:
        self._m = metering
        self._wait = track_wait_seconds

    async def Authorize(self, request: pb.AuthorizeRequest, context: grpc.aio.ServicerContext) -> pb.AuthorizeResponse:
        if not request.request_id:
            raise invalid("MISSING_REQUEST_ID", "request_id is required", field="request_id")
        if request.max_output_tokens < 0:
            raise invalid("INVALID_QUANTITY", "max_output_tokens cannot be negative", field="max_output_tokens")
        ttl = request.hold_ttl_seconds or 900
        if not 1 <= ttl <= 86_400:
            raise invalid("INVALID_TTL", "hold_ttl_seconds must be from 1 to 86400", field="hold_ttl_seconds")
        probe = domain.validate_event(
            event_id=f"authorize-{request.request_id}"[:128],
            user_id=request.user_id,
            service=service_kind.name_of(request.service),
            model=request.model,
            provider="",
            input_tokens=request.input_tokens,
            output_tokens=0,
            quantity=request.quantity,
            byok=request.byok,
            hold_id="",
            occurred_at=None,
            metadata={},
            now=datetime.now(UTC),
        )
        result = await self._m.authorize(probe, request.max_output_tokens, ttl, request.request_id)
        return pb.AuthorizeResponse(**result.__dict__)

    async def TrackUsage(
        self, request: pb.TrackUsageRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrackUsageResponse:
        (tracked,) = await self._m.track([_event(request.event, datetime.now(UTC))], _wait_budget(context, self._wait))
        return _tracked_pb(tracked)

    async def TrackUsageBatch(
        self, request: pb.TrackUsageBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrackUsageBatchResponse:
        if not 1 <= len(request.events) <= domain.MAX_BATCH:
            raise invalid("INVALID_BATCH", f"send 1 to {domain.MAX_BATCH} events", field="events")
        now = datetime.now(UTC)
        events = []
        for index, message in enumerate(request.events):
            try:
                events.append(_event(message, now))
            except DomainError as error:
                error.metadata["index"] = str(index)
                raise
        tracked = await self._m.track(events, _wait_budget(context, self._wait))
        return pb.TrackUsageBatchResponse(results=[_tracked_pb(t) for t in tracked])

    async def GetUsageSummary(
        self, request: pb.GetUsageSummaryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageSummaryResponse:
        user_id = _subject(request.user_id)
        rows = await self._m.usage(user_id, field_time(request, "start_time"), field_time(request, "end_time"))
        total = summarize(rows, lambda r: "all").get("all", Totals())
        by_service = summarize(rows, lambda r: r["service"])
        used, limit, window = await self._m.quota(user_id)
        return pb.GetUsageSummaryResponse(
            user_id=user_id,
            totals=_totals_pb(total),
            by_service=[
                pb.ServiceUsage(service=service_kind.value_of(s), totals=_totals_pb(t))
                for s, t in sorted(by_service.items())
            ],
            calls_used=used,
            calls_limit=limit,
            quota_window_start=to_timestamp(window),
        )

    async def GetUsageByModel(
        self, request: pb.GetUsageByModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageByModelResponse:
        rows = await self._m.usage(
            _subject(request.user_id), field_time(request, "start_time"), field_time(request, "end_time")
        )
        by_model = summarize(rows, lambda r: r["model"])
        ordered = sorted(by_model.items(), key=lambda kv: (-kv[1].cost_nanos, kv[0]))
        return pb.GetUsageByModelResponse(
            rows=[
                pb.ModelUsage(
                    model=m,
                    event_count=t.event_count,
                    input_tokens=t.input_tokens,
                    output_tokens=t.output_tokens,
                    cost_nanos=t.cost_nanos,
                    charged_nanos=t.charged_nanos,
                )
                for m, t in ordered
            ]
        )

    async def GetUsageByDate(
        self, request: pb.GetUsageByDateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageByDateResponse:
        rows = await self._m.usage(
            _subject(request.user_id), field_time(request, "start_time"), field_time(request, "end_time")
        )
        monthly = request.granularity == pb.GRANULARITY_MONTH
        by_date = summarize(rows, lambda r: month_of(r["day"]) if monthly else r["day"].isoformat())
        return pb.GetUsageByDateResponse(
            rows=[
                pb.DateUsage(
                    date=d,
                    event_count=t.event_count,
                    input_tokens=t.input_tokens,
                    output_tokens=t.output_tokens,
                    cost_nanos=t.cost_nanos,
                    charged_nanos=t.charged_nanos,
                )
                for d, t in sorted(by_date.items())
            ]
        )

    async def ListUsageEvents(
        self, request: pb.ListUsageEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListUsageEventsResponse:
        user_id = _subject(request.user_id)
        size = _page_size(request.page_size)
        rows = await self._m.events(user_id, parse_event_token(request.page_token), size + 1)
        events, token = _event_page(rows, size)
        return pb.ListUsageEventsResponse(events=events, next_page_token=token)

    async def GetUsageEvent(
        self, request: pb.GetUsageEventRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetUsageEventResponse:
        row = await self._m.event(request.event_id)
        who = principal()
        # Another user's event answers as an unknown one does: a user cannot learn which ids exist.
        if row is None or not who.may_act_for(row["user_id"]):
            raise not_found("EVENT_NOT_FOUND", f"no usage event {request.event_id!r}", event_id=request.event_id)
        return pb.GetUsageEventResponse(event=_recorded_pb(row))

    async def ListParkedEvents(
        self, request: pb.ListParkedEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListParkedEventsResponse:
        size = _page_size(request.page_size)
        rows = await self._m.parked(request.user_id, parse_event_token(request.page_token), size + 1)
        events, token = _event_page(rows, size)
        return pb.ListParkedEventsResponse(events=events, next_page_token=token)

    async def ListPendingEvents(
        self, request: pb.ListPendingEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPendingEventsResponse:
        size = _page_size(request.page_size)
        rows, total = await self._m.pending(request.user_id, parse_event_token(request.page_token), size + 1)
        events, token = _event_page(rows, size)
        return pb.ListPendingEventsResponse(events=events, next_page_token=token, total=total)

    async def RetryParkedEvents(
        self, request: pb.RetryParkedEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryParkedEventsResponse:
        # 1 to 500 ids of the id pattern: the proto's constraints, which the handler chain checked.
        event_ids = list(dict.fromkeys(request.event_ids))  # a repeated id counts once, first place kept
        wait = _wait_budget(context, self._wait)

        async def run() -> pb.RetryParkedEventsResponse:
            results = await self._m.retry_parked(event_ids, wait)
            return pb.RetryParkedEventsResponse(
                results=[pb.RetriedEvent(event=_recorded_pb(row), retried=retried) for row, retried in results]
            )

        return await self._m.responses.once(
            caller=principal().subject,
            request_id=request.request_id,
            fingerprint=fingerprint("RetryParkedEvents", event_ids=sorted(event_ids)),
            response_type=pb.RetryParkedEventsResponse,
            run=run,
        )
