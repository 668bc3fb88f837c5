"""OpenRouterService: every RPC times every kind of caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from creditmeter.common.v1 import service_kind_pb2 as skpb
from creditmeter.credits.v1 import credits_pb2 as cpb
from creditmeter.openrouter.v1 import openrouter_pb2 as pb

from tests.conftest import request_id
from tests.integration.authz import CALLERS, OK, expect, token_for
from tests.integration.conftest import Credits
from tests.integration.conftest import OpenRouterCaller as Client
from tools.fake_openrouter import FakeOpenRouter

Factory = Callable[[Client, Credits, FakeOpenRouter, str], Awaitable[Any]]
NOT_FOUND = grpc.StatusCode.NOT_FOUND


async def _with_account(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> None:
    await c.call("CreateAccount", pb.CreateAccountRequest(), c.user(user))


async def _create(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.CreateAccountRequest()


async def _get(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    await _with_account(c, credits, fake, user)
    return pb.GetAccountRequest()


async def _sync(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    await _with_account(c, credits, fake, user)
    return pb.SyncBalanceRequest()


async def _set_byok(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    await credits.as_admin("SetTier", cpb.SetTierRequest(user_id=user, tier="starter", request_id=request_id()))
    key = "sk-or-v1-" + request_id()
    fake.add_byok(key)
    return pb.SetByokKeyRequest(api_key=key, request_id=request_id())


async def _delete_byok(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.DeleteByokKeyRequest(request_id=request_id())


async def _models(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.ListModelsRequest()


async def _quote(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.QuotePriceRequest(tier="starter", service=skpb.SERVICE_KIND_SEARCH, quantity=1)


async def _quotes(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.QuotePricesRequest(
        quotes=[pb.QuotePriceRequest(tier="starter", service=skpb.SERVICE_KIND_SEARCH, quantity=1)]
    )


async def _price_book(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.GetPriceBookRequest()


async def _provider_key(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.GetProviderKeyRequest(user_id=user)


async def _rotate(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.RotateEncryptionKeysRequest(request_id=request_id())


async def _sync_models(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.SyncModelsRequest(request_id=request_id())


async def _rate_card(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.GetRateCardRequest()


async def _update_rate_card(c: Client, credits: Credits, fake: FakeOpenRouter, user: str) -> Any:
    return pb.UpdateRateCardRequest(request_id=request_id())  # changes nothing, makes a new version


USERS = {"user_self", "user_other"}
# A user acting on "their own" account: the intruder has none, so reads find nothing.
_user_reads = expect(USERS) | {"user_other": NOT_FOUND}

MATRIX: dict[str, tuple[Factory, dict[str, grpc.StatusCode]]] = {
    "CreateAccount": (_create, expect(USERS)),
    "GetAccount": (_get, _user_reads),
    "SyncBalance": (_sync, _user_reads),
    # The intruder is on trial: BYOK is refused for their tier, not someone else's.
    "SetByokKey": (_set_byok, expect(USERS) | {"user_other": grpc.StatusCode.FAILED_PRECONDITION}),
    "DeleteByokKey": (_delete_byok, expect(USERS)),
    "ListModels": (_models, expect({"user_self", "user_other", "admin", "svc-metering", "svc-platform"})),
    "QuotePrice": (_quote, expect({"admin", "svc-metering", "svc-platform"})),
    "QuotePrices": (_quotes, expect({"admin", "svc-metering"})),
    "GetPriceBook": (_price_book, expect({"admin", "svc-metering"})),
    # Decrypted keys: the openrouter service's own identity only; no other service, no admin.
    "GetProviderKey": (_provider_key, expect({"svc-openrouter"})),
    "RotateEncryptionKeys": (_rotate, expect({"admin"})),
    "SyncModels": (_sync_models, expect({"admin"})),
    "GetRateCard": (_rate_card, expect({"admin", "svc-metering"})),
    "UpdateRateCard": (_update_rate_card, expect({"admin"})),
}


def test_the_matrix_covers_every_rpc() -> None:
    assert set(pb.DESCRIPTOR.services_by_name["OpenRouterService"].methods_by_name) == set(MATRIX)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method", sorted(MATRIX))
async def test_authorization(
    openrouter: Client, credits: Credits, fake_openrouter: FakeOpenRouter, method: str, caller: str
) -> None:
    factory, expected = MATRIX[method]
    target = await credits.funded_user(0)
    request = await factory(openrouter, credits, fake_openrouter, target)
    try:
        await openrouter.call(method, request, token_for(openrouter.keys, caller, target))
        code = OK
    except grpc.aio.AioRpcError as error:
        code = error.code()
    assert code == expected[caller], f"{method} as {caller}: {code.name}, expected {expected[caller].name}"
