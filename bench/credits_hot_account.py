"""Deductions per second on ONE hot account, through gRPC, against raw PostgreSQL in the same run.

Three measurements on the same database server, each with the same number of
concurrent callers (default 32) and a bounded number of operations:

1. raw_update   — plain asyncpg: ``UPDATE … SET balance = balance - 1 WHERE id = 1 AND balance >= 1``
                  (the cheapest conditional write on one hot row; the ceiling).
2. raw_function — plain asyncpg calling the ledger's own ``ledger_charge`` SQL function
                  (what one deduction costs inside PostgreSQL: balance, grants, transfer row).
3. grpc_deduct  — CreditsService.Deduct through a real grpc.aio channel to the credits
                  service running as its own process (auth, validation, idempotency, ledger).
4. grpc_coalesced — the same charges sent as CreditsService.ChargeUsage calls of 100 charges
                  each (one statement per call, one DEDUCTION transaction per charge): what
                  coalescing does for one hot account. Counted in charges per second.

Prints ops/s, latency percentiles, and each figure as a ratio of raw_update.
Run: ``make bench`` (or ``python -m bench.credits_hot_account --ops 4000 --concurrency 32``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from bench import bench_database, raw_pool
from services.common.auth import ensure_dev_keys, mint_token

ROOT = Path(__file__).resolve().parent.parent
USD = 1_000_000_000


async def _drive(ops: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, list[float]]:
    """Runs ``ops`` calls of ``one`` from ``concurrency`` workers; returns (ops/s, latencies in ms)."""
    counter = iter(range(ops))
    latencies: list[float] = []

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            await one(i)
            latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ops / (time.perf_counter() - began), latencies


def _report(name: str, rate: float, latencies: list[float], baseline: float) -> dict[str, float | str]:
    cuts = statistics.quantiles(latencies, n=100)
    row: dict[str, float | str] = {
        "measure": name,
        "ops_per_s": round(rate),
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "ratio_to_raw_update": round(rate / baseline, 3),
    }
    print(
        f"{name:<14} {row['ops_per_s']:>8} ops/s   p50 {row['p50_ms']:>7} ms   p99 {row['p99_ms']:>7} ms"
        f"   {row['ratio_to_raw_update']:>6} x raw_update",
        flush=True,
    )
    return row


async def bench(url: str, ops: int, concurrency: int, auth_dir: Path) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    pool = await raw_pool(url, concurrency)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "DROP TABLE IF EXISTS bench_hot; CREATE TABLE bench_hot (id int PRIMARY KEY, balance bigint)"
            )
            await conn.execute("INSERT INTO bench_hot VALUES (1, $1)", 10**15)

        async def raw_update(_: int) -> None:
            await pool.execute("UPDATE bench_hot SET balance = balance - 1 WHERE id = 1 AND balance >= 1")

        baseline, lat = await _drive(ops, concurrency, raw_update)
        rows.append(_report("raw_update", baseline, lat, baseline))
    finally:
        await pool.close()

    # The credits service, as its own process, on the same database.
    keys_key, jwks = ensure_dev_keys(auth_dir)
    env = dict(
        os.environ,
        CREDITS_DATABASE_URL=url,
        CREDITS_GRPC_PORT="0",
        AUTH_JWKS_FILE=str(jwks),
        AUTH_ISSUER="bench",
        AUTH_AUDIENCE="creditmeter",
        CREDITS_MAINTENANCE_INTERVAL_SECONDS="0",
        DB_POOL_MAX=str(concurrency + 8),
        LOG_LEVEL="WARNING",
        PYTHONPATH=f"{ROOT}:{ROOT / 'gen' / 'python'}",
    )
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.credits", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert service.stdout is not None
        port = int(json.loads(await service.stdout.readline())["port"])
        admin = mint_token(keys_key, "bench-admin", "admin", issuer="bench", audience="creditmeter")
        # Direct charges are the AI platform's (svc-platform); usage charges are metering's.
        svc = mint_token(keys_key, "svc-platform", "svc-platform", issuer="bench", audience="creditmeter")
        metering = mint_token(keys_key, "svc-metering", "svc-metering", issuer="bench", audience="creditmeter")
        user = f"hot-{uuid.uuid4().hex[:8]}"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.CreditsServiceStub(channel)
            await stub.Allocate(
                pb.AllocateRequest(user_id=user, amount_nanos=10**6 * USD, reason="bench", request_id="seed"),
                metadata=(("authorization", f"Bearer {admin}"),),
            )

            schema_pool = await asyncpg.create_pool(
                url, min_size=concurrency, max_size=concurrency, server_settings={"search_path": "credits"}
            )
            assert schema_pool is not None
            try:

                async def raw_function(i: int) -> None:
                    await schema_pool.fetchrow(
                        "SELECT * FROM ledger_charge($1, 1, $2, 'fp', 'bench', 'service', 'bench', '', '', '', '')",
                        user,
                        f"raw-{i}-{uuid.uuid4().hex[:6]}",
                    )

                rate, lat = await _drive(ops, concurrency, raw_function)
                rows.append(_report("raw_function", rate, lat, baseline))
            finally:
                await schema_pool.close()

            metadata = (("authorization", f"Bearer {svc}"),)
            run = uuid.uuid4().hex[:6]

            async def grpc_deduct(i: int) -> None:
                await stub.Deduct(
                    pb.DeductRequest(user_id=user, amount_nanos=1, reason="bench", request_id=f"d-{run}-{i}"),
                    metadata=metadata,
                )

            rate, lat = await _drive(ops, concurrency, grpc_deduct)
            rows.append(_report("grpc_deduct", rate, lat, baseline))

            per_call = 100

            async def grpc_coalesced(i: int) -> None:
                await stub.ChargeUsage(
                    pb.ChargeUsageRequest(
                        user_id=user,
                        charges=[
                            pb.UsageCharge(request_id=f"c-{run}-{i}-{k}", amount_nanos=1) for k in range(per_call)
                        ],
                    ),
                    metadata=(("authorization", f"Bearer {metering}"),),
                )

            calls = max(1, ops // per_call) * 4
            rate, lat = await _drive(calls, concurrency, grpc_coalesced)
            rows.append(_report("grpc_coalesced", rate * per_call, lat, baseline))
    finally:
        service.send_signal(signal.SIGTERM)
        await asyncio.wait_for(service.wait(), 30)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=4000, help="operations per measurement (default 4000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent callers (default 32)")
    opts = parser.parse_args()
    with bench_database() as (url, folder):
        print(f"{opts.ops} operations per measurement, {opts.concurrency} concurrent callers, one hot account")
        rows = asyncio.run(bench(url, opts.ops, opts.concurrency, folder / "auth"))
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
