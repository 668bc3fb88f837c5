"""Coupons through the real Envoy gateway, as the issue's acceptance describes it."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tests.e2e.conftest import Stack

USD = 1_000_000_000


def _reason(response: httpx.Response) -> str:
    return str(response.json()["details"][0]["reason"])


async def test_a_capped_coupon_through_the_gateway(stack: Stack) -> None:
    code = f"FIVE-{uuid.uuid4().hex[:6].upper()}"
    admin = stack.headers("ops-admin", "admin")
    users = [f"cpn-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        created = await http.post(
            "/api/v1/coupons/create",
            headers=admin,
            json={
                "code": code.lower(),
                "kind": "COUPON_KIND_CREDIT_GRANT",
                "credit_amount_nanos": str(5 * USD),
                "max_redemptions": "3",
                "request_id": uuid.uuid4().hex,
            },
        )
        assert created.status_code == 200, created.text
        assert created.json()["coupon"]["code"] == code
        refused = await http.post(
            "/api/v1/coupons/create",
            headers=stack.headers(users[0], "user"),
            json={
                "code": "USERMADE",
                "kind": "COUPON_KIND_CREDIT_GRANT",
                "credit_amount_nanos": "1",
                "request_id": "x",
            },
        )
        assert refused.status_code == 403
        check = await http.post(
            "/api/v1/coupons/validate", headers=stack.headers(users[0], "user"), json={"code": code}
        )
        assert check.json()["valid"] is True and check.json()["grant"]["credits_nanos"] == str(5 * USD)
        before = {}
        for user in users:
            balance = await http.get("/api/v1/credits/balance", headers=stack.headers(user, "user"))
            before[user] = int(balance.json()["balance_nanos"])
        for user in users[:3]:
            redeemed = await http.post(
                "/api/v1/coupons/redeem",
                headers=stack.headers(user, "user"),
                json={"code": code, "request_id": uuid.uuid4().hex},
            )
            assert redeemed.status_code == 200, redeemed.text
            balance = await http.get("/api/v1/credits/balance", headers=stack.headers(user, "user"))
            assert int(balance.json()["balance_nanos"]) == before[user] + 5 * USD
        fourth = await http.post(
            "/api/v1/coupons/redeem",
            headers=stack.headers(users[3], "user"),
            json={"code": code, "request_id": uuid.uuid4().hex},
        )
        assert fourth.status_code == 400 and _reason(fourth) == "COUPON_EXHAUSTED"
        twice = await http.post(
            "/api/v1/coupons/redeem",
            headers=stack.headers(users[0], "user"),
            json={"code": code, "request_id": uuid.uuid4().hex},
        )
        assert twice.status_code == 400 and _reason(twice) == "COUPON_ALREADY_REDEEMED"
        unknown = await http.post(
            "/api/v1/coupons/redeem",
            headers=stack.headers(users[3], "user"),
            json={"code": "NOT-A-CODE", "request_id": uuid.uuid4().hex},
        )
        assert unknown.status_code == 404 and _reason(unknown) == "COUPON_NOT_FOUND"
        history = await http.get(f"/api/v1/coupons/redemptions?code={code}", headers=admin)
        assert sorted(r["user_id"] for r in history.json()["redemptions"]) == sorted(users[:3])
        disabled = await http.post(
            f"/api/v1/coupons/{code}/disable",
            headers=admin,
            json={"reason": "campaign over", "request_id": "disable-1"},
        )
        assert disabled.status_code == 200 and disabled.json()["coupon"]["disabled"] is True


async def test_100_users_racing_for_10_units(stack: Stack) -> None:
    code = f"TEN-{uuid.uuid4().hex[:6].upper()}"
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=limits) as http:
        created = await http.post(
            "/api/v1/coupons/create",
            headers=stack.headers("ops-admin", "admin"),
            json={
                "code": code,
                "kind": "COUPON_KIND_CREDIT_GRANT",
                "credit_amount_nanos": str(USD),
                "max_redemptions": "10",
                "request_id": uuid.uuid4().hex,
            },
        )
        assert created.status_code == 200

        async def redeem(i: int) -> httpx.Response:
            return await http.post(
                "/api/v1/coupons/redeem",
                headers=stack.headers(f"racer-{uuid.uuid4().hex[:8]}-{i}", "user"),
                json={"code": code, "request_id": uuid.uuid4().hex},
            )

        responses = await asyncio.gather(*(redeem(i) for i in range(100)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10
    assert statuses.count(400) == 90
    assert {_reason(r) for r in responses if r.status_code == 400} == {"COUPON_EXHAUSTED"}
    verified = stack.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "completed_redemption_has_one_grant" in verified.stdout
