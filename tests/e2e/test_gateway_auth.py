"""The gateway checks tokens by the services' rules, routes no raw gRPC, and holds each identity to its scope."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc

from tests.e2e.conftest import Stack

ISSUER = "creditmeter-dev"
AUDIENCE = "creditmeter"


def _signed(stack: Stack, claims: dict[str, Any]) -> str:
    key = stack.local_dir / "dev-auth" / "signing-key.pem"
    kid = json.loads(Path(key.parent / "jwks.json").read_text())["keys"][0]["kid"]
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key.read_bytes(), "RS256", {"kid": kid})


def _claims(**change: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "gw-admin",
        "exp": now + 600,
        "realm_access": {"roles": ["admin"]},
    }
    return claims | change


# Times relative to the moment each test runs (the skew is 30 s at both ends).
REFUSED: dict[str, Callable[[int], dict[str, Any]]] = {
    "wrong audience": lambda now: _claims(aud="another-app"),
    "wrong issuer": lambda now: _claims(iss="https://elsewhere"),
    "no exp": lambda now: _claims(exp=None),
    "no sub": lambda now: _claims(sub=None),
    "empty sub": lambda now: _claims(sub=""),
    "roles an object": lambda now: _claims(realm_access={"roles": {"admin": True}}),
    "roles not strings": lambda now: _claims(realm_access={"roles": ["admin", 1]}),
    "expired beyond the skew": lambda now: _claims(exp=now - 45),
    "not yet valid beyond the skew": lambda now: _claims(nbf=now + 600),
}
ACCEPTED: dict[str, Callable[[int], dict[str, Any]]] = {
    "expired within the skew": lambda now: _claims(exp=now - 5),
    "not yet valid within the skew": lambda now: _claims(nbf=now + 10),
    "audience list": lambda now: _claims(aud=["account", AUDIENCE]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_the_gateway_refuses_what_the_services_refuse_with_401(stack: Stack, case: str) -> None:
    token = _signed(stack, REFUSED[case](int(time.time())))
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.get("/api/v1/credits/accounts", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 401, (case, response.status_code, response.text)
    body = response.json()
    assert body["code"] == 16 and body["details"][0]["reason"] == "TOKEN_INVALID"
    # Refused by Envoy itself, not only by the service behind it.
    assert body["details"][0]["domain"] == "gateway.creditmeter.dev", body


@pytest.mark.parametrize("case", sorted(ACCEPTED))
async def test_the_gateway_accepts_what_the_services_accept(stack: Stack, case: str) -> None:
    token = _signed(stack, ACCEPTED[case](int(time.time())))
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.get("/api/v1/credits/accounts", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, (case, response.text)


async def test_raw_grpc_is_not_routed_even_to_a_public_method(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.url.removeprefix("http://")) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await pb_grpc.CreditsServiceStub(channel).CompareTiers(pb.CompareTiersRequest(), timeout=10)
    assert error.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)


async def test_each_service_identity_stays_in_its_scope_over_rest(stack: Stack) -> None:
    user = f"scope-{uuid.uuid4().hex[:10]}"
    admin = stack.headers("ops", "admin")

    def allocate(source: str, amount: str = "1000") -> dict[str, Any]:
        return {
            "user_id": user,
            "amount_nanos": amount,
            "reason": "r",
            "request_id": uuid.uuid4().hex,
            "source": source,
        }

    async with httpx.AsyncClient(base_url=stack.url) as http:
        await http.get("/api/v1/credits/balance", headers=stack.headers(user, "user"))
        metering = stack.headers("svc-metering", "svc-metering")
        outcomes = {
            "metering allocates": await http.post(
                "/api/v1/credits/allocate", headers=metering, json=allocate("GRANT_SOURCE_ADMIN")
            ),
            "metering sets a tier": await http.post(
                "/api/v1/credits/tier",
                headers=metering,
                json={"user_id": user, "tier": "enterprise", "request_id": uuid.uuid4().hex},
            ),
            "coupons grants ADMIN credits": await http.post(
                "/api/v1/credits/allocate",
                headers=stack.headers("svc-coupons", "svc-coupons"),
                json=allocate("GRANT_SOURCE_ADMIN"),
            ),
            "an unknown service reads a balance": await http.get(
                f"/api/v1/credits/balance?user_id={user}", headers=stack.headers("svc-x", "service")
            ),
            "the platform refunds": await http.post(
                "/api/v1/credits/refund",
                headers=stack.headers("svc-platform", "svc-platform"),
                json={"user_id": user, "transaction_id": str(uuid.uuid4()), "amount_nanos": "1", "reason": "r"},
            ),
        }
        assert {k: r.status_code for k, r in outcomes.items()} == dict.fromkeys(outcomes, 403)
        balance = (await http.get(f"/api/v1/credits/balance?user_id={user}", headers=admin)).json()
        assert (balance["tier"], balance["balance_nanos"]) == ("trial", "1000000000")
