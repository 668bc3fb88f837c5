"""What the verified-token cache saves: the credits service with the cache off, then on, in the same run.

Each pass starts the credits service as its own process on the same database
(AUTH_TOKEN_CACHE_SIZE=0, then the default) and drives ``GetBalance`` — the
cheapest authenticated read — from ``--concurrency`` callers, each caller
reusing its own token as real clients do (a dashboard, a service). Reported:
calls per second, the service process's CPU time per call (user + system, from
/proc), and the cache-on figures as ratios of the cache-off ones. A third
figure isolates the verifier itself: microseconds of CPU per ``verify`` call
with and without the cache, in this process.

Run: ``make bench-auth`` (or ``python -m bench.token_cache --calls 6000 --concurrency 32``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import grpc
import psutil
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from bench import bench_database
from services.common.auth import JwtVerifier, ensure_dev_keys, mint_token
from services.common.config import AuthSettings, Env

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "bench"
AUDIENCE = "creditmeter"


async def _pass(url: str, keys: Path, jwks: Path, calls: int, concurrency: int, cache: str) -> dict[str, float]:
    env = dict(
        os.environ,
        CREDITS_DATABASE_URL=url,
        CREDITS_GRPC_PORT="0",
        AUTH_JWKS_FILE=str(jwks),
        AUTH_ISSUER=ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
        AUTH_TOKEN_CACHE_SIZE=cache,
        CREDITS_MAINTENANCE_INTERVAL_SECONDS="0",
        DB_POOL_MAX=str(concurrency + 4),
        LOG_LEVEL="WARNING",
        PYTHONPATH=f"{ROOT}:{ROOT / 'gen' / 'python'}",
    )
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.credits", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert service.stdout is not None
        port = int(json.loads(await service.stdout.readline())["port"])
        tokens = [
            mint_token(keys, f"bench-user-{n}", "user", issuer=ISSUER, audience=AUDIENCE) for n in range(concurrency)
        ]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.CreditsServiceStub(channel)
            for token in tokens:  # opens each account; warms the pool and, when on, the cache
                await stub.GetBalance(pb.GetBalanceRequest(), metadata=(("authorization", f"Bearer {token}"),))
            process = psutil.Process(service.pid)
            cpu_before = sum(process.cpu_times()[:2])
            counter = iter(range(calls))

            async def worker(token: str) -> None:
                metadata = (("authorization", f"Bearer {token}"),)
                for _ in counter:
                    await stub.GetBalance(pb.GetBalanceRequest(), metadata=metadata)

            began = time.perf_counter()
            await asyncio.gather(*(worker(t) for t in tokens))
            elapsed = time.perf_counter() - began
            cpu = sum(process.cpu_times()[:2]) - cpu_before
    finally:
        service.send_signal(signal.SIGTERM)
        await asyncio.wait_for(service.wait(), 30)
    return {"calls_per_s": calls / elapsed, "service_cpu_us_per_call": cpu / calls * 1e6}


async def _verifier_cost(keys: Path, jwks: Path, rounds: int) -> dict[str, float]:
    token = mint_token(keys, "bench-user", "user", issuer=ISSUER, audience=AUDIENCE)
    costs = {}
    for label, size in (("off", "0"), ("on", "10000")):
        environ = {"AUTH_JWKS_FILE": str(jwks), "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE}
        verifier = JwtVerifier(AuthSettings.from_env(Env({**environ, "AUTH_TOKEN_CACHE_SIZE": size})))
        await verifier.verify(token)
        began = time.process_time()
        for _ in range(rounds):
            await verifier.verify(token)
        costs[label] = (time.process_time() - began) / rounds * 1e6
    return costs


async def bench(url: str, folder: Path, calls: int, concurrency: int) -> dict[str, object]:
    keys, jwks = ensure_dev_keys(folder / "auth")
    off = await _pass(url, keys, jwks, calls, concurrency, "0")
    on = await _pass(url, keys, jwks, calls, concurrency, "10000")
    verify = await _verifier_cost(keys, jwks, 2000)
    result = {
        "cache_off": {k: round(v, 1) for k, v in off.items()},
        "cache_on": {k: round(v, 1) for k, v in on.items()},
        "throughput_ratio_on_vs_off": round(on["calls_per_s"] / off["calls_per_s"], 3),
        "service_cpu_ratio_on_vs_off": round(on["service_cpu_us_per_call"] / off["service_cpu_us_per_call"], 3),
        "verify_cpu_us": {k: round(v, 1) for k, v in verify.items()},
    }
    for label, row in (("cache off", off), ("cache on", on)):
        print(
            f"GetBalance, {label:<9} {row['calls_per_s']:>8.0f} calls/s   "
            f"{row['service_cpu_us_per_call']:>7.0f} µs service CPU per call"
        )
    print(
        f"cache on vs off: throughput x{result['throughput_ratio_on_vs_off']}, "
        f"service CPU per call x{result['service_cpu_ratio_on_vs_off']}; "
        f"verify() alone: {verify['off']:.0f} µs → {verify['on']:.1f} µs CPU"
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=6000, help="GetBalance calls per pass (default 6000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent callers, one token each (default 32)")
    opts = parser.parse_args()
    with bench_database("cm-bench-auth-") as (url, folder):
        print(f"{opts.calls} GetBalance calls per pass, {opts.concurrency} concurrent callers")
        print(json.dumps(asyncio.run(bench(url, folder, opts.calls, opts.concurrency))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
