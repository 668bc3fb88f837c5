"""OpenRouter key creation that stays idempotent across retries, and an orphan sweep over every page."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import asyncpg
import pytest
from creditmeter.openrouter.v1 import openrouter_pb2 as pb

from services.openrouter.client import OpenRouterClient, OpenRouterError
from tests.conftest import MANAGEMENT_KEY, new_user
from tests.integration.conftest import OpenRouterCaller
from tools.fake_openrouter import FakeOpenRouter

KEYS = "/api/v1/keys"


def _posts(fake: FakeOpenRouter) -> int:
    return sum(1 for method, path in fake.requests if (method, path) == ("POST", KEYS))


@pytest.fixture
def small_pages(fake_openrouter: FakeOpenRouter) -> Iterator[FakeOpenRouter]:
    """The fake with 3 keys a page, so that every list runs over several pages."""
    fake_openrouter.page_size = 3
    yield fake_openrouter
    fake_openrouter.page_size = 100
    fake_openrouter.faults.pop(KEYS, None)


async def test_create_is_not_retried_on_a_server_error_but_is_on_429(fake_openrouter: FakeOpenRouter) -> None:
    client = OpenRouterClient(fake_openrouter.url, MANAGEMENT_KEY, timeout_seconds=1, backoff_seconds=0.01)
    try:
        before = _posts(fake_openrouter)
        fake_openrouter.inject(KEYS, 500)
        with pytest.raises(OpenRouterError) as error:
            await client.create_key(new_user("k"), Decimal(1), "weekly")
        assert error.value.reason == "OPENROUTER_UNAVAILABLE"
        assert _posts(fake_openrouter) == before + 1
        # A 429 means OpenRouter did nothing: that one is safe to retry.
        fake_openrouter.inject(KEYS, 429)
        name = new_user("k")
        plaintext, data = await client.create_key(name, Decimal(1), "weekly")
        assert _posts(fake_openrouter) == before + 3
        assert [k["hash"] for k in fake_openrouter.keys_named(name)] == [data["hash"]]
        assert plaintext.startswith("sk-or-v1-")
    finally:
        await client.close()


async def test_the_key_list_is_read_over_every_page(small_pages: FakeOpenRouter) -> None:
    client = OpenRouterClient(small_pages.url, MANAGEMENT_KEY, timeout_seconds=1)
    try:
        name = new_user("paged")
        made = [await client.create_key(name, None, None) for _ in range(2)]
        for _ in range(7):
            await client.create_key(new_user("filler"), None, None)
        disabled = made[1][1]["hash"]
        small_pages.keys[disabled]["disabled"] = True
        assert len(await client.list_keys(0)) == 3  # pages really are small
        found = await client.keys_named(name)
        assert sorted(k["hash"] for k in found) == sorted(h["hash"] for _, h in made)  # disabled one too
    finally:
        await client.close()


@pytest.mark.parametrize("fault", ["after:500", "after:malformed"])
async def test_a_lost_create_answer_leaves_exactly_one_key(
    openrouter: OpenRouterCaller, small_pages: FakeOpenRouter, fault: str
) -> None:
    user = new_user("lost")
    before = _posts(small_pages)
    # OpenRouter makes the key, then the answer is lost: the secret of that key is never seen.
    small_pages.inject(KEYS, fault)
    created = await openrouter.call("CreateAccount", pb.CreateAccountRequest(), openrouter.user(user))
    assert created.created
    assert _posts(small_pages) == before + 2
    keys = small_pages.keys_named(f"creditmeter-{user}-")
    assert len(keys) == 1, "the key whose answer was lost must not live on"
    assert keys[0]["hash"] == created.account.key_hash
    provider = await openrouter.call("GetProviderKey", pb.GetProviderKeyRequest(user_id=user), openrouter.key_reader)
    assert provider.api_key == keys[0]["_key"]


async def test_a_taken_over_claim_deletes_its_orphan_on_any_page(
    openrouter: OpenRouterCaller, small_pages: FakeOpenRouter, openrouter_db: asyncpg.Pool
) -> None:
    user = new_user("orphan")
    orphan_name = f"creditmeter-{user}-crashed"
    client = OpenRouterClient(small_pages.url, MANAGEMENT_KEY, timeout_seconds=1)
    try:
        for _ in range(7):
            await client.create_key(new_user("filler"), None, None)
        # A caller crashed after OpenRouter made its key but before storing it; its claim is stale.
        await client.create_key(orphan_name, Decimal(1), "weekly")
    finally:
        await client.close()
    assert len(small_pages.keys) > 2 * small_pages.page_size  # the orphan is past the first pages
    async with openrouter_db.acquire() as conn:
        await conn.execute(
            "INSERT INTO accounts (user_id, status, provision_name, updated_at)"
            " VALUES ($1, 'PROVISIONING', $2, now() - interval '1 hour')",
            user,
            orphan_name,
        )
    created = await openrouter.call("CreateAccount", pb.CreateAccountRequest(), openrouter.user(user))
    assert created.created
    assert small_pages.keys_named(orphan_name) == []
    assert [k["hash"] for k in small_pages.keys_named(f"creditmeter-{user}-")] == [created.account.key_hash]
