"""The OpenRouter context through the real gateway, against the fake OpenRouter `make run` starts."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from creditmeter.openrouter.v1 import openrouter_pb2 as pb
from creditmeter.openrouter.v1 import openrouter_pb2_grpc as pb_grpc

from tests.e2e.conftest import Stack


async def test_accounts_models_and_byok_through_the_gateway(stack: Stack) -> None:
    user = f"or-{uuid.uuid4().hex[:8]}"
    me = stack.headers(user, "user")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        created = await http.post("/api/v1/openrouter/create-account", headers=me, json={})
        assert created.status_code == 200, created.text
        account = created.json()["account"]
        assert len(account["key_hint"]) == 4 and account["limit_nanos"] == "1000000000"
        assert "api_key" not in created.text and "sk-or-v1-" not in created.text
        again = await http.post("/api/v1/openrouter/create-account", headers=me, json={})
        assert again.json()["created"] is False and again.json()["account"]["key_hash"] == account["key_hash"]
        shown = await http.get("/api/v1/openrouter/account", headers=me)
        assert shown.json()["account"]["key_hint"] == account["key_hint"]
        synced = await http.post("/api/v1/openrouter/sync-balance", headers=me, json={})
        assert synced.status_code == 200 and synced.json()["account"]["usage_nanos"] == "0"
        models = await http.get("/api/v1/openrouter/models", headers=me)
        by_id = {m["model_id"]: m for m in models.json()["models"]}
        assert by_id["openai/gpt-4o-mini"]["prompt_nanos_per_mtok"] == "165000000"  # trial: +10%
        assert by_id["meta-llama/llama-3.1-8b-instruct:free"]["free"] is True
        refused = await http.put(
            "/api/v1/openrouter/byok", headers=me, json={"api_key": "sk-or-v1-" + "a" * 40, "request_id": "byok-1"}
        )
        assert refused.status_code == 400
        assert refused.json()["details"][0]["reason"] == "BYOK_NOT_ALLOWED"
        assert "a" * 40 not in refused.text
        quote = await http.post(
            "/api/v1/openrouter/quote",
            headers=stack.headers("svc-metering", "service"),
            json={
                "tier": "starter",
                "service": "SERVICE_KIND_LLM",
                "model": "openai/gpt-4o-mini",
                "input_tokens": "1000",
            },
        )
        assert quote.json()["total_nanos"] == "165000"
        nobody = await http.post(
            "/api/v1/openrouter/quote", headers=me, json={"tier": "starter", "service": "SERVICE_KIND_TTS"}
        )
        assert nobody.status_code == 403


async def test_the_provider_key_is_not_reachable_through_the_gateway(stack: Stack) -> None:
    target = stack.url.removeprefix("http://")
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.OpenRouterServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await stub.GetProviderKey(
                pb.GetProviderKeyRequest(user_id="anyone"),
                metadata=(("authorization", f"Bearer {stack.token('svc-metering', 'service')}"),),
                timeout=10,
            )
    assert error.value.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.NOT_FOUND)
