"""The usage pipeline (issue 9): one test per defect the issue lists, each asserting what a user would notice."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import grpc
import pytest
from creditmeter.common.v1 import service_kind_pb2 as skpb
from creditmeter.credits.v1 import credits_pb2 as cpb
from creditmeter.metering.v1 import metering_pb2 as pb
from creditmeter.openrouter.v1 import openrouter_pb2_grpc

from services.common.auth import StaticTokenSource
from services.common.bootstrap import RunningService
from services.common.db import create_pool
from services.common.grpcserver import connect
from services.common.rpcstatus import error_info_from
from services.credits import verify
from services.credits.client import CreditsClient
from services.credits.config import CreditsSettings
from services.credits.ledger import SLOW_ACCOUNTS_PER_TRANSACTION
from services.credits.server import create_server as create_credits_server
from services.metering.domain import Event
from services.metering.repository import record_events
from services.metering.workflow import Metering
from tests.conftest import Keys, Postgres, credits_environ, request_id
from tests.integration.conftest import (
    USD,
    Credits,
    MeteringCaller,
    assert_ledger_ok,
    assert_metering_ok,
    time_travel,
)
from tests.integration.test_metering import PAID, _event, _settled
from tools.fake_openrouter import FakeOpenRouter


async def _status(metering_db: asyncpg.Pool, event_id: str) -> str | None:
    async with metering_db.acquire() as conn:
        value = await conn.fetchval("SELECT status FROM events WHERE event_id = $1", event_id)
    return None if value is None else str(value)


@contextlib.asynccontextmanager
async def _standalone_metering(
    credits_db: str, keys: Keys, credits_port: int, openrouter_port: int
) -> AsyncIterator[Metering]:
    """A second metering process's use cases (another replica) over its own pool and channels."""
    token = StaticTokenSource(keys.token("svc-metering", "svc-metering"))
    pool = await create_pool(credits_db, "metering", application_name="replica")
    ledger = connect(f"127.0.0.1:{credits_port}", token)
    pricing = connect(f"127.0.0.1:{openrouter_port}", token)
    try:
        yield Metering(
            pool, CreditsClient(ledger, 5, "metering"), openrouter_pb2_grpc.OpenRouterServiceStub(pricing), 5
        )
    finally:
        await ledger.close()
        await pricing.close()
        await pool.close()


async def _recover_due_now(
    metering_db: asyncpg.Pool,
    event_ids: list[str],
    credits_db: str,
    keys: Keys,
    credits_server: RunningService,
    openrouter_server: RunningService,
) -> None:
    """The outbox without waiting for its timer: the events become due and another replica runs one pass."""
    async with metering_db.acquire() as conn:
        await conn.execute("UPDATE events SET next_attempt_at = now() WHERE event_id = ANY($1::text[])", event_ids)
    async with _standalone_metering(credits_db, keys, credits_server.port, openrouter_server.port) as replica:
        await replica.recover()


async def test_a_batch_refused_for_a_reused_event_id_records_nothing(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(5 * USD)
    tracked = _event(user)
    await metering.call("TrackUsage", pb.TrackUsageRequest(event=tracked))
    reused = pb.UsageEvent()
    reused.CopyFrom(tracked)
    reused.output_tokens += 1
    fresh = [_event(user), _event(user)]
    assert await metering.reason("TrackUsageBatch", pb.TrackUsageBatchRequest(events=[*fresh, reused])) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "EVENT_ID_REUSED",
    )
    # The same inside one batch: an id twice with different contents refuses the batch.
    twin = pb.UsageEvent()
    twin.CopyFrom(fresh[0])
    twin.input_tokens += 1
    assert (await metering.reason("TrackUsageBatch", pb.TrackUsageBatchRequest(events=[fresh[0], twin])))[1] == (
        "EVENT_ID_REUSED"
    )
    for event in fresh:
        assert await _status(metering_db, event.event_id) is None
    # ... and no recovery pass charges them later.
    balance = (await credits.balance(user)).balance_nanos
    async with metering_db.acquire() as conn:
        await conn.execute("UPDATE events SET next_attempt_at = now() WHERE user_id = $1", user)
    await asyncio.sleep(0.2)
    assert (await credits.balance(user)).balance_nanos == balance
    # Exact repeats, inside a batch and of an earlier batch, are duplicates, not errors.
    again = await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=[tracked, fresh[1], fresh[1]]))
    assert [r.duplicate for r in again.results] == [True, False, True]
    await _settled(metering_db, [fresh[1].event_id])
    await assert_metering_ok(db, metering_db)


async def test_usage_event_ids_do_not_collide_with_ledger_request_ids(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(5 * USD)
    shared = f"shared-{uuid.uuid4().hex}"
    await credits.call(
        "Deduct",
        cpb.DeductRequest(user_id=user, amount_nanos=1000, reason="other", request_id=shared),
        credits.platform_token,
    )
    await credits.as_service(
        "CreateHold", cpb.CreateHoldRequest(user_id=user, amount_nanos=1000, ttl_seconds=60, request_id=shared)
    )
    events = [_event(user, event_id=shared), _event(user)]
    answer = await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=events))
    await _settled(metering_db, [e.event_id for e in events])
    async with metering_db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT status, charged_nanos FROM events WHERE event_id = ANY($1::text[])", [e.event_id for e in events]
        )
    assert [r["status"] for r in rows] == ["CHARGED", "CHARGED"]
    cost = sum(r.cost_nanos for r in answer.results)
    assert sum(r["charged_nanos"] for r in rows) == cost
    assert (await credits.balance(user)).balance_nanos == 5 * USD - 1000 - cost
    await assert_metering_ok(db, metering_db)


@contextlib.contextmanager
def _listed(fake_openrouter: FakeOpenRouter, model: str, name: str) -> Iterator[None]:
    """``model`` is in the fake OpenRouter catalog for the block: $1 per million input tokens, $2 output."""
    with fake_openrouter.lock:
        fake_openrouter.models["data"].append(
            {
                "id": model,
                "name": name,
                "context_length": 8192,
                "pricing": {"prompt": "0.000001", "completion": "0.000002", "request": "0", "image": "0"},
            }
        )
    try:
        yield
    finally:
        with fake_openrouter.lock:
            fake_openrouter.models["data"] = [m for m in fake_openrouter.models["data"] if m["id"] != model]


async def test_track_records_and_charges_while_openrouter_is_down(
    metering: MeteringCaller,
    credits: Credits,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
    credits_db: str,
    keys: Keys,
    credits_server: RunningService,
    openrouter_server: RunningService,
) -> None:
    """Prices are local: pricing needs no openrouter call (its stub is pointed at nothing here)."""
    from services.metering import workflow

    user = await credits.funded_user(5 * USD)
    await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user)))  # the book is loaded
    book = workflow.PriceBookCache
    fetches = 0
    original = book._fetch

    async def counting(self: workflow.PriceBookCache, refresh: bool) -> object:
        nonlocal fetches
        fetches += 1
        raise workflow.Unavailable("openrouter: UNAVAILABLE")

    book._fetch = counting  # type: ignore[assignment,method-assign]
    try:
        tracked = await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user)))
        assert tracked.state == pb.EVENT_STATE_CHARGED and tracked.charged_nanos == 495_000
        # An unknown model with openrouter away is recorded (usage happened), not refused or lost.
        unknown = _event(user, model="new-vendor/brand-new-model")
        pending = await metering.call("TrackUsage", pb.TrackUsageRequest(event=unknown))
        assert pending.state == pb.EVENT_STATE_PENDING and fetches >= 1
        assert await _status(metering_db, unknown.event_id) == "RECORDED"
    finally:
        book._fetch = original  # type: ignore[method-assign]
    # Back: the recovery pass refreshes the catalog once, the model is not there, the event is parked.
    await _recover_due_now(metering_db, [unknown.event_id], credits_db, keys, credits_server, openrouter_server)
    async with metering_db.acquire() as conn:
        row = await conn.fetchrow("SELECT status, park_reason FROM events WHERE event_id = $1", unknown.event_id)
    assert (row["status"], row["park_reason"]) == ("PARKED", "MODEL_NOT_FOUND")
    await assert_metering_ok(db, metering_db)


async def test_a_model_listed_after_start_up_is_metered_without_a_manual_sync(
    metering: MeteringCaller,
    credits: Credits,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
    fake_openrouter: FakeOpenRouter,
) -> None:
    user = await credits.funded_user(5 * USD)
    await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user)))  # the book is loaded
    model = f"newcomer/model-{uuid.uuid4().hex[:8]}"
    refused = _event(user, model=model)
    assert await metering.reason("TrackUsage", pb.TrackUsageRequest(event=refused)) == (
        grpc.StatusCode.NOT_FOUND,
        "MODEL_NOT_FOUND",
    )
    assert await _status(metering_db, refused.event_id) is None
    with _listed(fake_openrouter, model, "Newcomer"):
        tracked = await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user, model=model)))
    # (1000 x 1 + 500 x 2) micro-USD + the trial's 10% markup, from the refreshed catalog.
    assert tracked.state == pb.EVENT_STATE_CHARGED and tracked.charged_nanos == 2_200_000
    await assert_metering_ok(db, metering_db)


@pytest.fixture
async def own_ledger(postgres: Postgres, keys: Keys) -> AsyncIterator[tuple[Credits, asyncpg.Pool]]:
    """A credits service on a database of its own: usage charged here on purpose has no metering event."""
    url = await postgres.database(f"ledger_{uuid.uuid4().hex[:8]}")
    running = await create_credits_server(CreditsSettings.from_env(credits_environ(url, keys)))
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, server_settings={"search_path": "credits"})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Credits(channel, keys), pool
    finally:
        await pool.close()
        await running.stop(1)


async def test_charge_usage_batch_checks_reuse_before_commit_and_records_every_outcome(
    own_ledger: tuple[Credits, asyncpg.Pool],
) -> None:
    credits, db = own_ledger
    user = await credits.funded_user(USD)
    other = await credits.funded_user(USD)
    first = cpb.UsageItem(user_id=user, event_id="e-1", amount_nanos=1000, service="LLM")
    zero = cpb.UsageItem(user_id=user, event_id="e-zero", amount_nanos=0, service="LLM")
    answer = await credits.as_service("ChargeUsageBatch", cpb.ChargeUsageBatchRequest(items=[first, zero]))
    assert [r.outcome for r in answer.results] == [cpb.USAGE_OUTCOME_CHARGED, cpb.USAGE_OUTCOME_CHARGED]
    async with db.acquire() as conn:
        outcomes = await conn.fetch("SELECT event_id, charged_nanos FROM usage_charges WHERE user_id = $1", user)
    assert {r["event_id"]: r["charged_nanos"] for r in outcomes} == {"e-1": 1000, "e-zero": 0}
    # The same key with another amount changes nothing and says so; the rest of the batch is charged.
    changed = cpb.UsageItem(user_id=user, event_id="e-1", amount_nanos=2000, service="LLM")
    fine = cpb.UsageItem(user_id=other, event_id="e-1", amount_nanos=3000, service="LLM")
    answer = await credits.as_service("ChargeUsageBatch", cpb.ChargeUsageBatchRequest(items=[changed, zero, fine]))
    assert [r.outcome for r in answer.results] == [
        cpb.USAGE_OUTCOME_REUSED,
        cpb.USAGE_OUTCOME_CHARGED,
        cpb.USAGE_OUTCOME_CHARGED,
    ]
    assert [r.duplicate for r in answer.results] == [True, True, False]
    assert (await credits.balance(user)).balance_nanos == USD - 1000
    assert (await credits.balance(other)).balance_nanos == USD - 3000
    async with db.acquire() as conn:
        results = await verify.verify(conn)
    assert all(r.ok for r in results), [r.line() for r in results if not r.ok]


async def _trial_credits(db: asyncpg.Pool) -> int:
    """What the trial tier grants a newly opened account."""
    return int(await db.fetchval("SELECT credits_nanos FROM tiers WHERE tier_id = 'trial'"))


async def test_a_batch_opens_new_accounts_and_maintains_due_ones_a_few_dozen_per_transaction(
    own_ledger: tuple[Credits, asyncpg.Pool],
) -> None:
    """Accounts a usage batch has to open, or bring up to date, share transactions (in user-id order), and
    each ends as if it had been handled alone: the trial tier and its first allocation, or the new period."""
    credits, db = own_ledger
    run = uuid.uuid4().hex[:8]
    new = [f"open-{run}-{i:03d}" for i in range(2 * SLOW_ACCOUNTS_PER_TRANSACTION + 20)]
    due = await credits.funded_user(USD)  # the trial's own allocation, exactly
    await time_travel(db, due, days=8)  # its weekly period has ended and its allocation expired
    items = [cpb.UsageItem(user_id=u, event_id=f"ev-{u}", amount_nanos=1000, service="LLM") for u in [due, *new]]
    answer = await credits.as_service("ChargeUsageBatch", cpb.ChargeUsageBatchRequest(items=items))
    assert [(r.outcome, r.charged_nanos) for r in answer.results] == [(cpb.USAGE_OUTCOME_CHARGED, 1000)] * len(items)
    trial = await _trial_credits(db)
    async with db.acquire() as conn:
        accounts = await conn.fetch("SELECT user_id, tier_id, balance_nanos FROM accounts WHERE user_id = ANY($1)", new)
        opened = await conn.fetch(
            "SELECT user_id, xmin::text AS xid FROM transactions WHERE user_id = ANY($1) AND kind = 'TIER_ALLOCATION'",
            new,
        )
        due_kinds = await conn.fetch(
            "SELECT kind, amount_nanos FROM transactions WHERE user_id = $1 ORDER BY transaction_id", due
        )
    assert trial > 1000
    assert sorted((r["user_id"], r["tier_id"], r["balance_nanos"]) for r in accounts) == [
        (u, "trial", trial - 1000) for u in new
    ]
    assert sorted(r["user_id"] for r in opened) == new  # one first allocation each
    # 120 accounts opened in three transactions, not 120 (the rows of one transaction share its xmin).
    assert len({r["xid"] for r in opened}) == -(-len(new) // SLOW_ACCOUNTS_PER_TRANSACTION) == 3
    assert [(r["kind"], r["amount_nanos"]) for r in due_kinds] == [
        ("TIER_ALLOCATION", trial),
        ("EXPIRY", trial),
        ("TIER_ALLOCATION", trial),
        ("DEDUCTION", 1000),
    ]
    assert (await credits.balance(due)).balance_nanos == trial - 1000
    await assert_ledger_ok(db)


async def test_concurrent_batches_over_the_same_new_users_open_each_account_once(
    own_ledger: tuple[Credits, asyncpg.Pool],
) -> None:
    """Four batches race to open the same 120 accounts (in the same order, so no deadlock): each account is
    opened once, with one first allocation, and every batch's charge lands on it."""
    credits, db = own_ledger
    run = uuid.uuid4().hex[:8]
    users = [f"race-{run}-{i:03d}" for i in range(120)]
    batches = [
        [cpb.UsageItem(user_id=u, event_id=f"b{b}-{u}", amount_nanos=1000, service="LLM") for u in users]
        for b in range(4)
    ]
    answers = await asyncio.gather(
        *(credits.as_service("ChargeUsageBatch", cpb.ChargeUsageBatchRequest(items=b)) for b in batches)
    )
    assert {(r.outcome, r.charged_nanos) for a in answers for r in a.results} == {(cpb.USAGE_OUTCOME_CHARGED, 1000)}
    trial = await _trial_credits(db)
    async with db.acquire() as conn:
        opened = await conn.fetch(
            "SELECT user_id, count(*) AS n FROM transactions WHERE user_id = ANY($1) AND kind = 'TIER_ALLOCATION'"
            " GROUP BY user_id",
            users,
        )
        balances = await conn.fetch("SELECT user_id, balance_nanos FROM accounts WHERE user_id = ANY($1)", users)
    assert sorted((r["user_id"], r["n"]) for r in opened) == [(u, 1) for u in users]
    assert sorted((r["user_id"], r["balance_nanos"]) for r in balances) == [(u, trial - 4000) for u in users]
    await assert_ledger_ok(db)


async def test_a_hold_is_captured_only_by_usage_of_its_own_account(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    owner = await credits.funded_user(5 * USD)
    stranger = await credits.funded_user(5 * USD)
    allowed = await metering.call(
        "Authorize",
        pb.AuthorizeRequest(
            user_id=owner,
            service=skpb.SERVICE_KIND_LLM,
            model=PAID,
            input_tokens=1000,
            max_output_tokens=4000,
            request_id=request_id(),
        ),
    )
    tracked = await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(stranger, hold_id=allowed.hold_id)))
    assert tracked.state == pb.EVENT_STATE_CHARGED and tracked.charged_nanos == 495_000
    owner_balance = await credits.balance(owner)
    assert (owner_balance.balance_nanos, owner_balance.held_nanos) == (5 * USD, allowed.held_nanos)
    assert (await credits.balance(stranger)).balance_nanos == 5 * USD - 495_000
    await assert_metering_ok(db, metering_db)


async def test_the_whole_valid_range_is_chargeable_and_beyond_it_is_refused_at_the_door(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(USD)
    longest = _event(user, event_id="x" * 128)
    huge_tokens = _event(user, input_tokens=10_000_000_000, output_tokens=10_000_000_000)
    answer = await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=[longest, huge_tokens]))
    assert [r.state for r in answer.results] == [pb.EVENT_STATE_CHARGED, pb.EVENT_STATE_SHORTFALL]
    assert answer.results[0].charged_nanos == 495_000
    assert answer.results[1].charged_nanos == USD - 495_000  # what was left; the rest is a recorded shortfall
    assert answer.results[1].shortfall_nanos == answer.results[1].cost_nanos - (USD - 495_000)
    # An AGENT quantity whose cost no event may reach is refused with a reason, and nothing is recorded.
    agents = _event(user, service=skpb.SERVICE_KIND_AGENT, quantity=10_000_000_000)
    assert await metering.reason("TrackUsage", pb.TrackUsageRequest(event=agents)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "COST_OUT_OF_RANGE",
    )
    assert await _status(metering_db, agents.event_id) is None
    # The account is out of credits: new paid calls are refused.
    refused = await metering.call(
        "Authorize",
        pb.AuthorizeRequest(user_id=user, service=skpb.SERVICE_KIND_SEARCH, quantity=1, request_id=request_id()),
    )
    assert (refused.allowed, refused.reason) == (False, "INSUFFICIENT_CREDITS")
    await assert_metering_ok(db, metering_db)


async def _recorded_but_uncharged(metering_db: asyncpg.Pool, user: str, count: int) -> list[str]:
    """Events as a crashed process leaves them: recorded and priced, never charged, due for recovery."""
    ids = [f"orphan-{uuid.uuid4().hex}" for _ in range(count)]
    async with metering_db.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO events (event_id, user_id, service, model, input_tokens, output_tokens, occurred_at,
                                fingerprint, cost_nanos, price_version, status, next_attempt_at)
            SELECT id, $2, 'LLM', $3, 1000, 500, now(), 'fp', 495000, 'rc1-cat1', 'RECORDED', now()
              FROM unnest($1::text[]) id
            """,
            ids,
            user,
            PAID,
        )
        await conn.execute(
            """
            INSERT INTO daily_usage AS d (user_id, day, service, model, event_count, input_tokens, output_tokens,
                                          cost_nanos)
            VALUES ($1, (now() AT TIME ZONE 'UTC')::date, 'LLM', $2, $3::bigint, 1000 * $3::bigint, 500 * $3::bigint,
                    495000 * $3::bigint)
            ON CONFLICT (user_id, day, service, model) DO UPDATE SET event_count = d.event_count + EXCLUDED.event_count,
               input_tokens = d.input_tokens + EXCLUDED.input_tokens,
               output_tokens = d.output_tokens + EXCLUDED.output_tokens,
               cost_nanos = d.cost_nanos + EXCLUDED.cost_nanos
            """,
            user,
            PAID,
            count,
        )
    return ids


async def test_recovery_replicas_share_the_work_without_overlap(
    metering: MeteringCaller,
    credits: Credits,
    credits_db: str,
    keys: Keys,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
    credits_server: RunningService,
    openrouter_server: RunningService,
) -> None:
    user = await credits.funded_user(100 * USD)
    ids = await _recorded_but_uncharged(metering_db, user, 300)
    async with (
        _standalone_metering(credits_db, keys, credits_server.port, openrouter_server.port) as one,
        _standalone_metering(credits_db, keys, credits_server.port, openrouter_server.port) as two,
        _standalone_metering(credits_db, keys, credits_server.port, openrouter_server.port) as three,
    ):
        claimed = await asyncio.gather(*(m.recover(batch=40) for m in (one, two, three)))
    assert sum(claimed) >= 300
    await _settled(metering_db, ids, seconds=5)
    async with db.acquire() as conn:
        outcomes = await conn.fetchval(
            "SELECT count(*) FROM usage_charges WHERE user_id = $1 AND event_id = ANY($2::text[])", user, ids
        )
    assert outcomes == 300
    assert (await credits.balance(user)).balance_nanos == 100 * USD - 300 * 495_000
    await assert_metering_ok(db, metering_db)


async def test_one_poison_event_is_parked_with_a_reason_and_blocks_no_other(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    user = await credits.funded_user(5 * USD)
    # Someone else already used this usage key in the ledger with another payload.
    poisoned = f"poison-{uuid.uuid4().hex}"
    await credits.as_service(
        "ChargeUsageBatch",
        cpb.ChargeUsageBatchRequest(items=[cpb.UsageItem(user_id=user, event_id=poisoned, amount_nanos=7)]),
    )
    events = [_event(user), _event(user, event_id=poisoned), _event(user)]
    answer = await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=events))
    assert [r.state for r in answer.results] == [
        pb.EVENT_STATE_CHARGED,
        pb.EVENT_STATE_PARKED,
        pb.EVENT_STATE_CHARGED,
    ]
    parked = await metering.call(
        "ListParkedEvents", pb.ListParkedEventsRequest(user_id=user), metering.keys.token("ops", "admin")
    )
    assert [(e.event.event_id, e.park_reason) for e in parked.events] == [(poisoned, "LEDGER_EVENT_ID_REUSED")]
    forbidden = await metering.reason(
        "ListParkedEvents", pb.ListParkedEventsRequest(), metering.keys.token(user, "user")
    )
    assert forbidden[0] == grpc.StatusCode.PERMISSION_DENIED
    assert (await credits.balance(user)).balance_nanos == 5 * USD - 7 - 2 * 495_000


async def test_an_admin_retries_parked_events_once_their_cause_is_fixed(
    metering: MeteringCaller,
    credits: Credits,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
    credits_db: str,
    keys: Keys,
    credits_server: RunningService,
    openrouter_server: RunningService,
    fake_openrouter: FakeOpenRouter,
) -> None:
    user = await credits.funded_user(5 * USD)
    admin = metering.keys.token("ops", "admin")
    model = f"late/model-{uuid.uuid4().hex[:8]}"
    # Usage of a model the catalog does not list yet, recorded while pricing was away (as openrouter being
    # down leaves it): the recovery pass refreshes the catalog once, finds nothing and parks it.
    unpriced = Event(f"late-{uuid.uuid4().hex}", user, "LLM", model, "", 1000, 500, 0, False, "", datetime.now(UTC))
    async with metering_db.acquire() as conn:
        await record_events(conn, [unpriced], [None], [""])
    await _recover_due_now(metering_db, [unpriced.event_id], credits_db, keys, credits_server, openrouter_server)
    # And one whose key the ledger already holds with another payload: no retry can change that.
    poisoned = f"poison-{uuid.uuid4().hex}"
    await credits.as_service(
        "ChargeUsageBatch",
        cpb.ChargeUsageBatchRequest(items=[cpb.UsageItem(user_id=user, event_id=poisoned, amount_nanos=7)]),
    )
    charged = _event(user)
    await metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=[charged, _event(user, event_id=poisoned)]))
    parked = await metering.call("ListParkedEvents", pb.ListParkedEventsRequest(user_id=user), admin)
    assert {(e.event.event_id, e.park_reason) for e in parked.events} == {
        (unpriced.event_id, "MODEL_NOT_FOUND"),
        (poisoned, "LEDGER_EVENT_ID_REUSED"),
    }
    balance = (await credits.balance(user)).balance_nanos
    assert balance == 5 * USD - 7 - 495_000

    ids = [unpriced.event_id, poisoned, charged.event_id]
    # Refused requests change nothing: an unknown id among them, no request id, a caller who is not an admin.
    unknown = pb.RetryParkedEventsRequest(event_ids=[*ids, f"nowhere-{uuid.uuid4().hex}"], request_id=request_id())
    assert await metering.reason("RetryParkedEvents", unknown, admin) == (grpc.StatusCode.NOT_FOUND, "EVENT_NOT_FOUND")
    assert await metering.reason("RetryParkedEvents", pb.RetryParkedEventsRequest(event_ids=ids), admin) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "MISSING_REQUEST_ID",
    )
    as_user = pb.RetryParkedEventsRequest(event_ids=ids, request_id=request_id())
    forbidden = await metering.reason("RetryParkedEvents", as_user, metering.keys.token(user, "user"))
    assert forbidden[0] == grpc.StatusCode.PERMISSION_DENIED
    assert await _status(metering_db, unpriced.event_id) == "PARKED"
    assert await _status(metering_db, poisoned) == "PARKED"

    # The catalog lists the model now; the admin retries all three (one of them twice in the list).
    retry = pb.RetryParkedEventsRequest(event_ids=[*ids, unpriced.event_id], request_id=request_id())
    with _listed(fake_openrouter, model, "Late"):
        answer = await metering.call("RetryParkedEvents", retry, admin)
    results = {r.event.event.event_id: r for r in answer.results}
    assert [r.event.event.event_id for r in answer.results] == ids
    # Priced from the refreshed catalog ((1000 x 1 + 500 x 2) micro-USD + the trial's 10%) and charged.
    late = results[unpriced.event_id]
    assert late.retried and late.event.state == pb.EVENT_STATE_CHARGED
    assert (late.event.cost_nanos, late.event.charged_nanos, late.event.park_reason) == (2_200_000, 2_200_000, "")
    # The ledger still holds another payload under that key: parked again, with its reason, one attempt.
    again = results[poisoned]
    assert again.retried and again.event.state == pb.EVENT_STATE_PARKED
    assert (again.event.park_reason, again.event.attempts) == ("LEDGER_EVENT_ID_REUSED", 1)
    # Not parked: left as it was.
    assert not results[charged.event_id].retried
    assert results[charged.event_id].event.state == pb.EVENT_STATE_CHARGED
    assert (await credits.balance(user)).balance_nanos == balance - 2_200_000

    # Idempotent by request id: the retry answers the first response and charges nothing more; the same id
    # for other events is refused.
    assert await metering.call("RetryParkedEvents", retry, admin) == answer
    assert (await credits.balance(user)).balance_nanos == balance - 2_200_000
    reused = pb.RetryParkedEventsRequest(event_ids=[poisoned], request_id=retry.request_id)
    assert await metering.reason("RetryParkedEvents", reused, admin) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
    )
    async with db.acquire() as conn:
        outcomes = await conn.fetchval(
            "SELECT count(*) FROM usage_charges WHERE user_id = $1 AND event_id = $2", user, unpriced.event_id
        )
    assert outcomes == 1
    await assert_metering_ok(db, metering_db)


async def test_admins_see_pending_events_oldest_first_with_their_last_error(
    metering: MeteringCaller,
    credits: Credits,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
    credits_db: str,
    keys: Keys,
    credits_server: RunningService,
    openrouter_server: RunningService,
) -> None:
    user = await credits.funded_user(5 * USD)
    admin = metering.keys.token("ops", "admin")
    # Three events waiting for the outbox, as a credits outage leaves them: failed attempts, backoff.
    ids = await _recorded_but_uncharged(metering_db, user, 3)
    async with metering_db.acquire() as conn:
        for age, event_id in enumerate(reversed(ids), start=1):
            await conn.execute(
                """
                UPDATE events SET recorded_at = now() - make_interval(secs => $2), attempts = 2,
                       last_error = 'UNAVAILABLE', next_attempt_at = now() + interval '1 hour'
                 WHERE event_id = $1
                """,
                event_id,
                float(age),
            )
    try:
        first = await metering.call("ListPendingEvents", pb.ListPendingEventsRequest(user_id=user, page_size=2), admin)
        assert first.total == 3 and first.next_page_token
        rest = await metering.call(
            "ListPendingEvents",
            pb.ListPendingEventsRequest(user_id=user, page_size=2, page_token=first.next_page_token),
            admin,
        )
        assert rest.total == 3 and not rest.next_page_token
        listed = [*first.events, *rest.events]
        assert [e.event.event_id for e in listed] == ids  # oldest first
        assert all(e.state == pb.EVENT_STATE_PENDING and not e.charged for e in listed)
        assert all((e.attempts, e.last_error) == (2, "UNAVAILABLE") for e in listed)
        assert all(e.next_attempt_at.ToDatetime(UTC) > datetime.now(UTC) for e in listed)
        everyone = await metering.call("ListPendingEvents", pb.ListPendingEventsRequest(page_size=500), admin)
        assert set(ids) <= {e.event.event_id for e in everyone.events} and everyone.total >= 3
        for caller in (metering.keys.token(user, "user"), metering.service):
            refused = await metering.reason("ListPendingEvents", pb.ListPendingEventsRequest(user_id=user), caller)
            assert refused[0] == grpc.StatusCode.PERMISSION_DENIED
    finally:
        # The outbox charges them once due; then nobody's list has them any more.
        await _recover_due_now(metering_db, ids, credits_db, keys, credits_server, openrouter_server)
    after = await metering.call("ListPendingEvents", pb.ListPendingEventsRequest(user_id=user), admin)
    assert (after.total, list(after.events)) == (0, [])
    await assert_metering_ok(db, metering_db)


async def test_a_pending_event_can_be_followed_to_its_charge_by_its_id(
    metering: MeteringCaller,
    credits: Credits,
    db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
    credits_db: str,
    keys: Keys,
    credits_server: RunningService,
    openrouter_server: RunningService,
) -> None:
    user = await credits.funded_user(5 * USD)
    owner = metering.keys.token(user, "user")
    [event_id] = await _recorded_but_uncharged(metering_db, user, 1)
    async with metering_db.acquire() as conn:
        await conn.execute(
            "UPDATE events SET attempts = 1, last_error = 'UNAVAILABLE', next_attempt_at = now() + interval '1 hour'"
            " WHERE event_id = $1",
            event_id,
        )
    lookup = pb.GetUsageEventRequest(event_id=event_id)
    pending = (await metering.call("GetUsageEvent", lookup, owner)).event
    assert (pending.event.event_id, pending.event.user_id, pending.state) == (event_id, user, pb.EVENT_STATE_PENDING)
    assert (pending.cost_nanos, pending.charged_nanos, pending.charged) == (495_000, 0, False)
    assert (pending.attempts, pending.last_error) == (1, "UNAVAILABLE")
    assert pending.next_attempt_at.ToDatetime(UTC) > datetime.now(UTC)
    # Another user learns nothing, not even that the id exists; a malformed id is refused at the door.
    intruder = metering.keys.token(f"intruder-{uuid.uuid4().hex[:8]}", "user")
    assert await metering.reason("GetUsageEvent", lookup, intruder) == (grpc.StatusCode.NOT_FOUND, "EVENT_NOT_FOUND")
    unknown = pb.GetUsageEventRequest(event_id=f"never-{uuid.uuid4().hex}")
    assert await metering.reason("GetUsageEvent", unknown, owner) == (grpc.StatusCode.NOT_FOUND, "EVENT_NOT_FOUND")
    malformed = await metering.reason("GetUsageEvent", pb.GetUsageEventRequest(event_id="no spaces"), owner)
    assert malformed[0] == grpc.StatusCode.INVALID_ARGUMENT
    # The outbox charges it once due, without the caller resending anything; the lookup shows the charge.
    await _recover_due_now(metering_db, [event_id], credits_db, keys, credits_server, openrouter_server)
    charged = (await metering.call("GetUsageEvent", lookup, metering.service)).event
    assert (charged.state, charged.charged, charged.charged_nanos, charged.shortfall_nanos) == (
        pb.EVENT_STATE_CHARGED,
        True,
        495_000,
        0,
    )
    assert charged.transaction_id and (charged.last_error, charged.HasField("next_attempt_at")) == ("", False)
    assert (await credits.balance(user)).balance_nanos == 5 * USD - 495_000
    await assert_metering_ok(db, metering_db)


async def test_four_batches_of_1000_events_over_500_accounts_in_flight_at_once(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    users = [f"many-{uuid.uuid4().hex[:10]}-{i}" for i in range(500)]
    for start in range(0, 500, 50):
        await asyncio.gather(
            *(
                credits.as_admin(
                    "Allocate",
                    cpb.AllocateRequest(user_id=u, amount_nanos=10 * USD, reason="bench", request_id=request_id()),
                )
                for u in users[start : start + 50]
            )
        )
    batches = [[_event(users[(b * 1000 + i) % 500]) for i in range(1000)] for b in range(4)]
    answers = await asyncio.gather(
        *(metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=b)) for b in batches)
    )
    assert all(len(a.results) == 1000 for a in answers)
    ids = [e.event_id for b in batches for e in b]
    await _settled(metering_db, ids)
    async with metering_db.acquire() as conn:
        charged = await conn.fetchval(
            "SELECT sum(charged_nanos) FROM events WHERE event_id = ANY($1::text[]) AND status = 'CHARGED'", ids
        )
    assert charged == 4000 * 495_000
    assert Decimal(charged) > 0
    await assert_metering_ok(db, metering_db)


async def test_verify_reports_unsettled_events_disagreements_and_ledger_usage_without_event(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    """Each corruption lives in an open transaction that the checks see and that is rolled back after."""
    from services.metering import verify as metering_verify

    user = await credits.funded_user(5 * USD)
    tracked = await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user)))
    assert tracked.state == pb.EVENT_STATE_CHARGED

    Corruption = tuple[str, ...]

    async def failing(corrupt_metering: Corruption = (), corrupt_credits: Corruption = ()) -> set[str]:
        async with db.acquire() as credits_conn, metering_db.acquire() as metering_conn:
            m, c = metering_conn.transaction(), credits_conn.transaction()
            await m.start()
            await c.start()
            try:
                if corrupt_metering:
                    await metering_conn.execute(*corrupt_metering)
                if corrupt_credits:
                    await credits_conn.execute(*corrupt_credits)
                results = await metering_verify.verify(metering_conn, grace_seconds=120)
                results += await metering_verify.cross_check_credits(metering_conn, credits_conn)
            finally:
                await m.rollback()
                await c.rollback()
        return {r.check.name for r in results if not r.ok}

    assert await failing() == set()
    stale = (
        """
        INSERT INTO events (event_id, user_id, service, occurred_at, fingerprint, status, recorded_at)
        VALUES ($1, $2, 'SEARCH', now(), 'fp', 'RECORDED', now() - interval '1 hour')
        """,
        f"stale-{uuid.uuid4().hex}",
        user,
    )
    assert await failing(stale) == {"recorded_events_settle", "rollups_equal_events"}  # not counted either
    disagree = ("UPDATE events SET transaction_id = '' WHERE event_id = $1", tracked.event_id)
    assert await failing(disagree) == {"event_state_matches_ledger"}
    ghost = (
        """
        INSERT INTO usage_charges (user_id, event_id, fingerprint, amount_nanos, charged_nanos, shortfall_nanos,
                                   actor_subject)
        VALUES ($1, $2, 'fp', 5, 0, 5, 'someone')
        """,
        user,
        f"ghost-{uuid.uuid4().hex}",
    )
    assert await failing(corrupt_credits=ghost) == {"ledger_usage_has_event"}


async def test_concurrent_tracks_recorded_together_each_answer_for_itself(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    """Single tracks arriving together share one recording statement (group commit), yet a call that
    reuses an event id with another payload is refused alone, repeats stay duplicates, and one new id
    sent twice at once is new exactly once."""
    user = await credits.funded_user(5 * USD)
    old = _event(user)
    await metering.call("TrackUsage", pb.TrackUsageRequest(event=old))
    reused = pb.UsageEvent()
    reused.CopyFrom(old)
    reused.output_tokens += 7
    fresh = [_event(user) for _ in range(30)]
    twice = _event(user)

    async def track(event: pb.UsageEvent) -> pb.TrackUsageResponse | str:
        try:
            return await metering.call("TrackUsage", pb.TrackUsageRequest(event=event))
        except grpc.aio.AioRpcError as error:
            info = error_info_from(error)
            return info.reason if info else error.code().name

    answers = await asyncio.gather(*(track(e) for e in [*fresh, old, old, reused, reused, twice, twice]))
    for answer in answers[:30]:
        assert not isinstance(answer, str) and not answer.duplicate
    assert [a.duplicate for a in answers[30:32] if not isinstance(a, str)] == [True, True]
    assert answers[32:34] == ["EVENT_ID_REUSED", "EVENT_ID_REUSED"]
    assert sorted(a.duplicate for a in answers[34:36] if not isinstance(a, str)) == [False, True]
    await _settled(metering_db, [e.event_id for e in [*fresh, old, twice]])
    async with metering_db.acquire() as conn:
        stored = await conn.fetchval("SELECT output_tokens FROM events WHERE event_id = $1", old.event_id)
        count = await conn.fetchval("SELECT count(*) FROM events WHERE user_id = $1", user)
    assert stored == old.output_tokens  # the refused payload changed nothing
    assert count == 32
    await assert_metering_ok(db, metering_db)


async def test_set_based_functions_are_planned_for_their_input(
    db: asyncpg.Pool, credits: Credits, metering: MeteringCaller
) -> None:
    """A function that takes a batch as arrays must not fall back to the plan cache's generic plan (which
    guesses 10 rows per unnest and turns batch self-joins quadratic: seconds per 2,000-item batch).
    (The service fixtures make sure both services have migrated their schemas.)"""
    async with db.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT p.oid::regprocedure::text AS name, coalesce(p.proconfig, '{}') AS config
              FROM pg_proc p
             WHERE p.pronamespace::regnamespace::text IN ('credits', 'metering')
               AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
               AND EXISTS (SELECT 1 FROM unnest(p.proargtypes) t JOIN pg_type ty ON ty.oid = t WHERE ty.typelem <> 0
                            AND ty.typlen = -1)
            """
        )
    names = {r["name"] for r in rows}
    assert any("ledger_charge_usage_batch" in n for n in names) and any("record_events" in n for n in names)
    generic = [r["name"] for r in rows if "plan_cache_mode=force_custom_plan" not in r["config"]]
    assert generic == []


async def test_small_and_large_batches_choose_their_plans_without_touching_the_callers_settings(
    db: asyncpg.Pool, metering_db: asyncpg.Pool, credits: Credits, metering: MeteringCaller
) -> None:
    """A batch of at most 64 items reuses cached generic plans, a larger one is planned for its size (credits
    0009 and 0010, metering 0005). The switch must end with the function: the rest of the caller's transaction keeps
    its own plan_cache_mode, whichever size ran. Both sizes charge correctly."""
    users = [await credits.funded_user(5 * USD) for _ in range(3)]
    for size in (3, 65):
        async with db.acquire() as conn:
            probe = conn.transaction()
            await probe.start()
            try:
                await conn.execute("SET LOCAL plan_cache_mode = auto")
                owners = [users[i % 3] for i in range(size)]
                rows = await conn.fetch(
                    "SELECT * FROM ledger_charge_usage_batch($1, $2, $3, $4, $5::uuid[], $6, $7, $8, $9, $10)",
                    owners,
                    [f"plan-{uuid.uuid4().hex}" for _ in owners],
                    [1000] * size,
                    ["fp"] * size,
                    [None] * size,
                    ["LLM"] * size,
                    ["m"] * size,
                    ["v1"] * size,
                    "svc-metering",
                    "service",
                )
                after = await conn.fetchval("SHOW plan_cache_mode")
                spent = await conn.fetchval(
                    "SELECT sum(charged_nanos) FROM usage_charges WHERE event_id LIKE 'plan-%' AND user_id = ANY($1)",
                    users,
                )
                single = await conn.fetch(
                    "SELECT * FROM ledger_charge_usage($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    users[0],
                    [f"plan-{uuid.uuid4().hex}" for _ in range(size)],
                    [10] * size,
                    ["fp"] * size,
                    ["m"] * size,
                    [""] * size,
                    ["v1"] * size,
                    ["usage"] * size,
                    False,
                    "svc-metering",
                    "service",
                )
                after_single = await conn.fetchval("SHOW plan_cache_mode")
            finally:
                await probe.rollback()
        assert [r["status"] for r in rows] == ["OK"] * size
        assert spent == 1000 * size
        assert [(r["status"], r["charged"]) for r in single] == [("OK", 10)] * size
        assert after == after_single == "auto"
        async with metering_db.acquire() as conn:
            probe = conn.transaction()
            await probe.start()
            try:
                await conn.execute("SET LOCAL plan_cache_mode = auto")
                events = [
                    Event(f"plan-{uuid.uuid4().hex}", users[0], "LLM", "m", "", 10, 5, 0, False, "", datetime.now(UTC))
                    for _ in range(size)
                ]
                recorded = await record_events(conn, events, [1000] * size, ["v1"] * size)
                after = await conn.fetchval("SHOW plan_cache_mode")
            finally:
                await probe.rollback()
        assert [(r["is_new"], r["status"]) for r in recorded] == [(True, "RECORDED")] * size
        assert after == "auto"


async def test_a_usage_charge_reads_only_its_own_accounts(db: asyncpg.Pool, credits: Credits) -> None:
    """Charging a batch touches the rows of the batch's accounts, not the whole accounts table: the cost of a
    charge must not grow with the number of accounts the platform has (it did: a hash join over a scan of
    every account, twice per call). Measured by the transaction's own table statistics, then rolled back."""
    payer = await credits.funded_user(5 * USD)
    holder = await credits.funded_user(5 * USD)
    hold = await credits.hold(holder, USD, ttl_seconds=600)
    scanned = "SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'accounts'"
    async with db.acquire() as conn:
        probe = conn.transaction()
        await probe.start()
        try:
            # Thousands of other accounts, with statistics, so that a full scan would show.
            await conn.execute(
                """
                INSERT INTO accounts (user_id, tier_id, period_anchor, period_start, period_end)
                SELECT 'scan-probe-' || g, 'trial', now(), now(), now() + interval '1 month'
                  FROM generate_series(1, 5000) g;
                ANALYZE accounts;
                """
            )
            before = await conn.fetchval(scanned)
            rows = await conn.fetch(
                "SELECT * FROM ledger_charge_usage_batch($1, $2, $3, $4, $5::uuid[], $6, $7, $8, $9, $10)",
                [holder, payer],
                [f"probe-{uuid.uuid4().hex}", f"probe-{uuid.uuid4().hex}"],
                [USD // 2, USD // 4],
                ["fp-1", "fp-2"],
                [uuid.UUID(hold.hold.hold_id), None],
                ["LLM", "LLM"],
                ["m", "m"],
                ["v1", "v1"],
                "svc-metering",
                "service",
            )
            read = await conn.fetchval(scanned) - before
        finally:
            await probe.rollback()  # the probe accounts and both charges go with it
    # A capture (the hold's path, which also recomputes the next expiry) and a direct charge, both done.
    assert [(r["status"], r["charged"]) for r in rows] == [("OK", USD // 2), ("OK", USD // 4)]
    assert read < 100, f"the charge read {read} account rows"
    assert (await credits.balance(payer)).balance_nanos == 5 * USD


async def test_a_caller_told_charged_reads_charged_in_its_next_request(
    metering: MeteringCaller, credits: Credits
) -> None:
    """The answer waits for metering's own record of the charge, not only the ledger's: the very next read
    of the user's events and usage shows what the answer said."""
    user = await credits.funded_user(5 * USD)
    charged = 0
    for _ in range(15):
        answer = await metering.call("TrackUsage", pb.TrackUsageRequest(event=_event(user)))
        assert answer.state == pb.EVENT_STATE_CHARGED
        charged += answer.charged_nanos
        page = await metering.call("ListUsageEvents", pb.ListUsageEventsRequest(user_id=user, page_size=1))
        assert page.events[0].event.event_id == answer.event_id
        assert page.events[0].state == pb.EVENT_STATE_CHARGED
        summary = await metering.call("GetUsageSummary", pb.GetUsageSummaryRequest(user_id=user))
        assert summary.totals.charged_nanos == charged


async def test_a_large_batch_and_single_events_are_each_charged_within_their_call(
    metering: MeteringCaller, credits: Credits, db: asyncpg.Pool, metering_db: asyncpg.Pool
) -> None:
    """Large batches and single events are charged in separate lanes (services/metering/workflow.py); each
    lane answers its callers with the charge, none is left PENDING for the recovery pass."""
    users = [await credits.funded_user(5 * USD) for _ in range(3)]
    batch = [_event(users[i % 3]) for i in range(200)]
    singles = [_event(users[i % 3]) for i in range(10)]
    answers = await asyncio.gather(
        metering.call("TrackUsageBatch", pb.TrackUsageBatchRequest(events=batch)),
        *(metering.call("TrackUsage", pb.TrackUsageRequest(event=e)) for e in singles),
    )
    assert [r.state for r in answers[0].results] == [pb.EVENT_STATE_CHARGED] * 200
    assert [a.state for a in answers[1:]] == [pb.EVENT_STATE_CHARGED] * 10
    for user in users:
        events = sum(1 for e in batch + singles if e.user_id == user)
        assert (await credits.balance(user)).balance_nanos == 5 * USD - events * 495_000
    await assert_metering_ok(db, metering_db)
