"""AIP-155 on the RPCs that gained a request_id: a retry answers the first response, a reuse is refused.

Each test shows three things for one RPC: the same id again returns exactly
the first response (and does not do the work again, where that is visible),
the same id with other parameters (or for another call) is refused with
ALREADY_EXISTS / REQUEST_ID_REUSED, and, where the id is required, a call
without one is refused and changes nothing.
"""

from __future__ import annotations

from decimal import Decimal

import grpc
from creditmeter.coupons.v1 import coupons_pb2 as cpb
from creditmeter.credits.v1 import credits_pb2 as crpb
from creditmeter.openrouter.v1 import openrouter_pb2 as pb

from tests.conftest import new_user, request_id
from tests.integration.conftest import CouponsClient, Credits, OpenRouterCaller
from tools.fake_openrouter import FakeOpenRouter

REUSED = (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
MISSING = (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_REQUEST_ID")
PAID = "openai/gpt-4o-mini"


async def _byok_user(openrouter: OpenRouterCaller, credits: Credits, fake: FakeOpenRouter) -> tuple[str, str, str]:
    """(user, token, a key OpenRouter accepts) for a user on a tier that allows BYOK."""
    user = new_user("rid")
    await credits.as_admin("SetTier", crpb.SetTierRequest(user_id=user, tier="starter", request_id=request_id()))
    key = "sk-or-v1-" + request_id() + request_id()
    fake.add_byok(key)
    await openrouter.call("CreateAccount", pb.CreateAccountRequest(), openrouter.user(user))
    return user, openrouter.user(user), key


async def test_set_byok_key_retry_replays_and_reuse_is_refused(
    openrouter: OpenRouterCaller, credits: Credits, fake_openrouter: FakeOpenRouter
) -> None:
    user, token, key = await _byok_user(openrouter, credits, fake_openrouter)
    assert await openrouter.reason("SetByokKey", pb.SetByokKeyRequest(api_key=key), token) == MISSING
    assert (await openrouter.call("GetAccount", pb.GetAccountRequest(), token)).account.byok_hint == ""
    rid = request_id()
    first = await openrouter.call("SetByokKey", pb.SetByokKeyRequest(api_key=key, request_id=rid), token)
    assert first.byok_hint == key[-4:]
    # The key is removed in between: a replay answers the first response and does not store the key again.
    await openrouter.call("DeleteByokKey", pb.DeleteByokKeyRequest(request_id=request_id()), token)
    again = await openrouter.call("SetByokKey", pb.SetByokKeyRequest(api_key=key, request_id=rid), token)
    assert again == first
    assert (await openrouter.call("GetAccount", pb.GetAccountRequest(), token)).account.byok_hint == ""
    other_key = "sk-or-v1-" + request_id() + request_id()
    fake_openrouter.add_byok(other_key)
    assert await openrouter.reason("SetByokKey", pb.SetByokKeyRequest(api_key=other_key, request_id=rid), token) == (
        REUSED
    )
    assert (await openrouter.call("GetAccount", pb.GetAccountRequest(), token)).account.byok_hint == ""
    # Ids are scoped to the caller: another user's identical id is their own request.
    _, stranger, stranger_key = await _byok_user(openrouter, credits, fake_openrouter)
    theirs = await openrouter.call("SetByokKey", pb.SetByokKeyRequest(api_key=stranger_key, request_id=rid), stranger)
    assert theirs.byok_hint == stranger_key[-4:] and theirs.account.user_id != user


async def test_delete_byok_key_retry_replays_and_reuse_is_refused(
    openrouter: OpenRouterCaller, credits: Credits, fake_openrouter: FakeOpenRouter
) -> None:
    _, token, key = await _byok_user(openrouter, credits, fake_openrouter)
    await openrouter.call("SetByokKey", pb.SetByokKeyRequest(api_key=key, request_id=request_id()), token)
    assert await openrouter.reason("DeleteByokKey", pb.DeleteByokKeyRequest(), token) == MISSING
    assert (await openrouter.call("GetAccount", pb.GetAccountRequest(), token)).account.byok_hint == key[-4:]
    rid = request_id()
    first = await openrouter.call("DeleteByokKey", pb.DeleteByokKeyRequest(request_id=rid), token)
    assert first.deleted
    assert (await openrouter.call("DeleteByokKey", pb.DeleteByokKeyRequest(request_id=rid), token)) == first
    assert not (await openrouter.call("DeleteByokKey", pb.DeleteByokKeyRequest(request_id=request_id()), token)).deleted
    # The same id for another call of the same caller is a different request.
    assert await openrouter.reason("SetByokKey", pb.SetByokKeyRequest(api_key=key, request_id=rid), token) == REUSED
    assert (await openrouter.call("GetAccount", pb.GetAccountRequest(), token)).account.byok_hint == ""


async def test_rotate_encryption_keys_retry_replays_and_reuse_is_refused(openrouter: OpenRouterCaller) -> None:
    assert await openrouter.reason("RotateEncryptionKeys", pb.RotateEncryptionKeysRequest(), openrouter.admin) == (
        MISSING
    )
    await openrouter.call("CreateAccount", pb.CreateAccountRequest(), openrouter.user(new_user("rot")))
    rid = request_id()
    first = await openrouter.call(
        "RotateEncryptionKeys", pb.RotateEncryptionKeysRequest(request_id=rid), openrouter.admin
    )
    assert first.rotated_count >= 1
    # One more stored key: a replay still answers the first count, a new request counts it.
    await openrouter.call("CreateAccount", pb.CreateAccountRequest(), openrouter.user(new_user("rot")))
    again = await openrouter.call(
        "RotateEncryptionKeys", pb.RotateEncryptionKeysRequest(request_id=rid), openrouter.admin
    )
    assert again == first
    fresh = await openrouter.call(
        "RotateEncryptionKeys", pb.RotateEncryptionKeysRequest(request_id=request_id()), openrouter.admin
    )
    assert fresh.rotated_count > first.rotated_count
    assert await openrouter.reason("SyncModels", pb.SyncModelsRequest(request_id=rid), openrouter.admin) == REUSED


async def test_sync_models_retry_replays_without_syncing_and_reuse_is_refused(
    openrouter: OpenRouterCaller, fake_openrouter: FakeOpenRouter
) -> None:
    assert await openrouter.reason("SyncModels", pb.SyncModelsRequest(), openrouter.admin) == MISSING
    rid = request_id()
    first = await openrouter.call("SyncModels", pb.SyncModelsRequest(request_id=rid), openrouter.admin)
    entry = next(m for m in fake_openrouter.models["data"] if m["id"] == PAID)
    old = entry["pricing"]["prompt"]
    entry["pricing"]["prompt"] = "0.0000003"
    try:
        again = await openrouter.call("SyncModels", pb.SyncModelsRequest(request_id=rid), openrouter.admin)
        assert again == first
    finally:
        entry["pricing"]["prompt"] = old
    # Had the replay synced, the catalog would hold the changed price and this sync would change it back.
    after = await openrouter.call("SyncModels", pb.SyncModelsRequest(request_id=request_id()), openrouter.admin)
    assert not after.changed and after.catalog_version == first.catalog_version
    assert await openrouter.reason(
        "RotateEncryptionKeys", pb.RotateEncryptionKeysRequest(request_id=rid), openrouter.admin
    ) == (REUSED)


async def test_create_account_and_sync_balance_take_an_optional_request_id(
    openrouter: OpenRouterCaller, fake_openrouter: FakeOpenRouter
) -> None:
    user = new_user("rid")
    token = openrouter.user(user)
    rid = request_id()
    created = await openrouter.call("CreateAccount", pb.CreateAccountRequest(request_id=rid), token)
    assert created.created
    assert await openrouter.call("CreateAccount", pb.CreateAccountRequest(request_id=rid), token) == created
    assert not (await openrouter.call("CreateAccount", pb.CreateAccountRequest(), token)).created
    assert await openrouter.reason("SyncBalance", pb.SyncBalanceRequest(request_id=rid), token) == REUSED
    sync_id = request_id()
    synced = await openrouter.call("SyncBalance", pb.SyncBalanceRequest(request_id=sync_id), token)
    key = fake_openrouter.keys_named(f"creditmeter-{user}-")[0]
    fake_openrouter.set_usage(key["hash"], Decimal("0.5"))
    assert await openrouter.call("SyncBalance", pb.SyncBalanceRequest(request_id=sync_id), token) == synced
    assert (await openrouter.call("SyncBalance", pb.SyncBalanceRequest(), token)).account.usage_nanos == 500_000_000


async def test_disable_coupon_retry_replays_and_reuse_is_refused(coupons: CouponsClient) -> None:
    coupon = await coupons.create()
    admin = coupons.admin_token
    missing = await coupons.fail("DisableCoupon", cpb.DisableCouponRequest(code=coupon.code), admin)
    assert (missing.code, missing.reason) == MISSING
    listed = await coupons.call("GetCoupon", cpb.GetCouponRequest(code=coupon.code), admin)
    assert not listed.coupon.disabled
    rid = request_id()
    first = await coupons.call("DisableCoupon", cpb.DisableCouponRequest(code=coupon.code, request_id=rid), admin)
    assert first.coupon.disabled
    again = await coupons.call("DisableCoupon", cpb.DisableCouponRequest(code=coupon.code, request_id=rid), admin)
    assert again == first
    other = await coupons.create()
    reused = await coupons.fail("DisableCoupon", cpb.DisableCouponRequest(code=other.code, request_id=rid), admin)
    assert (reused.code, reused.reason) == REUSED
    assert not (await coupons.call("GetCoupon", cpb.GetCouponRequest(code=other.code), admin)).coupon.disabled
    why = await coupons.fail(
        "DisableCoupon", cpb.DisableCouponRequest(code=coupon.code, reason="another reason", request_id=rid), admin
    )
    assert (why.code, why.reason) == REUSED
