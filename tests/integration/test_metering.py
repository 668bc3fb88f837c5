"""MeteringService over real gRPC, charging through the real credits service and pricing through openrouter."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from creditmeter.common.v1 import service_kind_pb2 as skpb
from creditmeter.credits.v1 import credits_pb2 as cpb
from creditmeter.metering.v1 import metering_pb2 as pb
from creditmeter.openrouter.v1 import openrouter_pb2 as opb
from google.protobuf import timestamp_pb2

from services.common.auth import StaticTokenSource
from services.common.bootstrap import RunningService
from services.common.grpcserver import ClientInterceptor
from tests.conftest import Keys, new_user, request_id
from tests.integration.conftest import USD, Credits, MeteringCaller, OpenRouterCaller, assert_metering_ok

PAID = "openai/gpt-4o-mini"  # $0.15 / $0.60 per million tokens


def _event(user: str, **fields: object) -> pb.UsageEvent:
    fields.setdefault("event_id", f"evt-{uuid.uuid4().hex}")
    fields.setdefault("service", skpb.SERVICE_KIND_LLM)
    if fields["service"] == skpb.SERVICE_KIND_LLM:
        fields.setdefault("model", PAID)
        fields.setdefault("input_tokens", 1000)
        fields.setdefault("output_tokens", 500)
    return pb.UsageEvent(user_id=user, **fields)  # type: ignore[arg-type]


async def _quote(openrouter: OpenRouterCaller, tier: str, event: pb.UsageEvent) -> int:
    answer = await openrouter.call(
        "QuotePrice",
        opb.QuotePriceRequest(
            tier=tier,
            service=event.service,
            model=event.model,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            quantity=event.quantity,
            byok=event.byok,
        ),
        openrouter.service,
    )
    return int(answer.total_nanos)


async def test_a_tracked_event_is_charged_its_quoted_price_once(
    metering: MeteringCaller,
    credits: Credits,
    openrouter: OpenRouterCaller,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
) -> None:
    user = await credits.funded_user(5 * USD)
    event = _event(user)
    price = await _quote(openrouter, "trial", event)
    assert price == 495_000  # (1000 x 0.15 + 500 x 0.60) micro-USD + 10%
    first = await metering.call("TrackUsage", pb.TrackUsageRequest(event=event))
    assert (first.cost_nanos, first.charged_nanos, first.shortfall_nanos, first.duplicate) == (price, price, 0, False)
    assert first.transaction_id and first.price_version.startswith("rc")
    again = await metering.call("TrackUsage", pb.TrackUsageRequest(event=event))
    assert again.duplicate and again.transaction_id == first.transaction_id and again.charged_nanos == price
    assert (await credits.balance(user)).balance_nanos == 5 * USD - price
    changed = pb.UsageEvent()
    changed.CopyFrom(event)
    changed.output_tokens = 501
    assert await metering.reason("TrackUsage", pb.TrackUsageRequest(event=changed)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "EVENT_ID_REUSED",
    )
    await assert_metering_ok(db, metering_db)


async def test_one_event_from_20_tasks_is_charged_once(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(5 * USD)
    event = _event(user)
    results = await asyncio.gather(*(metering.call("TrackUsage", pb.TrackUsageRequest(event=event)) for _ in range(20)))
    assert len({r.transaction_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert (await credits.balance(user)).balance_nanos == 5 * USD - results[0].charged_nanos
    await assert_metering_ok(db, metering_db)


async def test_authorize_then_track_captures_the_actual_cost(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(5 * USD)
    allowed = await metering.call(
        "Authorize",
        pb.AuthorizeRequest(
            user_id=user,
            service=skpb.SERVICE_KIND_LLM,
            model=PAID,
            input_tokens=1000,
            max_output_tokens=4000,
            request_id=request_id(),
        ),
    )
    assert allowed.allowed and allowed.hold_id
    assert allowed.held_nanos == allowed.estimated_cost_nanos == 2_805_000  # (150 + 2400) micro-USD + 10%
    assert (await credits.balance(user)).held_nanos == allowed.held_nanos
    tracked = await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user, hold_id=allowed.hold_id)))
    assert tracked.charged_nanos == 495_000
    balance = await credits.balance(user)
    assert (balance.balance_nanos, balance.held_nanos) == (5 * USD - 495_000, 0)  # the rest released
    await assert_metering_ok(db, metering_db)


async def test_usage_beyond_the_hold_is_charged_in_full(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(5 * USD)
    allowed = await metering.call(
        "Authorize",
        pb.AuthorizeRequest(
            user_id=user,
            service=skpb.SERVICE_KIND_LLM,
            model=PAID,
            input_tokens=10,
            max_output_tokens=10,
            request_id=request_id(),
        ),
    )
    tracked = await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user, hold_id=allowed.hold_id)))
    assert tracked.charged_nanos == 495_000 > allowed.held_nanos
    balance = await credits.balance(user)
    assert (balance.balance_nanos, balance.held_nanos) == (5 * USD - 495_000, 0)
    await assert_metering_ok(db, metering_db)


async def test_an_abandoned_hold_expires(metering: MeteringCaller, credits: Credits) -> None:
    user = await credits.funded_user(USD)
    allowed = await metering.call(
        "Authorize",
        pb.AuthorizeRequest(
            user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=10, hold_ttl_seconds=1, request_id=request_id()
        ),
    )
    assert allowed.allowed and (await credits.balance(user)).available_nanos == USD - 50_000_000
    await asyncio.sleep(1.2)
    assert (await credits.balance(user)).available_nanos == USD


async def test_the_101st_trial_call_of_a_day_is_refused(metering: MeteringCaller, credits: Credits) -> None:
    user = await credits.funded_user(USD)
    answers = [
        await metering.call(
            "Authorize",
            pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id=f"q-{i}"),
        )
        for i in range(101)
    ]
    assert all(a.allowed for a in answers[:100])
    assert answers[99].calls_used == 100 and answers[99].calls_remaining == 0 and answers[99].calls_limit == 100
    assert (answers[100].allowed, answers[100].reason) == (False, "QUOTA_EXCEEDED")
    assert (await credits.balance(user)).held_nanos == 100 * 5_000_000  # the refused call held nothing
    replay = await metering.call(
        "Authorize", pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id="q-5")
    )
    assert replay.allowed and replay.hold_id == answers[5].hold_id


async def test_enterprise_is_never_refused_for_quota(metering: MeteringCaller, credits: Credits) -> None:
    user = new_user("ent")
    await credits.as_admin("SetTier", cpb.SetTierRequest(user_id=user, tier="enterprise", request_id=request_id()))
    for i in range(120):
        answer = await metering.call(
            "Authorize",
            pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id=f"e-{i}"),
        )
        assert answer.allowed and answer.calls_limit == 0


async def test_authorize_refuses_when_credits_cannot_cover_the_estimate(
    metering: MeteringCaller, credits: Credits
) -> None:
    user = await credits.funded_user(1000)
    refused = await metering.call(
        "Authorize",
        pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id=request_id()),
    )
    assert (refused.allowed, refused.reason) == (False, "INSUFFICIENT_CREDITS")
    assert refused.calls_used == 0  # the refused call is not counted


async def test_50_concurrent_events_against_a_balance_for_20(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    price = 495_000
    user = await credits.funded_user(20 * price)
    results = await asyncio.gather(
        *(metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user))) for _ in range(50))
    )
    assert sum(r.charged_nanos for r in results) == 20 * price
    assert sum(r.shortfall_nanos for r in results) == 30 * price
    assert all(r.charged_nanos + r.shortfall_nanos == price for r in results)
    balance = await credits.balance(user)
    assert balance.balance_nanos == 0
    await assert_metering_ok(db, metering_db)


async def test_reports_agree_with_each_other_and_the_ledger(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(10 * USD)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(yesterday)
    events = [
        _event(user),
        _event(user, model="anthropic/claude-3.5-sonnet", input_tokens=2000, output_tokens=100),
        _event(user, occurred_at=stamp),
        _event(user, service=skpb.SERVICE_KIND_TTS, quantity=1500),
        _event(user, model="meta-llama/llama-3.1-8b-instruct:free", input_tokens=3000, output_tokens=0),
    ]
    await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=events))
    token = metering.keys.token(user, "user")
    summary = await metering.call("GetUsageSummary", pb.GetUsageSummaryRequest(), token)
    by_model = await metering.call("GetUsageByModel", pb.GetUsageByModelRequest(), token)
    by_day = await metering.call("GetUsageByDate", pb.GetUsageByDateRequest(), token)
    by_month = await metering.call("GetUsageByDate", pb.GetUsageByDateRequest(granularity=pb.GRANULARITY_MONTH), token)
    total = summary.totals
    assert total.event_count == 5 and total.input_tokens == 7000
    for rows in (by_model.rows, by_day.rows, by_month.rows):
        assert sum(r.event_count for r in rows) == total.event_count
        assert sum(r.cost_nanos for r in rows) == total.cost_nanos
        assert sum(r.charged_nanos for r in rows) == total.charged_nanos
    assert sum(s.totals.cost_nanos for s in summary.by_service) == total.cost_nanos
    assert len(by_day.rows) == 2
    assert {r.model: r.event_count for r in by_model.rows}[PAID] == 2
    transactions = await credits.as_admin("ListTransactions", cpb.ListTransactionsRequest(user_id=user, page_size=500))
    ledger = sum(t.amount_nanos for t in transactions.transactions if t.audit.reference_id.startswith("usage:"))
    assert ledger == total.charged_nanos == total.cost_nanos
    assert (await credits.balance(user)).balance_nanos == 10 * USD - total.charged_nanos
    assert summary.calls_limit == 100
    other = await metering.reason("GetUsageSummary", pb.GetUsageSummaryRequest(user_id="someone-else"), token)
    assert other[0] == grpc.StatusCode.PERMISSION_DENIED
    listed = await metering.call("ListUsageEvents", pb.ListUsageEventsRequest(page_size=2), token)
    assert len(listed.events) == 2 and listed.next_page_token
    await assert_metering_ok(db, metering_db)


async def _settled(metering_db: asyncpg.Pool, event_ids: list[str], seconds: float = 60) -> None:
    """Waits until the outbox charged every one of the events (no client retry involved)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        async with metering_db.acquire() as conn:
            pending = await conn.fetchval(
                "SELECT count(*) FROM events WHERE event_id = ANY($1::text[]) AND status = 'RECORDED'", event_ids
            )
        if pending == 0:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{pending} events still not charged"
        await asyncio.sleep(0.1)


async def test_a_10000_event_batch(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    users = [await credits.funded_user(100 * USD) for _ in range(4)]
    events = [_event(users[i % 4], input_tokens=100 + i % 7, output_tokens=10) for i in range(10_000)]
    answer = await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=events))
    assert len(answer.results) == 10_000 and not any(r.duplicate for r in answer.results)
    assert all(r.cost_nanos > 0 for r in answer.results)  # priced at the door from the local price book
    await _settled(metering_db, [e.event_id for e in events])
    async with metering_db.acquire() as conn:
        charged, cost = await conn.fetchrow(
            "SELECT sum(charged_nanos), sum(cost_nanos) FROM events WHERE user_id = ANY($1::text[])", users
        )
    assert charged == cost == sum(r.cost_nanos for r in answer.results)
    balances = [(await credits.balance(u)).balance_nanos for u in users]
    assert 400 * USD - sum(balances) == charged
    again = await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=events[:100]))
    assert all(r.duplicate and r.state == pb.EVENT_STATE_CHARGED for r in again.results)
    await assert_metering_ok(db, metering_db)


class _BreakCharges(grpc.aio.UnaryUnaryClientInterceptor):
    """The ledger is unreachable for charges (fault injection on the wire)."""

    async def intercept_unary_unary(self, continuation, call_details, request):  # type: ignore[no-untyped-def]
        method = call_details.method
        if method.endswith(b"/ChargeUsageBatch"):
            method = method + b"Unreachable"
        details = grpc.aio.ClientCallDetails(
            method, call_details.timeout, call_details.metadata, call_details.credentials, call_details.wait_for_ready
        )
        return await continuation(details, request)


async def test_usage_recorded_while_the_ledger_is_away_is_charged_by_recovery_once(
    metering: MeteringCaller,
    credits: Credits,
    credits_db: str,
    keys: Keys,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
    credits_server: RunningService,
    openrouter_server: RunningService,
) -> None:
    from creditmeter.openrouter.v1 import openrouter_pb2_grpc

    from services.common.db import create_pool
    from services.common.grpcserver import connect
    from services.credits.client import CreditsClient
    from services.metering.service import _event as to_event
    from services.metering.workflow import Metering

    token = StaticTokenSource(keys.token("svc-metering", "svc-metering"))
    pool = await create_pool(credits_db, "metering", application_name="test")
    broken = grpc.aio.insecure_channel(
        f"127.0.0.1:{credits_server.port}", interceptors=[_BreakCharges(), ClientInterceptor(token)]
    )
    pricing = connect(f"127.0.0.1:{openrouter_server.port}", token)
    user = await credits.funded_user(5 * USD)
    event = _event(user)
    try:
        crashed = Metering(
            pool, CreditsClient(broken, 5, "metering"), openrouter_pb2_grpc.OpenRouterServiceStub(pricing), 5
        )
        runner = asyncio.create_task(crashed.charger.run())
        (answer,) = await crashed.track([to_event(event, datetime.now(UTC))], wait_seconds=2)
        runner.cancel()
        # Usage that happened is recorded and priced, and the caller hears PENDING, not an error ...
        assert answer.state == "PENDING" and answer.cost_nanos == 495_000 and answer.charged_nanos == 0
        async with metering_db.acquire() as conn:
            row = await conn.fetchrow("SELECT status, attempts FROM events WHERE event_id = $1", event.event_id)
        assert (row["status"], row["attempts"]) == ("RECORDED", 1)
        assert (await credits.balance(user)).balance_nanos == 5 * USD  # ... but not charged yet
        summary = await metering.call("GetUsageSummary", pb.GetUsageSummaryRequest(user_id=user))
        assert summary.totals.cost_nanos == 495_000 and summary.totals.charged_nanos == 0
        # The ledger stays away: recovery keeps the event (transient failures never park it).
        for _ in range(6):
            async with metering_db.acquire() as conn:
                await conn.execute("UPDATE events SET next_attempt_at = now() WHERE event_id = $1", event.event_id)
            await crashed.recover()
        async with metering_db.acquire() as conn:
            assert await conn.fetchval("SELECT status FROM events WHERE event_id = $1", event.event_id) == "RECORDED"
    finally:
        await broken.close()
    # A healthy process recovers it, once, however often recovery runs.
    healthy = Metering(
        pool,
        CreditsClient(connect(f"127.0.0.1:{credits_server.port}", token), 5, "metering"),
        openrouter_pb2_grpc.OpenRouterServiceStub(pricing),
        5,
    )
    try:
        async with metering_db.acquire() as conn:
            await conn.execute("UPDATE events SET next_attempt_at = now() WHERE event_id = $1", event.event_id)
        assert await healthy.recover() >= 1
        await healthy.recover()
        retried = await metering.call("TrackUsage", pb.TrackUsageRequest(event=event))
        assert retried.duplicate and retried.charged_nanos == 495_000 and retried.state == pb.EVENT_STATE_CHARGED
        assert (await credits.balance(user)).balance_nanos == 5 * USD - 495_000
    finally:
        await pricing.close()
        await pool.close()
    await assert_metering_ok(db, metering_db)


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({"event_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EVENT_ID"),
        ({"event_id": "has space"}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EVENT_ID"),
        ({"service": skpb.SERVICE_KIND_UNSPECIFIED}, grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_SERVICE"),
        ({"input_tokens": -1}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_QUANTITY"),
        ({"model": ""}, grpc.StatusCode.INVALID_ARGUMENT, "MISSING_MODEL"),
        ({"model": "no/such-model"}, grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND"),
        ({"hold_id": "not-a-hold"}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_HOLD_ID"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, grpc.StatusCode.INVALID_ARGUMENT, "METADATA_TOO_LARGE"),
        ({"user_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER_ID"),
    ],
)
async def test_bad_events_are_refused_and_record_nothing(
    metering: MeteringCaller,
    credits: Credits,
    metering_db: asyncpg.Pool,
    change: dict,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    user = await credits.funded_user(USD)
    event = _event(user)
    for key, value in change.items():
        if key == "metadata":
            event.metadata.update(value)
        else:
            setattr(event, key, value)
    assert await metering.reason("TrackUsage", pb.TrackUsageRequest(event=event)) == (code, reason)
    batch = pb.TrackUsageBatchRequest(events=[_event(user), event])
    assert (await metering.reason("TrackUsageBatch", pb.TrackUsageBatchRequest(events=batch.events)))[1] == reason
    async with metering_db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE user_id = $1", user) == 0
    assert (await credits.balance(user)).balance_nanos == USD


async def test_an_event_from_the_far_future_is_refused(metering: MeteringCaller, credits: Credits) -> None:
    user = await credits.funded_user(USD)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    assert (await metering.reason("TrackUsage", pb.TrackUsageRequest(event=_event(user, occurred_at=stamp))))[1] == (
        "OCCURRED_IN_FUTURE"
    )


async def test_concurrent_authorizations_share_statements_yet_count_the_quota_exactly(
    metering: MeteringCaller, credits: Credits
) -> None:
    """130 Authorize calls at once on a trial account (100 calls a day), five of them repeats of one request
    id: their database steps run in shared statements, yet exactly 100 calls are counted and allowed, the
    rest refused QUOTA_EXCEEDED holding nothing, and the repeats answer as the first of them."""
    user = await credits.funded_user(USD)

    def ask(rid: str) -> pb.AuthorizeRequest:
        return pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id=rid)

    answers = await asyncio.gather(
        *(metering.call("Authorize", ask("c-same")) for _ in range(5)),
        *(metering.call("Authorize", ask(f"c-{i}")) for i in range(125)),
    )
    copies, distinct = answers[:5], answers[4:]
    # Each copy raced the others (they never share a statement): the request id still counts once.
    assert sum(a.allowed for a in distinct) == 100
    assert all(a.reason == "QUOTA_EXCEEDED" for a in distinct if not a.allowed)
    assert len({(a.allowed, a.hold_id, a.reason) for a in copies}) == 1  # one answer for one request id
    summary = await metering.call("GetUsageSummary", pb.GetUsageSummaryRequest(user_id=user))
    assert summary.calls_used == 100
    assert sorted(a.calls_used for a in distinct if a.allowed) == list(range(1, 101))
    held = sum(a.held_nanos for a in distinct)
    assert (await credits.balance(user)).held_nanos == held == 100 * 5_000_000


async def test_an_authorization_cut_off_mid_way_counts_its_call_once_when_retried(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    """The caller gives up while the hold is still being placed (its deadline passes; a killed process
    leaves the same state): the call was counted, nothing answered. Its retry carries on from that claim:
    one call counted, one hold, one answer."""
    user = await credits.funded_user(USD)
    ask = pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id=request_id())
    metadata = (("authorization", f"Bearer {metering.service}"),)
    async with db.acquire() as blocker:
        # Another session holds the account's row, so the ledger cannot place the hold yet.
        transaction = blocker.transaction()
        await transaction.start()
        try:
            await blocker.execute("SELECT 1 FROM accounts WHERE user_id = $1 FOR UPDATE", user)
            with pytest.raises(grpc.aio.AioRpcError) as cut:
                await metering.stub.Authorize(ask, metadata=metadata, timeout=1.0)
            assert cut.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            async with metering_db.acquire() as conn:
                claim = await conn.fetchrow(
                    "SELECT response, counted_in FROM authorizations WHERE user_id = $1 AND request_id = $2",
                    user,
                    ask.request_id,
                )
            assert claim is not None and claim["response"] is None and claim["counted_in"] is not None
        finally:
            await transaction.rollback()
    retried = await metering.call("Authorize", ask)
    assert retried.allowed and retried.calls_used == 1
    again = await metering.call("Authorize", ask)
    assert (again.allowed, again.hold_id, again.calls_used) == (True, retried.hold_id, 1)
    summary = await metering.call("GetUsageSummary", pb.GetUsageSummaryRequest(user_id=user))
    assert summary.calls_used == 1
    assert (await credits.balance(user)).held_nanos == retried.held_nanos > 0


async def test_a_request_id_claims_one_call_of_the_quota_through_every_attempt(metering_db: asyncpg.Pool) -> None:
    """The claim's rules step by step, in metering's database: a retry of an unanswered claim counts
    nothing more, a failed attempt gives the count back, a refusal gives it back with its answer, and an
    answer is replayed."""
    from services.metering import repository as repo

    user, window = new_user("claims"), datetime(2026, 1, 1, tzinfo=UTC)

    async def begin(rid: str, fp: str = "fp") -> asyncpg.Record:
        async with metering_db.acquire() as conn:
            (row,) = await repo.begin_authorizations(conn, [(user, rid, window, 0, fp)])
            return row

    async def calls() -> int:
        async with metering_db.acquire() as conn:
            return await repo.calls_in(conn, user, window)

    first = await begin("r1")
    assert (first["fingerprint"], first["counted"], await calls()) == (None, 1, 1)
    carried = await begin("r1")  # the same request id again, unanswered: carried on, not counted
    assert (carried["fingerprint"], carried["counted"], await calls()) == (None, 1, 1)
    reused = await begin("r1", fp="other")
    assert (reused["fingerprint"], reused["response"], await calls()) == ("fp", None, 1)
    async with metering_db.acquire() as conn:
        await repo.release_claim(conn, user, "r1")  # the attempt failed: the count goes back
        assert await calls() == 0
        await repo.release_claim(conn, user, "r1")  # twice changes nothing
    assert await calls() == 0
    assert (await begin("r1"))["counted"] == 1  # its retry counts afresh
    async with metering_db.acquire() as conn:
        assert await repo.finish_authorizations(conn, [(user, "r1", "fp", b"allowed", False)]) == {(user, "r1")}
        assert await repo.finish_authorizations(conn, [(user, "r1", "fp", b"late", False)]) == set()
    replay = await begin("r1")
    assert (replay["fingerprint"], bytes(replay["response"]), await calls()) == ("fp", b"allowed", 1)
    assert (await begin("r2"))["counted"] == 2
    async with metering_db.acquire() as conn:
        assert await repo.finish_authorizations(conn, [(user, "r2", "fp", b"refused", True)]) == {(user, "r2")}
    assert await calls() == 1  # a refusal's count went back with its answer
    assert bytes((await begin("r2"))["response"]) == b"refused" and await calls() == 1
