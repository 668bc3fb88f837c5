"""Killing openrouter, credits or metering during steady usage loses no accepted event.

The three services run as real processes (``python -m services.<name>``) on
free ports against a fresh database, and are killed with SIGKILL and started
again by PID while a load generator tracks usage. Afterwards every event the
API accepted is charged exactly once — within a minute of the last process
being back, without any client retry — and repeats stay duplicates.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from creditmeter.common.v1 import service_kind_pb2 as skpb
from creditmeter.credits.v1 import credits_pb2 as cpb
from creditmeter.credits.v1 import credits_pb2_grpc as cpb_grpc
from creditmeter.metering.v1 import metering_pb2 as pb
from creditmeter.metering.v1 import metering_pb2_grpc as pb_grpc

from services.credits import verify as credits_verify
from services.metering import verify as metering_verify
from tests.conftest import (
    Keys,
    Postgres,
    credits_environ,
    metering_environ,
    openrouter_environ,
)
from tests.integration.conftest import USD
from tools.fake_openrouter import FakeOpenRouter

ROOT = Path(__file__).resolve().parents[2]
PAID = "openai/gpt-4o-mini"
PRICE = 495_000  # 1000 in + 500 out on the trial tier


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """One service as its own OS process, started and killed by PID."""

    def __init__(self, module: str, env: dict[str, str], port: int) -> None:
        self.module, self.env, self.port = module, env, port
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT / 'gen' / 'python'}", **self.env)
        return subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        self.process = self._spawn()
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.module} did not listen on {self.port}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
async def services(
    postgres: Postgres, keys: Keys, fake_openrouter: FakeOpenRouter, fernet_keys: list[str]
) -> AsyncIterator[dict[str, Process]]:
    url = await postgres.database(f"crash_{uuid.uuid4().hex[:8]}")
    ports = {name: _free_port() for name in ("credits", "openrouter", "metering")}
    procs = {
        "credits": Process(
            "services.credits", credits_environ(url, keys, CREDITS_GRPC_PORT=str(ports["credits"])), ports["credits"]
        ),
        "openrouter": Process(
            "services.openrouter",
            openrouter_environ(
                url,
                keys,
                ports["credits"],
                fake_openrouter.url,
                fernet_keys,
                OPENROUTER_GRPC_PORT=str(ports["openrouter"]),
                OPENROUTER_SYNC_INTERVAL_SECONDS="3600",
            ),
            ports["openrouter"],
        ),
        "metering": Process(
            "services.metering",
            metering_environ(
                url,
                keys,
                ports["credits"],
                ports["openrouter"],
                METERING_GRPC_PORT=str(ports["metering"]),
                METERING_RECOVERY_INTERVAL_SECONDS="2",
                METERING_MAX_BACKOFF_SECONDS="5",
            ),
            ports["metering"],
        ),
    }
    try:
        for name in ("credits", "openrouter", "metering"):
            await procs[name].start()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


async def test_killing_any_service_during_steady_usage_loses_no_accepted_event(
    services: dict[str, Process], keys: Keys, postgres: Postgres
) -> None:
    service_md = (("authorization", f"Bearer {keys.token('svc-platform', 'svc-platform')}"),)
    admin_md = (("authorization", f"Bearer {keys.token('ops', 'admin')}"),)
    users = [f"crash-{uuid.uuid4().hex[:8]}-{i}" for i in range(10)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{services['credits'].port}") as channel:
        ledger = cpb_grpc.CreditsServiceStub(channel)
        for user in users:
            await ledger.Allocate(
                cpb.AllocateRequest(user_id=user, amount_nanos=100 * USD, reason="load", request_id=uuid.uuid4().hex),
                metadata=admin_md,
                timeout=30,
            )
    accepted: dict[str, pb.UsageEvent] = {}
    stop = asyncio.Event()

    # Reconnect quickly after the metering process comes back (gRPC's default backoff grows to 120 s).
    fast = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]

    async def load(worker: int) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{services['metering'].port}", options=fast) as channel:
            stub = pb_grpc.MeteringServiceStub(channel)
            n = 0
            while not stop.is_set():
                n += 1
                events = [
                    pb.UsageEvent(
                        event_id=f"w{worker}-{n}-{k}-{uuid.uuid4().hex[:6]}",
                        user_id=users[(worker + n + k) % len(users)],
                        service=skpb.SERVICE_KIND_LLM,
                        model=PAID,
                        input_tokens=1000,
                        output_tokens=500,
                    )
                    for k in range(1 + n % 3)
                ]
                try:
                    if len(events) == 1:
                        await stub.TrackUsage(pb.TrackUsageRequest(event=events[0]), metadata=service_md, timeout=5)
                    else:
                        await stub.TrackUsageBatch(
                            pb.TrackUsageBatchRequest(events=events), metadata=service_md, timeout=5
                        )
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)  # not accepted (metering is down): a real caller would retry
                    continue
                accepted.update({e.event_id: e for e in events})
                await asyncio.sleep(0.02)

    workers = [asyncio.create_task(load(w)) for w in range(3)]
    try:
        await asyncio.sleep(1.5)
        for name in ("openrouter", "credits", "metering"):
            before = len(accepted)
            services[name].kill()
            await asyncio.sleep(2.0)
            await services[name].start()
            for _ in range(300):  # usage is accepted again (a loaded CI box may take a while)
                if len(accepted) > before + 10:
                    break
                await asyncio.sleep(0.1)
            assert len(accepted) > before, f"no usage was accepted around the {name} crash"
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert len(accepted) > 30

    metering_db = await asyncpg.connect(
        services["metering"].env["METERING_DATABASE_URL"], server_settings={"search_path": "metering"}
    )
    credits_db = await asyncpg.connect(
        services["credits"].env["CREDITS_DATABASE_URL"], server_settings={"search_path": "credits"}
    )
    try:
        # Charged within a minute of the last process being back, with no client retry.
        ids = list(accepted)
        rows: list[asyncpg.Record] = []
        # Events recorded while their caller lost the answer (metering killed after its commit) must settle
        # too. The ledger may already hold such a charge while metering is still retrying to learn of it,
        # so the money comparison below waits for every recorded event, not only for the accepted ones.
        unsettled = -1
        for _ in range(600):
            rows = await metering_db.fetch(
                "SELECT event_id, status, charged_nanos FROM events WHERE event_id = ANY($1::text[])", ids
            )
            unsettled = await metering_db.fetchval("SELECT count(*) FROM events WHERE status <> 'CHARGED'")
            if unsettled == 0 and len(rows) == len(ids) and all(r["status"] == "CHARGED" for r in rows):
                break
            await asyncio.sleep(0.1)
        assert unsettled == 0, f"{unsettled} recorded events were not charged within a minute"
        missing = set(ids) - {r["event_id"] for r in rows}
        assert not missing, f"{len(missing)} accepted events were lost"
        assert all(r["status"] == "CHARGED" and r["charged_nanos"] == PRICE for r in rows), [
            dict(r) for r in rows if r["status"] != "CHARGED"
        ][:5]
        # Exactly once: one outcome per event in the ledger, and the balances moved by exactly that much.
        outcomes = await credits_db.fetchval("SELECT count(*) FROM usage_charges WHERE event_id = ANY($1::text[])", ids)
        assert outcomes == len(ids)
        recorded = await metering_db.fetchval("SELECT coalesce(sum(charged_nanos), 0) FROM events")
        spent = await credits_db.fetchval(
            "SELECT sum($2::bigint - balance_nanos) FROM accounts WHERE user_id = ANY($1::text[])", users, 100 * USD
        )
        trial_grants = await credits_db.fetchval(
            "SELECT coalesce(sum(amount_nanos), 0) FROM grants WHERE source = 'TIER' AND user_id = ANY($1::text[])",
            users,
        )
        assert spent + trial_grants == recorded
        # Every recorded event settled (those recorded while the caller lost its answer too), all invariants hold.
        results = await credits_verify.verify(credits_db)
        results += await metering_verify.verify(metering_db, grace_seconds=60)
        results += await metering_verify.cross_check_credits(metering_db, credits_db)
        assert all(r.ok for r in results), [r.line() for r in results if not r.ok]
    finally:
        await metering_db.close()
        await credits_db.close()
    # Repeats after all that are still duplicates.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{services['metering'].port}") as channel:
        stub = pb_grpc.MeteringServiceStub(channel)
        some = list(accepted.values())[:20]
        again = await stub.TrackUsageBatch(pb.TrackUsageBatchRequest(events=some), metadata=service_md, timeout=30)
        assert all(r.duplicate and r.state == pb.EVENT_STATE_CHARGED for r in again.results)
