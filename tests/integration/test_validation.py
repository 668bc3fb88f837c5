"""The contract's buf.validate constraints, enforced by the one validation interceptor, over real gRPC."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.metering.v1 import metering_pb2 as mpb
from google.protobuf import timestamp_pb2

from services.common.rpcstatus import error_info_from
from tests.conftest import new_user, request_id
from tests.integration.conftest import USD, Credits, MeteringCaller

YEAR_9999 = timestamp_pb2.Timestamp(seconds=253402300799)  # 9999-12-31T23:59:59Z, the largest Timestamp
INT64_MAX = 2**63 - 1


async def _refusal(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        info = error_info_from(error)
        assert info is not None, "every refusal carries an ErrorInfo"
        return error.code(), info.reason, dict(info.metadata)
    raise AssertionError("the call succeeded")


def _credits(credits: Credits, method: str, request: Any, token: str | None = None) -> Any:
    return credits.call(method, request, credits.admin_token if token is None else token)


async def test_an_id_with_a_trailing_newline_is_refused_before_the_servicer(credits: Credits) -> None:
    user = new_user("nl")
    code, reason, meta = await _refusal(_credits(credits, "GetBalance", pb.GetBalanceRequest(user_id=f"{user}\n")))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID")
    assert meta["field"] == "user_id" and meta["rule"] == "string.pattern"
    allocate = pb.AllocateRequest(user_id=f"{user}\n", amount_nanos=USD, reason="x", request_id=request_id())
    assert (await _refusal(_credits(credits, "Allocate", allocate)))[1] == "INVALID_USER_ID"
    newline_key = pb.AllocateRequest(user_id=user, amount_nanos=USD, reason="x", request_id=f"{request_id()}\n")
    assert (await _refusal(_credits(credits, "Allocate", newline_key)))[1] == "INVALID_REQUEST_ID"
    # Nothing was created: the admin's read of the clean id finds no account.
    assert (await _refusal(_credits(credits, "GetBalance", pb.GetBalanceRequest(user_id=user))))[1] == (
        "ACCOUNT_NOT_FOUND"
    )


async def test_an_end_time_in_year_9999_is_invalid_argument_not_internal(
    credits: Credits, metering: MeteringCaller
) -> None:
    user = await credits.funded_user(USD)
    code, reason, meta = await _refusal(
        _credits(credits, "ListTransactions", pb.ListTransactionsRequest(user_id=user, end_time=YEAR_9999))
    )
    assert (code, reason, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "end_time")
    assert meta["rule"].startswith("timestamp.")
    for method, request in (
        ("GetUsageSummary", mpb.GetUsageSummaryRequest(user_id=user, end_time=YEAR_9999)),
        ("GetUsageByModel", mpb.GetUsageByModelRequest(user_id=user, end_time=YEAR_9999)),
        ("GetUsageByDate", mpb.GetUsageByDateRequest(user_id=user, end_time=YEAR_9999)),
    ):
        assert await metering.reason(method, request) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    fine = await _credits(credits, "ListTransactions", pb.ListTransactionsRequest(user_id=user, page_size=1))
    assert len(fine.transactions) == 1


async def test_integers_out_of_range_never_reach_sql_and_move_no_money(credits: Credits) -> None:
    user = await credits.funded_user(USD)
    for amount in (INT64_MAX, -1, -(2**63)):
        request = pb.AllocateRequest(user_id=user, amount_nanos=amount, reason="x", request_id=request_id())
        code, reason, meta = await _refusal(_credits(credits, "Allocate", request))
        assert (code, reason, meta["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_AMOUNT", "amount_nanos")
    hold = pb.CreateHoldRequest(user_id=user, amount_nanos=USD, ttl_seconds=2**31 - 1, request_id=request_id())
    assert (await _refusal(_credits(credits, "CreateHold", hold, credits.service_token)))[1] == "INVALID_TTL"
    page = pb.ListTransactionsRequest(user_id=user, page_size=2**31 - 1)
    assert (await _refusal(_credits(credits, "ListTransactions", page)))[1] == "INVALID_PAGE_SIZE"
    assert (await credits.balance(user)).balance_nanos == USD


async def test_unknown_enum_numbers_and_control_characters_in_text_are_refused(credits: Credits) -> None:
    user = await credits.funded_user(USD)
    kind = pb.ListTransactionsRequest(user_id=user)
    kind.kind = 999  # type: ignore[assignment]
    assert (await _refusal(_credits(credits, "ListTransactions", kind)))[1] == "INVALID_KIND"
    for text in ("line one\nline two", "\x1b[31mred", "evil\u202etxt.exe", "nul\x00"):
        request = pb.AllocateRequest(user_id=user, amount_nanos=USD, reason=text, request_id=request_id())
        _, reason, meta = await _refusal(_credits(credits, "Allocate", request))
        assert (reason, meta["field"], meta["rule"]) == ("INVALID_REASON", "reason", "string.pattern"), text
    long_reason = pb.AllocateRequest(user_id=user, amount_nanos=USD, reason="é" * 501, request_id=request_id())
    assert (await _refusal(_credits(credits, "Allocate", long_reason)))[2]["rule"] == "string.max_len"
    assert (await credits.balance(user)).balance_nanos == USD


async def test_a_bad_field_deep_in_a_batch_names_its_path_and_records_nothing(
    credits: Credits, metering: MeteringCaller, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(USD)
    good = mpb.UsageEvent(event_id=f"ok-{uuid.uuid4().hex}", user_id=user, model="openai/gpt-4o-mini")
    bad = mpb.UsageEvent(event_id=f"bad-{uuid.uuid4().hex}", user_id=user, model="openai/gpt-4o-mini")
    bad.metadata["note"] = "two\nlines"
    request = mpb.TrackUsageBatchRequest(events=[good, bad])
    try:
        await metering.call("TrackUsageBatch", request)
        raise AssertionError("the batch was accepted")
    except grpc.aio.AioRpcError as error:
        info = error_info_from(error)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and info is not None
        assert info.reason == "INVALID_FIELD"
        assert info.metadata["field"].startswith("events[1].metadata")
    async with metering_db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE user_id = $1", user) == 0


async def test_bytes_that_are_no_message_get_malformed_request_not_unknown(
    channel: grpc.aio.Channel, credits: Credits
) -> None:
    raw = channel.unary_unary(
        "/creditmeter.credits.v1.CreditsService/GetBalance",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    call = raw(b"\x0a\xff\xff\xff\xff\x0f", metadata=(("authorization", f"Bearer {credits.admin_token}"),), timeout=30)
    code, reason, _ = await _refusal(call)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
