"""Bad input through the real gateway: refused with 400 and a reason, never a 500, and nothing changes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.hostile import Case, all_routes, cases
from tools.openapi import Route

USD = 1_000_000_000
ROLES = ("admin", "svc-platform", "user")


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Stack:
    """This module's own stack: the background work its hostile traffic causes ends with the module."""
    return module_stack


def _reason(response: httpx.Response) -> str:
    return str(response.json()["details"][0]["reason"])


def _field(response: httpx.Response) -> str:
    return str(response.json()["details"][0].get("metadata", {}).get("field", ""))


async def _balance(http: httpx.AsyncClient, stack: Stack, user: str) -> int:
    response = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=stack.headers("ops", "admin"))
    assert response.status_code == 200, response.text
    return int(response.json()["balance_nanos"])


async def _role_for(http: httpx.AsyncClient, stack: Stack, route: Route) -> str:
    """The first role the route lets past authorization, so hostile values reach the service's own code."""
    path = route.path
    for name in route.path_params:
        path = path.replace("{" + name + "}", "probe")
    for role in ROLES:
        response = await http.request(
            route.verb.upper(),
            path,
            headers=stack.headers(f"sweep-{role}", role),
            content=b"{}" if route.body else None,
        )
        if response.status_code not in (401, 403):
            return role
    return "admin"


async def test_no_hostile_input_gets_a_5xx_and_every_refusal_has_a_reason(stack: Stack) -> None:
    routes = all_routes()
    assert len(routes) >= 30, "the sweep must cover every REST route"
    failures: list[str] = []
    statuses: dict[int, int] = {}
    limit = asyncio.Semaphore(6)
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
        roles = {route.method.full_name: await _role_for(http, stack, route) for route in routes}
        tokens = {role: stack.headers(f"sweep-{role}", role) for role in ROLES}

        async def send(route: Route, case: Case) -> None:
            headers = dict(tokens[roles[route.method.full_name]])
            if case.content is not None:
                headers["content-type"] = "application/json"
            async with limit:
                response = await http.request(case.method, case.url, headers=headers, content=case.content)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            problem = ""
            if response.status_code >= 500:
                problem = "server error"
            elif not response.headers.get("content-type", "").startswith("application/json"):
                problem = "not JSON"
            elif response.status_code >= 400:
                try:
                    assert _reason(response)
                except (KeyError, IndexError, ValueError, AssertionError):
                    problem = "no ErrorInfo reason"
            if problem:
                failures.append(
                    f"{route.method.name} {case.label}: {problem} {response.status_code} {response.text[:160]}"
                )

        await asyncio.gather(*(send(route, case) for route in routes for case in cases(route)))
    assert sum(statuses.values()) > 1000
    assert not failures, "\n".join(failures)
    assert stack.verify().returncode == 0, "the ledger must still add up after the sweep"


async def test_unknown_json_fields_are_refused_at_the_edge_and_change_nothing(stack: Stack) -> None:
    user = f"strict-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        typo = await http.post(
            "/api/v1/credits/allocate",
            headers=stack.headers("ops", "admin"),
            json={"user_id": user, "ammount_nanos": str(5 * USD), "reason": "typo", "request_id": uuid.uuid4().hex},
        )
        assert typo.status_code == 400
        assert (_reason(typo), _field(typo)) == ("UNKNOWN_FIELD", "ammount_nanos")
        missing = await http.get(f"/api/v1/credits/balance?user_id={user}", headers=stack.headers("ops", "admin"))
        assert missing.status_code == 404, "a refused allocation must not create the account"
        nested = await http.post(
            "/api/v1/metering/track-batch",
            headers=stack.headers("svc-platform", "svc-platform"),
            json={"events": [{"event_id": uuid.uuid4().hex, "user_id": user, "modle": "x"}]},
        )
        assert nested.status_code == 400
        assert (_reason(nested), _field(nested)) == ("UNKNOWN_FIELD", "events[0].modle")
        twice = await http.post(
            "/api/v1/credits/allocate",
            headers={**stack.headers("ops", "admin"), "content-type": "application/json"},
            content=(
                f'{{"user_id": "{user}", "amount_nanos": "1", "amount_nanos": "{50 * USD}", '
                f'"reason": "twice", "request_id": "{uuid.uuid4().hex}"}}'
            ).encode(),
        )
        assert twice.status_code == 400
        assert (_reason(twice), _field(twice)) == ("DUPLICATE_FIELD", "amount_nanos")
        # The JSON (lowerCamel) names the transcoder accepts are not "unknown".
        camel = await http.post(
            "/api/v1/credits/allocate",
            headers=stack.headers("ops", "admin"),
            json={"userId": user, "amountNanos": str(5 * USD), "reason": "camel", "requestId": uuid.uuid4().hex},
        )
        assert camel.status_code == 200, camel.text
        assert await _balance(http, stack, user) == 6 * USD  # the trial dollar and the one real grant


@pytest.mark.parametrize(
    ("path", "role"),
    [
        ("/api/v1/credits/transactions", "user"),
        ("/api/v1/credits/accounts", "admin"),
        ("/api/v1/coupons", "admin"),
        ("/api/v1/coupons/redemptions", "admin"),
        ("/api/v1/metering/events", "user"),
    ],
)
async def test_crafted_page_tokens_get_400_invalid_page_token(stack: Stack, path: str, role: str) -> None:
    crafted = ["%%%", "AAAA.AAAA", "eyJ4IjoxfQ", "x" * 400, "WyJib2IiXQ.AAAAAAAAAAAAAAAA", b"2024|x".hex()]
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        for token in crafted:
            response = await http.get(path, params={"page_token": token}, headers=stack.headers("pager", role))
            assert response.status_code == 400, (token, response.text)
            assert _reason(response) == "INVALID_PAGE_TOKEN", (token, response.text)


async def test_a_real_page_token_pages_and_a_tampered_one_is_refused(stack: Stack) -> None:
    user = f"pager-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        for n in range(3):
            granted = await http.post(
                "/api/v1/credits/allocate",
                headers=stack.headers("ops", "admin"),
                json={
                    "user_id": user,
                    "amount_nanos": str(USD),
                    "reason": f"grant {n}",
                    "request_id": uuid.uuid4().hex,
                },
            )
            assert granted.status_code == 200, granted.text
        headers = stack.headers(user, "user")
        first = await http.get("/api/v1/credits/transactions", params={"page_size": 2}, headers=headers)
        token = first.json()["next_page_token"]
        assert token
        second = await http.get(
            "/api/v1/credits/transactions", params={"page_size": 2, "page_token": token}, headers=headers
        )
        assert second.status_code == 200
        ids = [t["transaction_id"] for t in first.json()["transactions"] + second.json()["transactions"]]
        assert len(ids) == len(set(ids)) == 4  # the trial dollar and three grants, none twice
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        tampered = await http.get("/api/v1/credits/transactions", params={"page_token": flipped}, headers=headers)
        assert tampered.status_code == 400 and _reason(tampered) == "INVALID_PAGE_TOKEN"
        other_list = await http.get("/api/v1/metering/events", params={"page_token": token}, headers=headers)
        assert other_list.status_code == 400 and _reason(other_list) == "INVALID_PAGE_TOKEN"


async def test_the_openapi_document_is_served_publicly_and_matches_the_repository(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        response = await http.get("/api/openapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.text == (ROOT / "docs" / "openapi.yaml").read_text()


async def test_oversized_requests_get_a_json_refusal(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
        long_query = await http.get(
            "/api/v1/credits/balance", params={"user_id": "x" * 61_000}, headers=stack.headers("ops", "admin")
        )
        assert long_query.status_code == 431 and _reason(long_query) == "HEADERS_TOO_LARGE"
        body: dict[str, Any] = {"reason": "x" * 3_000_000}
        big = await http.post("/api/v1/credits/allocate", headers=stack.headers("ops", "admin"), json=body)
        assert big.status_code in (400, 413), big.text
        assert _reason(big) in ("REQUEST_TOO_LARGE", "INVALID_FIELD", "INVALID_REASON")
