"""MeteringService: every RPC times every kind of caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from creditmeter.common.v1 import service_kind_pb2 as skpb
from creditmeter.metering.v1 import metering_pb2 as pb

from tests.conftest import request_id
from tests.integration.authz import CALLERS, OK, expect, token_for
from tests.integration.conftest import Credits, MeteringCaller

Factory = Callable[[str], Awaitable[Any]]


def _event(user: str) -> pb.UsageEvent:
    return pb.UsageEvent(event_id=f"az-{request_id()}", user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1)


async def _authorize(user: str) -> Any:
    return pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id=request_id())


async def _track(user: str) -> Any:
    return pb.TrackUsageRequest(event=_event(user))


async def _batch(user: str) -> Any:
    return pb.TrackUsageBatchRequest(events=[_event(user), _event(user)])


async def _summary(user: str) -> Any:
    return pb.GetUsageSummaryRequest(user_id=user)


async def _by_model(user: str) -> Any:
    return pb.GetUsageByModelRequest(user_id=user)


async def _by_date(user: str) -> Any:
    return pb.GetUsageByDateRequest(user_id=user)


async def _events(user: str) -> Any:
    return pb.ListUsageEventsRequest(user_id=user)


def _lookup_target(user: str) -> str:
    return f"az-lookup-{user}"


async def _lookup(user: str) -> Any:
    return pb.GetUsageEventRequest(event_id=_lookup_target(user))


async def _parked(user: str) -> Any:
    return pb.ListParkedEventsRequest(user_id=user)


async def _pending(user: str) -> Any:
    return pb.ListPendingEventsRequest(user_id=user)


def _retry_target(user: str) -> str:
    return f"az-retry-{user}"


async def _retry(user: str) -> Any:
    # An existing (charged, so not parked) event: an admin's retry succeeds and leaves it as it is.
    return pb.RetryParkedEventsRequest(event_ids=[_retry_target(user)], request_id=request_id())


READERS = {"user_self", "admin", "svc-platform"}
MATRIX: dict[str, tuple[Factory, dict[str, grpc.StatusCode]]] = {
    # Only the AI platform's call path asks and reports; the in-cluster services never do.
    "Authorize": (_authorize, expect({"svc-platform"})),
    "TrackUsage": (_track, expect({"svc-platform"})),
    "TrackUsageBatch": (_batch, expect({"svc-platform"})),
    "GetUsageSummary": (_summary, expect(READERS)),
    "GetUsageByModel": (_by_model, expect(READERS)),
    "GetUsageByDate": (_by_date, expect(READERS)),
    "ListUsageEvents": (_events, expect(READERS)),
    # Another user's event is answered as an unknown one: NOT_FOUND, not PERMISSION_DENIED.
    "GetUsageEvent": (_lookup, {**expect(READERS), "user_other": grpc.StatusCode.NOT_FOUND}),
    "ListParkedEvents": (_parked, expect({"admin"})),
    "ListPendingEvents": (_pending, expect({"admin"})),
    "RetryParkedEvents": (_retry, expect({"admin"})),
}


def test_the_matrix_covers_every_rpc() -> None:
    assert set(pb.DESCRIPTOR.services_by_name["MeteringService"].methods_by_name) == set(MATRIX)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", sorted(MATRIX))
async def test_authorization(metering: MeteringCaller, credits: Credits, method: str, caller: str) -> None:
    factory, expected = MATRIX[method]
    target = await credits.funded_user(10**9)
    request = await factory(target)
    if method in ("RetryParkedEvents", "GetUsageEvent"):
        target_id = _retry_target(target) if method == "RetryParkedEvents" else _lookup_target(target)
        event = pb.UsageEvent(event_id=target_id, user_id=target, service=skpb.SERVICE_KIND_SEARCH, quantity=1)
        await metering.call("TrackUsage", pb.TrackUsageRequest(event=event))
    before = (await credits.balance(target)).balance_nanos
    try:
        await metering.call(method, request, token_for(metering.keys, caller, target) or "")
        code = OK
    except grpc.aio.AioRpcError as error:
        code = error.code()
    assert code == expected[caller], f"{method} as {caller}: {code.name}, expected {expected[caller].name}"
    if code != OK:
        assert (await credits.balance(target)).balance_nanos == before
