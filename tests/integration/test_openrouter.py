"""OpenRouterService and its OpenRouter client against the local OpenRouter stand-in."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from fractions import Fraction
from typing import Any

import asyncpg
import grpc
import pytest
from creditmeter.common.v1 import service_kind_pb2 as skpb
from creditmeter.credits.v1 import credits_pb2 as cpb
from creditmeter.openrouter.v1 import openrouter_pb2 as pb

from services.common.bootstrap import RunningService
from services.common.rpcstatus import error_info_from
from services.openrouter.client import OpenRouterClient, OpenRouterError
from services.openrouter.config import OpenRouterSettings
from services.openrouter.crypto import generate_key
from services.openrouter.server import create_server
from tests.conftest import MANAGEMENT_KEY, Keys, Postgres, credits_environ, new_user, openrouter_environ, request_id
from tests.integration.conftest import USD, Credits, OpenRouterCaller
from tools.fake_openrouter import FakeOpenRouter

PAID = "openai/gpt-4o-mini"
TINY = "mistralai/mistral-7b-instruct"  # prices with fractions of a nano per token
FREE_BY_ID = "meta-llama/llama-3.1-8b-instruct:free"
FREE_BY_PRICE = "google/gemma-2-9b-it"
WITH_REQUEST_FEE = "perplexity/sonar"
MARKUP_BPS = {"trial": 1000, "starter": 1000, "professional": 500, "enterprise": 0}
BYOK_BPS = {"trial": 1000, "starter": 1000, "professional": 0, "enterprise": 0}
FREE_FEE = {"trial": 1_000_000, "starter": 1_000_000, "professional": 1_000_000, "enterprise": 0}


def _round(value: Fraction) -> int:
    """Half up, to a whole nano: computed independently of the service's Decimal code."""
    return int((value + Fraction(1, 2)) // 1)


def _usd(text: str) -> Fraction:
    return Fraction(text)


# --- the HTTP client ---------------------------------------------------------------------


async def test_client_retries_429_and_5xx_then_succeeds(fake_openrouter: FakeOpenRouter) -> None:
    client = OpenRouterClient(fake_openrouter.url, MANAGEMENT_KEY, timeout_seconds=1, backoff_seconds=0.01)
    try:
        fake_openrouter.inject("/api/v1/credits", 429, 503)
        total, used = await client.credits()
        assert total == Decimal(1000) and used >= 0
        fake_openrouter.inject("/api/v1/credits", 500, 502, 503, 504)
        with pytest.raises(OpenRouterError) as error:
            await client.credits()
        assert (error.value.reason, error.value.code.name) == ("OPENROUTER_UNAVAILABLE", "UNAVAILABLE")
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (401, "OPENROUTER_UNAUTHORIZED"),
        (402, "OPENROUTER_INSUFFICIENT_CREDITS"),
        (403, "OPENROUTER_KEY_LIMIT_EXCEEDED"),
        ("malformed", "OPENROUTER_BAD_RESPONSE"),
        ("timeout", "OPENROUTER_TIMEOUT"),
    ],
)
async def test_client_failures_have_their_own_reasons(fake_openrouter: FakeOpenRouter, fault: Any, reason: str) -> None:
    client = OpenRouterClient(fake_openrouter.url, MANAGEMENT_KEY, timeout_seconds=1, backoff_seconds=0.01)
    before = len([r for r in fake_openrouter.requests if r[1] == "/api/v1/models"])
    try:
        fake_openrouter.inject("/api/v1/models", fault)
        with pytest.raises(OpenRouterError) as error:
            await client.models()
        assert error.value.reason == reason
    finally:
        await client.close()
    # None of these is retried: exactly one request went out.
    assert len([r for r in fake_openrouter.requests if r[1] == "/api/v1/models"]) == before + 1


async def test_a_wrong_management_key_is_refused_clearly(fake_openrouter: FakeOpenRouter) -> None:
    client = OpenRouterClient(fake_openrouter.url, "not-the-key", timeout_seconds=1)
    try:
        with pytest.raises(OpenRouterError) as error:
            await client.create_key("x", Decimal("1.5"), "monthly")
        assert error.value.reason == "OPENROUTER_UNAUTHORIZED"
        assert "not-the-key" not in error.value.message
    finally:
        await client.close()


# --- catalog -----------------------------------------------------------------------------


async def test_catalog_sync_detects_free_models_and_skips_variable_pricing(openrouter: OpenRouterCaller) -> None:
    listed = await openrouter.call("ListModels", pb.ListModelsRequest(tier="starter"), openrouter.admin)
    models = {m.model_id: m for m in listed.models}
    assert "openrouter/auto" not in models  # negative prices: not sellable
    assert models[FREE_BY_ID].free and models[FREE_BY_PRICE].free
    assert not models[PAID].free
    assert models[PAID].provider_prompt_nanos_per_mtok == "150000000"  # $0.15 per million
    assert models[PAID].prompt_nanos_per_mtok == "165000000"  # +10% for starter
    assert models[TINY].provider_prompt_nanos_per_mtok == "27500000"
    assert models[WITH_REQUEST_FEE].provider_request_nanos == "5000000"
    assert models[FREE_BY_ID].free_fee_per_1k_tokens_nanos == 1_000_000
    free = await openrouter.call("ListModels", pb.ListModelsRequest(free_only=True, tier="trial"), openrouter.admin)
    assert {m.model_id for m in free.models} == {FREE_BY_ID, FREE_BY_PRICE}
    byok = await openrouter.call("ListModels", pb.ListModelsRequest(tier="professional", byok=True), openrouter.admin)
    assert {m.model_id: m for m in byok.models}[PAID].prompt_nanos_per_mtok == "0"  # 0% BYOK markup


async def test_a_price_change_makes_a_new_catalog_version(
    openrouter: OpenRouterCaller, fake_openrouter: FakeOpenRouter
) -> None:
    # A model of its own: the other tests' prices never change (metering keeps the published book it fetched for
    # up to 30 s, so a price changed here even for a moment could reach a later test's charge).
    model = "test/price-change"
    entry = {
        "id": model,
        "name": "Price change",
        "context_length": 8192,
        "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "request": "0", "image": "0"},
    }
    quote = pb.QuotePriceRequest(tier="starter", service=skpb.SERVICE_KIND_LLM, model=model, input_tokens=1000)
    with fake_openrouter.lock:
        fake_openrouter.models["data"].append(entry)
    try:
        listed = await openrouter.call("SyncModels", pb.SyncModelsRequest(request_id=request_id()), openrouter.admin)
        assert listed.changed
        same = await openrouter.call("SyncModels", pb.SyncModelsRequest(request_id=request_id()), openrouter.admin)
        assert not same.changed and same.catalog_version == listed.catalog_version
        await asyncio.sleep(5.1)  # the service caches the current prices for 5 seconds
        before = await openrouter.call("QuotePrice", quote, openrouter.service)
        with fake_openrouter.lock:
            entry["pricing"]["prompt"] = "0.0000002"
        changed = await openrouter.call("SyncModels", pb.SyncModelsRequest(request_id=request_id()), openrouter.admin)
        assert changed.changed and changed.catalog_version == same.catalog_version + 1
        await asyncio.sleep(5.1)
        after = await openrouter.call("QuotePrice", quote, openrouter.service)
        assert after.price_version != before.price_version
        assert after.total_nanos == 220_000 and before.total_nanos == 165_000
    finally:
        with fake_openrouter.lock:
            fake_openrouter.models["data"] = [m for m in fake_openrouter.models["data"] if m["id"] != model]
        await openrouter.call("SyncModels", pb.SyncModelsRequest(request_id=request_id()), openrouter.admin)


# --- quotes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", sorted(MARKUP_BPS))
@pytest.mark.parametrize("model", [PAID, TINY, WITH_REQUEST_FEE, "anthropic/claude-3.5-sonnet"])
async def test_paid_quotes_are_provider_cost_plus_the_tier_markup(
    openrouter: OpenRouterCaller, fake_openrouter: FakeOpenRouter, tier: str, model: str
) -> None:
    pricing = next(m for m in fake_openrouter.models["data"] if m["id"] == model)["pricing"]
    tokens_in, tokens_out = 12_345, 6_789
    exact = (
        tokens_in * _usd(pricing["prompt"]) + tokens_out * _usd(pricing["completion"]) + _usd(pricing["request"])
    ) * 10**9
    quote = await openrouter.call(
        "QuotePrice",
        pb.QuotePriceRequest(
            tier=tier, service=skpb.SERVICE_KIND_LLM, model=model, input_tokens=tokens_in, output_tokens=tokens_out
        ),
        openrouter.service,
    )
    assert quote.provider_cost_nanos == _round(exact)
    assert quote.total_nanos == _round(exact * (10_000 + MARKUP_BPS[tier]) / 10_000)
    assert quote.platform_fee_nanos == quote.total_nanos - quote.provider_cost_nanos
    assert quote.price_version.startswith("rc") and not quote.free_model
    if tier != "trial":
        byok = await openrouter.call(
            "QuotePrice",
            pb.QuotePriceRequest(
                tier=tier,
                service=skpb.SERVICE_KIND_LLM,
                model=model,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                byok=True,
            ),
            openrouter.service,
        )
        assert byok.total_nanos == byok.platform_fee_nanos == _round(exact * BYOK_BPS[tier] / 10_000)
        assert byok.provider_cost_nanos == _round(exact)


@pytest.mark.parametrize("tier", sorted(MARKUP_BPS))
@pytest.mark.parametrize("model", [FREE_BY_ID, FREE_BY_PRICE])
async def test_free_models_cost_a_flat_fee_per_1000_tokens(openrouter: OpenRouterCaller, tier: str, model: str) -> None:
    quote = await openrouter.call(
        "QuotePrice",
        pb.QuotePriceRequest(
            tier=tier, service=skpb.SERVICE_KIND_LLM, model=model, input_tokens=1500, output_tokens=1001
        ),
        openrouter.service,
    )
    assert quote.free_model and quote.provider_cost_nanos == 0
    assert quote.total_nanos == _round(Fraction(FREE_FEE[tier] * 2501, 1000))
    if tier == "starter":
        exactly_1000 = await openrouter.call(
            "QuotePrice",
            pb.QuotePriceRequest(
                tier=tier, service=skpb.SERVICE_KIND_LLM, model=model, input_tokens=600, output_tokens=400
            ),
            openrouter.service,
        )
        assert exactly_1000.total_nanos == 1_000_000  # $0.001 per 1,000 tokens


@pytest.mark.parametrize(
    ("service", "quantity", "expected"),
    [
        (skpb.SERVICE_KIND_TTS, 2_500, _round(Fraction(15_000_000 * 2_500, 1000))),
        (skpb.SERVICE_KIND_STT, 90, _round(Fraction(6_000_000 * 90, 60))),
        (skpb.SERVICE_KIND_EMBEDDING, 1_234_567, _round(Fraction(100_000 * 1_234_567, 1000))),
        (skpb.SERVICE_KIND_SEARCH, 3, 15_000_000),
        (skpb.SERVICE_KIND_AGENT, 2, 40_000_000),
    ],
)
async def test_non_llm_services_use_their_unit_prices(
    openrouter: OpenRouterCaller, service: int, quantity: int, expected: int
) -> None:
    quote = await openrouter.call(
        "QuotePrice", pb.QuotePriceRequest(tier="starter", service=service, quantity=quantity), openrouter.service
    )
    assert quote.total_nanos == expected and quote.provider_cost_nanos == 0


async def test_bad_quotes_are_refused(openrouter: OpenRouterCaller) -> None:
    svc = openrouter.service
    assert await openrouter.reason(
        "QuotePrice", pb.QuotePriceRequest(tier="starter", service=skpb.SERVICE_KIND_LLM, model="x/y"), svc
    ) == (
        grpc.StatusCode.NOT_FOUND,
        "MODEL_NOT_FOUND",
    )
    assert (
        await openrouter.reason("QuotePrice", pb.QuotePriceRequest(tier="gold", service=skpb.SERVICE_KIND_TTS), svc)
    )[1] == "UNKNOWN_TIER"
    assert (await openrouter.reason("QuotePrice", pb.QuotePriceRequest(tier="starter"), svc))[1] == "UNKNOWN_SERVICE"
    negative = pb.QuotePriceRequest(tier="starter", service=skpb.SERVICE_KIND_LLM, model=PAID, input_tokens=-1)
    assert (await openrouter.reason("QuotePrice", negative, svc))[1] == "INVALID_QUANTITY"
    trial_byok = pb.QuotePriceRequest(
        tier="trial", service=skpb.SERVICE_KIND_LLM, model=PAID, input_tokens=1, byok=True
    )
    assert (await openrouter.reason("QuotePrice", trial_byok, svc)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "BYOK_NOT_ALLOWED",
    )


async def test_a_rate_card_update_makes_a_new_version(openrouter: OpenRouterCaller) -> None:
    # Changes only what no metering test prices (embeddings, enterprise's free-model fee): metering keeps the
    # published book it fetched for up to 30 s, so the changed card can outlive this test there.
    current = (await openrouter.call("GetRateCard", pb.GetRateCardRequest(), openrouter.admin)).rate_card
    rid = request_id()
    update = pb.UpdateRateCardRequest(
        tiers=[pb.TierRate(tier="enterprise", markup_bps=0, byok_markup_bps=0, free_model_fee_per_1k_tokens_nanos=7)],
        unit_prices=[
            pb.UnitPrice(
                service=skpb.SERVICE_KIND_EMBEDDING, price_nanos=400_000, quantity_per_unit=1000, unit="tokens"
            )
        ],
        request_id=rid,
    )
    updated = (await openrouter.call("UpdateRateCard", update, openrouter.admin)).rate_card
    assert updated.version == current.version + 1
    again = (await openrouter.call("UpdateRateCard", update, openrouter.admin)).rate_card
    assert again.version == updated.version
    await asyncio.sleep(5.1)
    quote = await openrouter.call(
        "QuotePrice",
        pb.QuotePriceRequest(tier="enterprise", service=skpb.SERVICE_KIND_EMBEDDING, quantity=2_000),
        openrouter.service,
    )
    assert quote.total_nanos == 800_000 and quote.price_version.startswith(f"rc{updated.version}-")
    bad = pb.UpdateRateCardRequest(tiers=[pb.TierRate(tier="gold")], request_id=request_id())
    assert (await openrouter.reason("UpdateRateCard", bad, openrouter.admin))[1] == "UNKNOWN_TIER"
    # Put the defaults back for the other tests.
    restore = pb.UpdateRateCardRequest(
        tiers=[pb.TierRate(tier="enterprise", markup_bps=0, byok_markup_bps=0, free_model_fee_per_1k_tokens_nanos=0)],
        unit_prices=[
            pb.UnitPrice(
                service=skpb.SERVICE_KIND_EMBEDDING, price_nanos=100_000, quantity_per_unit=1000, unit="tokens"
            )
        ],
        request_id=request_id(),
    )
    await openrouter.call("UpdateRateCard", restore, openrouter.admin)
    await asyncio.sleep(5.1)


# --- accounts and keys -------------------------------------------------------------------------


async def test_racing_account_creation_provisions_exactly_one_key(
    openrouter: OpenRouterCaller, fake_openrouter: FakeOpenRouter
) -> None:
    user = new_user("or")
    token = openrouter.user(user)
    results = await asyncio.gather(
        *(openrouter.call("CreateAccount", pb.CreateAccountRequest(), token) for _ in range(20))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.account.key_hash for r in results}) == 1
    made = fake_openrouter.keys_named(f"creditmeter-{user}-")
    assert len(made) == 1
    assert made[0]["limit"] == Decimal(1) and made[0]["limit_reset"] == "weekly"  # the trial: $1 a week
    account = (await openrouter.call("GetAccount", pb.GetAccountRequest(), token)).account
    assert account.key_hint == made[0]["_key"][-4:] and account.limit_nanos == USD
    assert made[0]["_key"] not in str(account)


async def test_a_tier_change_updates_the_key_limit_on_sync(
    openrouter: OpenRouterCaller, credits: Credits, fake_openrouter: FakeOpenRouter
) -> None:
    user = new_user("or")
    token = openrouter.user(user)
    await openrouter.call("CreateAccount", pb.CreateAccountRequest(), token)
    await credits.as_admin("SetTier", cpb.SetTierRequest(user_id=user, tier="professional", request_id=request_id()))
    key = fake_openrouter.keys_named(f"creditmeter-{user}-")[0]
    fake_openrouter.set_usage(key["hash"], Decimal("1.25"))
    synced = (await openrouter.call("SyncBalance", pb.SyncBalanceRequest(), token)).account
    assert synced.tier == "professional" and synced.limit_reset == "monthly"
    assert synced.limit_nanos == 60 * USD and synced.usage_nanos == 1_250_000_000
    assert synced.limit_remaining_nanos == 60 * USD - 1_250_000_000
    assert fake_openrouter.keys_named(f"creditmeter-{user}-")[0]["limit"] == Decimal(60)


async def test_byok_is_validated_stored_encrypted_and_shown_only_as_a_hint(
    openrouter: OpenRouterCaller, credits: Credits, fake_openrouter: FakeOpenRouter, openrouter_db: asyncpg.Pool
) -> None:
    user = new_user("byok")
    token = openrouter.user(user)
    own_key = "sk-or-v1-" + request_id() + request_id()
    fake_openrouter.add_byok(own_key)
    refused = await openrouter.reason(
        "SetByokKey", pb.SetByokKeyRequest(api_key=own_key, request_id=request_id()), token
    )
    assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "BYOK_NOT_ALLOWED")  # trial
    await credits.as_admin("SetTier", cpb.SetTierRequest(user_id=user, tier="starter", request_id=request_id()))
    bogus = await openrouter.reason(
        "SetByokKey", pb.SetByokKeyRequest(api_key="sk-or-v1-not-a-real-key", request_id=request_id()), token
    )
    assert bogus == (grpc.StatusCode.INVALID_ARGUMENT, "BYOK_KEY_INVALID")
    assert (
        await openrouter.reason("SetByokKey", pb.SetByokKeyRequest(api_key="short", request_id=request_id()), token)
    )[1] == "BYOK_KEY_INVALID"
    stored = await openrouter.call("SetByokKey", pb.SetByokKeyRequest(api_key=own_key, request_id=request_id()), token)
    assert stored.byok_hint == own_key[-4:]
    assert own_key not in str(stored)
    provider = await openrouter.call("GetProviderKey", pb.GetProviderKeyRequest(user_id=user), openrouter.key_reader)
    assert (provider.api_key, provider.source) == (own_key, pb.KEY_SOURCE_BYOK)
    account = (await openrouter.call("GetAccount", pb.GetAccountRequest(), token)).account
    assert account.byok_hint == own_key[-4:] and account.active_key == pb.KEY_SOURCE_BYOK
    deleted = await openrouter.call("DeleteByokKey", pb.DeleteByokKeyRequest(request_id=request_id()), token)
    assert deleted.deleted
    assert not (await openrouter.call("DeleteByokKey", pb.DeleteByokKeyRequest(request_id=request_id()), token)).deleted
    fallback = await openrouter.call("GetProviderKey", pb.GetProviderKeyRequest(user_id=user), openrouter.key_reader)
    assert fallback.source == pb.KEY_SOURCE_PROVISIONED and fallback.api_key != own_key
    assert fallback.api_key in fake_openrouter.plaintext_keys()


async def test_no_plaintext_key_in_any_table_or_log_line(
    openrouter: OpenRouterCaller,
    credits: Credits,
    fake_openrouter: FakeOpenRouter,
    openrouter_db: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user = new_user("leak")
    token = openrouter.user(user)
    own_key = "sk-or-v1-" + request_id() + request_id()
    fake_openrouter.add_byok(own_key)
    await credits.as_admin("SetTier", cpb.SetTierRequest(user_id=user, tier="starter", request_id=request_id()))
    await openrouter.call("CreateAccount", pb.CreateAccountRequest(), token)
    await openrouter.call("SyncBalance", pb.SyncBalanceRequest(), token)
    await openrouter.call("SetByokKey", pb.SetByokKeyRequest(api_key=own_key, request_id=request_id()), token)
    await openrouter.reason(
        "SetByokKey", pb.SetByokKeyRequest(api_key="sk-or-v1-" + "f" * 40, request_id=request_id()), token
    )
    await openrouter.call("GetProviderKey", pb.GetProviderKeyRequest(user_id=user), openrouter.key_reader)
    secrets = [*fake_openrouter.plaintext_keys(), MANAGEMENT_KEY, "sk-or-v1-" + "f" * 40]
    async with openrouter_db.acquire() as conn:
        tables = [
            r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'openrouter'")
        ]
        dump = ""
        for table in tables:
            rows = await conn.fetch(f"SELECT row_to_json(t)::text AS j FROM openrouter.{table} t")  # noqa: S608
            dump += "\n".join(r["j"] for r in rows)
    assert "byok_keys" in tables and own_key[-4:] in dump  # the hint is there: the dump is real
    logs = caplog.text
    assert "openrouter" in logs.lower()  # the log capture is real too
    for secret in secrets:
        assert secret not in dump
        assert secret not in logs


async def test_rotation_re_encrypts_everything_under_the_primary_key(
    postgres: Postgres, keys: Keys, fake_openrouter: FakeOpenRouter
) -> None:
    from services.credits.config import CreditsSettings
    from services.credits.server import create_server as create_credits

    url = await postgres.database("rotation")
    credits_running = await create_credits(CreditsSettings.from_env(credits_environ(url, keys)))
    old, new = generate_key(), generate_key()

    async def start(fernet: list[str]) -> RunningService:
        return await create_server(
            OpenRouterSettings.from_env(
                openrouter_environ(url, keys, credits_running.port, fake_openrouter.url, fernet)
            )
        )

    users = [new_user("rot") for _ in range(3)]
    try:
        running = await start([old])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            client = OpenRouterCaller(chan, keys)
            before = {}
            for user in users:
                await client.call("CreateAccount", pb.CreateAccountRequest(), client.user(user))
                before[user] = (
                    await client.call("GetProviderKey", pb.GetProviderKeyRequest(user_id=user), client.key_reader)
                ).api_key
        await running.stop(1)

        running = await start([new, old])
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            client = OpenRouterCaller(chan, keys)
            rotated = await client.call(
                "RotateEncryptionKeys", pb.RotateEncryptionKeysRequest(request_id=request_id()), client.admin
            )
            assert rotated.rotated_count == len(users)
        await running.stop(1)

        running = await start([new])  # the old key is gone from the list
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as chan:
            client = OpenRouterCaller(chan, keys)
            for user in users:
                after = await client.call("GetProviderKey", pb.GetProviderKeyRequest(user_id=user), client.key_reader)
                assert after.api_key == before[user]
        await running.stop(1)
    finally:
        await credits_running.stop(1)


async def test_verify_flags_a_key_stored_in_clear(openrouter_db: asyncpg.Pool) -> None:
    from services.openrouter import verify

    user = new_user("clear")
    async with openrouter_db.acquire() as conn:
        assert all(r.ok for r in await verify.verify(conn))
        await conn.execute(
            "INSERT INTO byok_keys (user_id, key_ciphertext, key_hint) VALUES ($1, $2, 'abcd')",
            user,
            b"sk-or-v1-in-clear-abcd",
        )
        try:
            failed = {r.check.name for r in await verify.verify(conn) if not r.ok}
        finally:
            await conn.execute("DELETE FROM byok_keys WHERE user_id = $1", user)
    assert failed == {"keys_stored_only_encrypted"}


async def test_batch_quotes_match_single_quotes(openrouter: OpenRouterCaller) -> None:
    items = [
        pb.QuotePriceRequest(
            tier="starter", service=skpb.SERVICE_KIND_LLM, model=PAID, input_tokens=i * 7, output_tokens=i
        )
        for i in range(1, 50)
    ] + [pb.QuotePriceRequest(tier="trial", service=skpb.SERVICE_KIND_TTS, quantity=1234)]
    batch = await openrouter.call("QuotePrices", pb.QuotePricesRequest(quotes=items), openrouter.service)
    singles = [await openrouter.call("QuotePrice", item, openrouter.service) for item in items]
    assert list(batch.quotes) == singles
    bad = [*items[:3], pb.QuotePriceRequest(tier="starter", service=skpb.SERVICE_KIND_LLM, model="no/such")]
    try:
        await openrouter.call("QuotePrices", pb.QuotePricesRequest(quotes=bad), openrouter.service)
        raise AssertionError("expected a refusal")
    except grpc.aio.AioRpcError as error:
        info = error_info_from(error)
        assert info is not None and (info.reason, info.metadata["index"]) == ("MODEL_NOT_FOUND", "3")
