"""Faults: PostgreSQL restarted under load or unreachable, a replica killed, two replicas on one database.

The restart tests run on a PostgreSQL of their own (restarting the shared one
would disturb every other suite). Clients here behave as the contract asks: a
failed request is retried once with the same request_id. The assertions are
that no request fails twice, the service serves again within seconds, and the
money adds up exactly afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from creditmeter.common.v1 import service_kind_pb2 as skpb
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.metering.v1 import metering_pb2 as mpb
from creditmeter.openrouter.v1 import openrouter_pb2 as orpb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.coupons.config import CouponsSettings
from services.coupons.server import create_server as create_coupons_server
from services.credits import verify
from services.credits.config import CreditsSettings
from services.credits.server import RunningServer, create_server
from services.metering.config import MeteringSettings
from services.metering.server import create_server as create_metering_server
from services.openrouter.config import OpenRouterSettings
from services.openrouter.server import create_server as create_openrouter_server
from tests.conftest import (
    Keys,
    Postgres,
    coupons_environ,
    credits_environ,
    metering_environ,
    new_user,
    openrouter_environ,
    request_id,
)
from tests.integration.conftest import (
    USD,
    CouponsClient,
    Credits,
    MeteringCaller,
    OpenRouterCaller,
    assert_everything_ok,
    assert_ledger_ok,
    assert_metering_ok,
)
from tools.fake_openrouter import FakeOpenRouter
from tools.localdb import start_embedded

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class OwnPostgres:
    handle: Any
    pgdata: Path
    url: str

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster), waiting until it is gone.

        Signals rather than ``pg_ctl stop``: that binary of pgserver's build was
        seen crashing (SIGSEGV) while it polled a busy server.
        """
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError("PostgreSQL did not stop")

    def start(self) -> None:
        """Starts the server again, from a fresh helper process.

        The helper is spawned without fork() (posix_spawn: no preexec, inherited
        fds), because pg_ctl forked from this gRPC-threaded process sometimes died
        with SIGSEGV.
        """
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, pgserver; pgserver.get_server(sys.argv[1], cleanup_mode=None)",
                str(self.pgdata),
            ],
            close_fds=False,
            check=True,
            timeout=60,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    folder = Path(tempfile.mkdtemp(prefix="cm-pgf-"))
    handle, url = start_embedded(folder / "data", "faults")
    own = OwnPostgres(handle, folder / "data", url)
    try:
        yield own
    finally:
        # Stopped by signal (see stop()); pgserver's own cleanup then has nothing left to do.
        with contextlib.suppress(Exception):
            own.stop()
        with contextlib.suppress(Exception):
            handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
async def resilient_server(own_postgres: OwnPostgres, keys: Keys) -> AsyncIterator[RunningServer]:
    environ = credits_environ(
        own_postgres.url, keys, DB_HEALTH_INTERVAL_SECONDS="1", DB_RECONNECT_WAIT_SECONDS="15", DB_POOL_MIN="4"
    )
    running = await create_server(CreditsSettings.from_env(environ))
    yield running
    await running.stop(1)


@dataclass
class Load:
    """Steady deductions of 1 nano from many workers; each request retried at most once, same id."""

    credits: list[Credits]
    user: str
    done: list[str] = field(default_factory=list)
    failed_once: list[str] = field(default_factory=list)
    failed_twice: list[tuple[str, str]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, index: int) -> None:
        turn = index
        while not self.stop.is_set():
            rid = request_id()
            for attempt in range(2):
                # Round-robin over the replicas; a retry goes to the next one.
                target = self.credits[turn % len(self.credits)]
                turn += 1
                try:
                    await target.deduct(self.user, 1, request_id=rid)
                    self.done.append(rid)
                    break
                except grpc.aio.AioRpcError as error:
                    if attempt == 1:
                        self.failed_twice.append((rid, f"{error.code().name}: {error.details()}"))
                    else:
                        self.failed_once.append(rid)
                        await asyncio.sleep(0.2)

    async def served_again(self, within: float) -> float:
        """Seconds until 20 more requests succeed (fails the test past ``within``)."""
        start, seen = time.monotonic(), len(self.done)
        while len(self.done) < seen + 20:
            assert time.monotonic() - start < within, "the service did not serve again in time"
            await asyncio.sleep(0.05)
        return time.monotonic() - start


async def _charged(conn: asyncpg.Connection, user: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT request_id FROM credits.transactions WHERE user_id = $1 AND kind = 'DEDUCTION'", user
    )
    return {r["request_id"] for r in rows}


async def _assert_money(url: str, load: Load, start_balance: int) -> None:
    conn = await asyncpg.connect(url, server_settings={"search_path": "credits"})
    try:
        charged = await _charged(conn, load.user)
        assert charged == set(load.done), "charged requests differ from acknowledged ones"
        balance = await conn.fetchval("SELECT balance_nanos FROM accounts WHERE user_id = $1", load.user)
        assert balance == start_balance - len(load.done)
        failures = [r.line() for r in await verify.verify(conn) if not r.ok]
        assert not failures, "\n".join(failures)
    finally:
        await conn.close()


async def test_postgres_restart_under_steady_load_loses_nothing(
    own_postgres: OwnPostgres, resilient_server: RunningServer, keys: Keys
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{resilient_server.port}") as channel:
        credits = Credits(channel, keys)
        user = await credits.funded_user(10 * USD)
        load = Load([credits], user)
        workers = [asyncio.create_task(load.worker(i)) for i in range(8)]
        try:
            await load.served_again(within=10)
            await asyncio.to_thread(own_postgres.restart)
            await load.served_again(within=10)
        finally:
            load.stop.set()
            await asyncio.gather(*workers)
    assert not load.failed_twice, load.failed_twice[:5]
    assert len(load.done) > 40
    await _assert_money(own_postgres.url, load, 10 * USD)


async def _health(channel: grpc.aio.Channel) -> int:
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
        return int(response.status)
    except grpc.aio.AioRpcError:
        return -1


async def _until_health(channel: grpc.aio.Channel, status: int, within: float) -> None:
    deadline = time.monotonic() + within
    while await _health(channel) != status:
        assert time.monotonic() < deadline, (
            f"health did not become {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}"
        )
        await asyncio.sleep(0.1)


async def test_health_reports_the_database_going_away_and_coming_back(
    own_postgres: OwnPostgres, resilient_server: RunningServer, keys: Keys
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{resilient_server.port}") as channel:
        credits = Credits(channel, keys)
        user = await credits.funded_user(USD)
        await _until_health(channel, health_pb2.HealthCheckResponse.SERVING, within=5)
        await asyncio.to_thread(own_postgres.stop)
        try:
            await _until_health(channel, health_pb2.HealthCheckResponse.NOT_SERVING, within=10)
            refused = await credits.fail("GetBalance", pb.GetBalanceRequest(user_id=user), credits.admin_token)
            assert refused.code == grpc.StatusCode.UNAVAILABLE
            assert refused.reason == "DATABASE_UNAVAILABLE"
        finally:
            await asyncio.to_thread(own_postgres.start)
        await _until_health(channel, health_pb2.HealthCheckResponse.SERVING, within=10)
        assert (await credits.deduct(user, 1)).transaction.amount_nanos == 1


# --- replicas ---------------------------------------------------------------------------------------


@dataclass
class Replica:
    process: subprocess.Popen[str]
    port: int


def _start_replica(environ: dict[str, str]) -> Replica:
    env = dict(os.environ, **environ, PYTHONPATH=f"{ROOT}:{ROOT / 'gen' / 'python'}", LOG_LEVEL="WARNING")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.credits"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the credits replica did not start")
    return Replica(process, int(json.loads(line)["port"]))


def _stop_replica(replica: Replica) -> None:
    if replica.process.poll() is None:
        replica.process.send_signal(signal.SIGTERM)
        try:
            replica.process.wait(15)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()


async def test_a_replica_killed_while_another_serves_loses_nothing(credits_db: str, keys: Keys) -> None:
    environ = credits_environ(credits_db, keys, DB_POOL_MAX="10")
    replicas = [await asyncio.to_thread(_start_replica, environ) for _ in range(2)]
    try:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{r.port}") for r in replicas]
        clients = [Credits(c, keys) for c in channels]
        user = await clients[0].funded_user(10 * USD)
        load = Load(clients, user)
        workers = [asyncio.create_task(load.worker(i)) for i in range(8)]
        try:
            await load.served_again(within=10)
            replicas[0].process.kill()  # SIGKILL: no graceful shutdown, requests cut mid-flight
            replicas[0].process.wait()
            await load.served_again(within=10)
        finally:
            load.stop.set()
            await asyncio.gather(*workers)
            for channel in channels:
                await channel.close()
    finally:
        for replica in replicas:
            _stop_replica(replica)
    assert not load.failed_twice, load.failed_twice[:5]
    await _assert_money(credits_db, load, 10 * USD)


async def test_two_replicas_on_one_database_keep_the_concurrency_rules(credits_db: str, keys: Keys) -> None:
    """The races of test_concurrency.py, with the calls split between two replicas."""
    environ = credits_environ(credits_db, keys)
    servers = [await create_server(CreditsSettings.from_env(environ)) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
    try:
        a, b = (Credits(c, keys) for c in channels)
        # 200 concurrent $1 charges against $100: exactly 100 succeed.
        user = await a.funded_user(100 * USD)
        results = await asyncio.gather(
            *((a if i % 2 else b).deduct(user, USD) for i in range(200)), return_exceptions=True
        )
        ok = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert {r.code() for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}, {
            (r.code(), r.details()) for r in refused
        }
        assert len(ok) == 100 and len(refused) == 100
        assert (await b.balance(user)).balance_nanos == 0
        # One request id sent 20 times through both replicas charges once.
        other = await b.funded_user(10 * USD)
        rid = request_id()
        same = await asyncio.gather(*((a if i % 2 else b).deduct(other, USD, request_id=rid) for i in range(20)))
        assert len({r.transaction.transaction_id for r in same}) == 1
        assert (await a.balance(other)).balance_nanos == 9 * USD
        # Holds on both replicas never reserve more than the balance.
        third = await a.funded_user(10 * USD)
        holds = await asyncio.gather(
            *((a if i % 2 else b).hold(third, USD, ttl_seconds=300) for i in range(20)), return_exceptions=True
        )
        assert sum(1 for h in holds if not isinstance(h, BaseException)) == 10
        balance = await b.balance(third)
        assert (balance.available_nanos, balance.held_nanos) == (0, 10 * USD)
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            await server.stop(1)
    pool = await asyncpg.create_pool(credits_db, min_size=1, max_size=2, server_settings={"search_path": "credits"})
    try:
        await assert_ledger_ok(pool)
    finally:
        await pool.close()


async def test_two_replicas_of_coupons_and_metering_keep_their_concurrency_rules(
    credits_db: str,
    keys: Keys,
    credits_server: RunningServer,
    openrouter_server: RunningServer,
    coupons: CouponsClient,
    metering: MeteringCaller,
    credits: Credits,
    db: asyncpg.Pool,
    coupons_db: asyncpg.Pool,
    metering_db: asyncpg.Pool,
) -> None:
    """The last-unit coupon race and the repeated usage event, each split over two replicas."""
    second_coupons = await create_coupons_server(
        CouponsSettings.from_env(coupons_environ(credits_db, keys, credits_server.port))
    )
    second_metering = await create_metering_server(
        MeteringSettings.from_env(metering_environ(credits_db, keys, credits_server.port, openrouter_server.port))
    )
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in (second_coupons, second_metering)]
    try:
        other_coupons = CouponsClient(channels[0], keys)
        other_metering = MeteringCaller(channels[1], keys)
        coupon = await coupons.create(credit_amount_nanos=USD, max_redemptions=25)
        users = [new_user("race2") for _ in range(100)]
        results = await asyncio.gather(
            *((coupons if i % 2 else other_coupons).redeem(u, coupon.code) for i, u in enumerate(users)),
            return_exceptions=True,
        )
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 25
        assert all(isinstance(r, grpc.aio.AioRpcError) for r in results if isinstance(r, BaseException))
        await assert_everything_ok(db, coupons_db)

        user = await credits.funded_user(5 * USD)
        event = mpb.UsageEvent(
            event_id=request_id(),
            user_id=user,
            service=skpb.SERVICE_KIND_LLM,
            model="openai/gpt-4o-mini",
            input_tokens=1000,
            output_tokens=500,
        )
        tracked = await asyncio.gather(
            *(
                (metering if i % 2 else other_metering).call("TrackUsage", mpb.TrackUsageRequest(event=event))
                for i in range(20)
            )
        )
        assert sum(not r.duplicate for r in tracked) == 1
        assert len({r.transaction_id for r in tracked}) == 1
        assert (await credits.balance(user)).balance_nanos == 5 * USD - tracked[0].charged_nanos
        await assert_metering_ok(db, metering_db)
    finally:
        for channel in channels:
            await channel.close()
        await second_coupons.stop(1)
        await second_metering.stop(1)


# --- timeouts ------------------------------------------------------------------------------------------


async def test_every_pool_bounds_statements_and_the_wait_for_a_connection(credits_db: str) -> None:
    from services.common.db import create_pool

    pool = await create_pool(
        credits_db,
        "credits",
        application_name="timeouts-test",
        min_size=1,
        max_size=1,
        statement_timeout_ms=200,
        acquire_timeout_seconds=1,
    )
    try:
        with pytest.raises(asyncpg.QueryCanceledError):
            await pool.execute("SELECT pg_sleep(5)")
        async with pool.acquire():
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.fetchval("SELECT 1")  # the only connection is taken
            assert time.monotonic() - started < 4
        assert await pool.fetchval("SELECT 1") == 1  # and the pool is fine afterwards
    finally:
        await pool.close()


async def test_a_statement_over_its_timeout_is_unavailable_and_changes_nothing(
    credits_db: str, keys: Keys, credits: Credits
) -> None:
    environ = credits_environ(credits_db, keys, DB_STATEMENT_TIMEOUT_MS="300")
    server = await create_server(CreditsSettings.from_env(environ))
    blocker = await asyncpg.connect(credits_db, server_settings={"search_path": "credits"})
    user = await credits.funded_user(5 * USD)  # through the session's server, without the short timeout
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            strict = Credits(channel, keys)
            # Another session holds the account's row lock longer than the statement timeout.
            async with blocker.transaction():
                await blocker.execute("SELECT 1 FROM accounts WHERE user_id = $1 FOR UPDATE", user)
                refused = await strict.fail(
                    "Deduct",
                    pb.DeductRequest(user_id=user, amount_nanos=USD, reason="r", request_id=request_id()),
                    strict.platform_token,
                )
            assert (refused.code, refused.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_TIMEOUT")
    finally:
        await blocker.close()
        await server.stop(1)
    assert (await credits.balance(user)).balance_nanos == 5 * USD
    assert (await credits.deduct(user, USD)).available_after_nanos == 4 * USD


async def test_migrations_are_not_cut_by_the_statement_timeout(postgres: Postgres) -> None:
    from services.common.db import create_pool, ensure_schema, migrate
    from services.credits.server import MIGRATIONS

    url = await postgres.database("faults_migrate")
    await ensure_schema(url, "credits")
    pool = await create_pool(
        url, "credits", application_name="migrate-test", min_size=1, max_size=1, statement_timeout_ms=50
    )
    try:
        applied = await migrate(pool, "credits", MIGRATIONS)
        assert applied and applied == sorted(applied)
        async with pool.acquire() as conn:
            # The connection goes back to the pool with its configured timeout.
            assert await conn.fetchval("SHOW statement_timeout") == "50ms"
    finally:
        await pool.close()


async def test_two_replicas_of_openrouter_provision_exactly_one_key_per_user(
    credits_db: str,
    keys: Keys,
    credits_server: RunningServer,
    openrouter_server: RunningServer,
    fake_openrouter: FakeOpenRouter,
    fernet_keys: list[str],
) -> None:
    """Racing CreateAccount calls split over two openrouter replicas still make one key at OpenRouter."""
    second = await create_openrouter_server(
        OpenRouterSettings.from_env(
            openrouter_environ(credits_db, keys, credits_server.port, fake_openrouter.url, fernet_keys)
        )
    )
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in (openrouter_server, second)]
    try:
        replicas = [OpenRouterCaller(channel, keys) for channel in channels]
        user = new_user("or2")
        token = replicas[0].user(user)
        results = await asyncio.gather(
            *(replicas[i % 2].call("CreateAccount", orpb.CreateAccountRequest(), token) for i in range(20))
        )
        assert sum(r.created for r in results) == 1
        assert len({r.account.key_hash for r in results}) == 1
        assert len(fake_openrouter.keys_named(f"creditmeter-{user}-")) == 1
        # Either replica reads the same account afterwards.
        accounts = [(await r.call("GetAccount", orpb.GetAccountRequest(), token)).account for r in replicas]
        assert accounts[0].key_hash == accounts[1].key_hash == results[0].account.key_hash
    finally:
        for channel in channels:
            await channel.close()
        await second.stop(1)
