"""The credits API through the real Envoy gateway, as an external caller sees it."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import httpx

from tests.e2e.conftest import ROOT, Stack

USD = 1_000_000_000


def _user() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def _reason(body: dict) -> str:  # type: ignore[type-arg]
    return str(body["details"][0]["reason"])


async def test_tier_comparison_is_public(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.get("/api/v1/credits/tiers/compare")
    assert response.status_code == 200
    tiers = {t["tier_id"]: t for t in response.json()["tiers"]}
    assert list(tiers) == ["trial", "starter", "professional", "enterprise"]
    assert tiers["trial"]["price_cents"] == "400" and tiers["trial"]["credits_nanos"] == str(USD)
    assert tiers["starter"]["price_cents"] == "1900" and tiers["starter"]["credits_nanos"] == str(20 * USD)
    assert tiers["professional"]["api_call_limit"] == "10000"
    assert tiers["enterprise"]["credits_nanos"] == "999999990000000"
    assert tiers["enterprise"]["api_call_limit"] == "0"


async def test_admin_allocation_shows_in_the_users_balance(stack: Stack) -> None:
    user = _user()
    async with httpx.AsyncClient(base_url=stack.url) as http:
        granted = await http.post(
            "/api/v1/credits/allocate",
            headers=stack.headers("ops-admin", "admin"),
            json={
                "user_id": user,
                "amount_nanos": str(50 * USD),
                "reason": "welcome",
                "request_id": uuid.uuid4().hex,
            },
        )
        assert granted.status_code == 200, granted.text
        tx = granted.json()["transaction"]
        assert tx["amount_nanos"] == str(50 * USD) and tx["kind"] == "TRANSACTION_KIND_ALLOCATION"
        own = await http.get("/api/v1/credits/balance", headers=stack.headers(user, "user"))
        assert own.status_code == 200
        assert own.json()["balance_nanos"] == str(51 * USD)  # with the trial dollar
        by_admin = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=stack.headers("a", "admin"))
        assert by_admin.json()["balance_nanos"] == str(51 * USD)
        history = await http.get("/api/v1/credits/transactions", headers=stack.headers(user, "user"))
        assert [t["kind"] for t in history.json()["transactions"]] == [
            "TRANSACTION_KIND_ALLOCATION",
            "TRANSACTION_KIND_TIER_ALLOCATION",
        ]


async def test_users_cannot_allocate_or_read_others(stack: Stack) -> None:
    user = _user()
    async with httpx.AsyncClient(base_url=stack.url) as http:
        refused = await http.post(
            "/api/v1/credits/allocate",
            headers=stack.headers(user, "user"),
            json={"user_id": user, "amount_nanos": "1", "reason": "x", "request_id": "r"},
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == 7 and _reason(refused.json()) == "ROLE_NOT_ALLOWED"
        peek = await http.get("/api/v1/credits/balance?user_id=someone-else", headers=stack.headers(user, "user"))
        assert peek.status_code == 403 and _reason(peek.json()) == "FORBIDDEN"
        listing = await http.get("/api/v1/credits/accounts", headers=stack.headers(user, "user"))
        assert listing.status_code == 403


async def test_tokens_are_checked_at_the_gateway(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        missing = await http.get("/api/v1/credits/balance")
        assert missing.status_code == 401 and missing.json()["code"] == 16
        expired = await http.get(
            "/api/v1/credits/balance",
            headers={"authorization": f"Bearer {stack.token('a', 'user', ttl=-600)}"},
        )
        assert expired.status_code == 401
        garbage = await http.get("/api/v1/credits/balance", headers={"authorization": "Bearer not.a.jwt"})
        assert garbage.status_code == 401 and "message" in garbage.json()


async def test_overdraft_is_refused_with_a_reason_and_changes_nothing(stack: Stack) -> None:
    user = _user()
    service = stack.headers("svc-platform", "svc-platform")
    async with httpx.AsyncClient(base_url=stack.url) as http:
        await http.get("/api/v1/credits/balance", headers=stack.headers(user, "user"))
        refused = await http.post(
            "/api/v1/credits/deduct",
            headers=service,
            json={
                "user_id": user,
                "amount_nanos": str(2 * USD),
                "reason": "chat",
                "request_id": uuid.uuid4().hex,
            },
        )
        assert refused.status_code == 400
        body = refused.json()
        assert body["code"] == 9 and _reason(body) == "INSUFFICIENT_CREDITS"
        assert body["details"][0]["metadata"]["available_nanos"] == str(USD)
        balance = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=stack.headers("ops", "admin"))
        assert balance.json()["balance_nanos"] == str(USD)
        bad = await http.post("/api/v1/credits/deduct", headers=service, content=b'{"user_id": ')
        assert bad.status_code == 400 and bad.json()["code"] == 3
        negative = await http.post(
            "/api/v1/credits/deduct",
            headers=service,
            json={"user_id": user, "amount_nanos": "-5", "reason": "x", "request_id": "neg"},
        )
        assert negative.status_code == 400 and _reason(negative.json()) == "INVALID_AMOUNT"


async def test_a_retried_deduction_moves_money_once(stack: Stack) -> None:
    user = _user()
    service = stack.headers("svc-platform", "svc-platform")
    body = {
        "user_id": user,
        "amount_nanos": str(USD // 4),
        "reason": "chat",
        "request_id": uuid.uuid4().hex,
    }
    async with httpx.AsyncClient(base_url=stack.url) as http:
        await http.get("/api/v1/credits/balance", headers=stack.headers(user, "user"))
        first = await http.post("/api/v1/credits/deduct", headers=service, json=body)
        second = await http.post("/api/v1/credits/deduct", headers=service, json=body)
        assert first.status_code == second.status_code == 200
        assert first.json()["transaction"] == second.json()["transaction"]
        balance = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=stack.headers("ops", "admin"))
        assert balance.json()["balance_nanos"] == str(USD - USD // 4)
        reused = await http.post("/api/v1/credits/deduct", headers=service, json={**body, "amount_nanos": "7"})
        assert reused.status_code == 409 and _reason(reused.json()) == "REQUEST_ID_REUSED"


async def test_100_concurrent_deductions_against_50_dollars(stack: Stack) -> None:
    user = _user()
    admin = stack.headers("ops-admin", "admin")
    service = stack.headers("svc-platform", "svc-platform")
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=stack.url, limits=limits, timeout=60) as http:
        await http.post(
            "/api/v1/credits/allocate",
            headers=admin,
            json={
                "user_id": user,
                "amount_nanos": str(49 * USD),
                "reason": "load",
                "request_id": uuid.uuid4().hex,
            },
        )
        balance = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=admin)
        assert balance.json()["balance_nanos"] == str(50 * USD)

        async def deduct() -> httpx.Response:
            return await http.post(
                "/api/v1/credits/deduct",
                headers=service,
                json={
                    "user_id": user,
                    "amount_nanos": str(USD),
                    "reason": "load",
                    "request_id": uuid.uuid4().hex,
                },
            )

        responses = await asyncio.gather(*(deduct() for _ in range(100)))
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 50
        assert statuses.count(400) == 50
        assert {_reason(r.json()) for r in responses if r.status_code == 400} == {"INSUFFICIENT_CREDITS"}
        balance = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=admin)
        assert balance.json()["balance_nanos"] == "0"
    verified = stack.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "all invariants hold" in verified.stdout


async def test_holds_over_rest(stack: Stack) -> None:
    user = _user()
    service = stack.headers("svc-metering", "svc-metering")
    async with httpx.AsyncClient(base_url=stack.url) as http:
        await http.get("/api/v1/credits/balance", headers=stack.headers(user, "user"))
        held = await http.post(
            "/api/v1/credits/holds",
            headers=service,
            json={
                "user_id": user,
                "amount_nanos": str(USD // 2),
                "ttl_seconds": 60,
                "request_id": uuid.uuid4().hex,
            },
        )
        assert held.status_code == 200, held.text
        hold_id = held.json()["hold_id"]
        captured = await http.post(
            f"/api/v1/credits/holds/{hold_id}/capture",
            headers=service,
            json={"amount_nanos": str(USD // 10), "request_id": uuid.uuid4().hex},
        )
        assert captured.status_code == 200, captured.text
        assert captured.json()["hold"]["status"] == "HOLD_STATUS_CAPTURED"
        assert captured.json()["released_nanos"] == str(USD // 2 - USD // 10)
        again = await http.post(
            f"/api/v1/credits/holds/{hold_id}/release",
            headers=service,
            json={"request_id": uuid.uuid4().hex},
        )
        assert again.status_code == 400 and _reason(again.json()) == "HOLD_ALREADY_SETTLED"
        balance = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=service)
        assert balance.json()["balance_nanos"] == str(USD - USD // 10)
        tier = await http.post(
            "/api/v1/credits/tier",
            headers=stack.headers("ops-admin", "admin"),
            json={"user_id": user, "tier": "professional", "request_id": uuid.uuid4().hex},
        )
        assert tier.status_code == 200 and tier.json()["account"]["tier"] == "professional"


def test_make_token_prints_only_a_token_the_stack_accepts(stack: Stack) -> None:
    made = subprocess.run(
        ["make", "token", "USER=from-make", "ROLE=admin"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout.count("\n") == 1 and token.count(".") == 2
    response = httpx.get(f"{stack.url}/api/v1/credits/accounts", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


async def test_unknown_routes_get_json_404(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.get("/api/v1/credits/nothing-here", headers=stack.headers("a", "admin"))
    assert response.status_code == 404 and response.json()["code"] == 5
