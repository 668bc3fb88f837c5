"""OpenRouterService servicer: proto ↔ domain and access rules; no SQL."""

from __future__ import annotations

import hashlib

import grpc
from creditmeter.openrouter.v1 import openrouter_pb2 as pb
from creditmeter.openrouter.v1 import openrouter_pb2_grpc as pb_grpc

from services.common import service_kind
from services.common.errors import DomainError, invalid
from services.common.grpcserver import MethodPolicy, principal
from services.common.idempotency import fingerprint
from services.common.timestamps import to_timestamp
from services.openrouter import domain, pricebook
from services.openrouter.domain import Service, TierRate, UnitPrice
from services.openrouter.workflow import AccountView, OpenRouter, RateCard

_SERVICE = "/creditmeter.openrouter.v1.OpenRouterService/"

#: Who may call each RPC (docs/authorization.md is generated from this). Decrypted keys
#: (GetProviderKey) are for the openrouter service's own identity only: no other caller, person
#: or service, can obtain one, and the gateway does not route it.
POLICIES: dict[str, MethodPolicy] = {
    _SERVICE + "CreateAccount": MethodPolicy.allow("user"),
    _SERVICE + "GetAccount": MethodPolicy.allow("user"),
    _SERVICE + "SyncBalance": MethodPolicy.allow("user"),
    _SERVICE + "SetByokKey": MethodPolicy.allow("user"),
    _SERVICE + "DeleteByokKey": MethodPolicy.allow("user"),
    _SERVICE + "ListModels": MethodPolicy.allow(
        "user", "admin", "svc-metering", "svc-platform", limits={"user": "own tier"}
    ),
    _SERVICE + "QuotePrice": MethodPolicy.allow("admin", "svc-metering", "svc-platform"),
    _SERVICE + "QuotePrices": MethodPolicy.allow("admin", "svc-metering"),
    _SERVICE + "GetPriceBook": MethodPolicy.allow("admin", "svc-metering"),
    _SERVICE + "GetProviderKey": MethodPolicy.allow("svc-openrouter"),
    _SERVICE + "RotateEncryptionKeys": MethodPolicy.allow("admin"),
    _SERVICE + "SyncModels": MethodPolicy.allow("admin"),
    _SERVICE + "GetRateCard": MethodPolicy.allow("admin", "svc-metering"),
    _SERVICE + "UpdateRateCard": MethodPolicy.allow("admin"),
}


def _account_pb(view: AccountView, byok_active: bool) -> pb.Account:
    if byok_active:
        active = pb.KEY_SOURCE_BYOK
    else:
        active = pb.KEY_SOURCE_PROVISIONED if view.key_hash else pb.KEY_SOURCE_UNSPECIFIED
    return pb.Account(
        user_id=view.user_id,
        key_hash=view.key_hash,
        key_hint=view.key_hint,
        limit_nanos=view.limit_nanos,
        usage_nanos=view.usage_nanos,
        limit_remaining_nanos=view.limit_remaining_nanos,
        limit_reset=view.limit_reset,
        tier=view.tier,
        byok_hint=view.byok_hint,
        active_key=active,
        synced_at=to_timestamp(view.synced_at),
        created_at=to_timestamp(view.created_at),
    )


def _rate_card_pb(card: RateCard) -> pb.RateCard:
    return pb.RateCard(
        version=card.version,
        tiers=[
            pb.TierRate(
                tier=t.tier,
                markup_bps=t.markup_bps,
                byok_markup_bps=t.byok_markup_bps,
                free_model_fee_per_1k_tokens_nanos=t.free_fee_per_1k_tokens_nanos,
            )
            for t in card.tiers.values()
        ],
        unit_prices=[
            pb.UnitPrice(
                service=service_kind.value_of(u.service),
                price_nanos=u.price_nanos,
                quantity_per_unit=u.quantity_per_unit,
                unit=u.unit,
            )
            for u in card.units.values()
        ],
        created_at=to_timestamp(card.created_at),
        created_by=card.created_by,
    )


class OpenRouterServicer(pb_grpc.OpenRouterServiceServicer):
    def __init__(self, openrouter: OpenRouter) -> None:
        self._or = openrouter

    async def _account(self, view: AccountView) -> pb.Account:
        return _account_pb(view, await self._or.byok_active(view.user_id, bool(view.byok_hint)))

    async def CreateAccount(
        self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAccountResponse:
        user_id = principal().subject

        async def run() -> pb.CreateAccountResponse:
            row, created = await self._or.create_account(user_id)
            return pb.CreateAccountResponse(account=await self._account(row), created=created)

        if not request.request_id:  # optional here: provisioning happens once per user anyway
            return await run()
        return await self._or.responses.once(
            caller=user_id,
            request_id=request.request_id,
            fingerprint=fingerprint("CreateAccount"),
            response_type=pb.CreateAccountResponse,
            run=run,
        )

    async def GetAccount(
        self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAccountResponse:
        return pb.GetAccountResponse(account=await self._account(await self._or.get_account(principal().subject)))

    async def SyncBalance(
        self, request: pb.SyncBalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.SyncBalanceResponse:
        user_id = principal().subject

        async def run() -> pb.SyncBalanceResponse:
            return pb.SyncBalanceResponse(account=await self._account(await self._or.sync_balance(user_id)))

        if not request.request_id:  # optional here: a sync converges on OpenRouter's state
            return await run()
        return await self._or.responses.once(
            caller=user_id,
            request_id=request.request_id,
            fingerprint=fingerprint("SyncBalance"),
            response_type=pb.SyncBalanceResponse,
            run=run,
        )

    async def SetByokKey(
        self, request: pb.SetByokKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetByokKeyResponse:
        user_id = principal().subject

        async def run() -> pb.SetByokKeyResponse:
            hint = await self._or.set_byok(user_id, request.api_key)
            response = pb.SetByokKeyResponse(byok_hint=hint)
            response.account.CopyFrom(await self._account(await self._or.get_account(user_id)))
            return response

        return await self._or.responses.once(
            caller=user_id,
            request_id=request.request_id,
            # Only a digest of the key enters the fingerprint (itself a digest).
            fingerprint=fingerprint("SetByokKey", api_key_sha256=hashlib.sha256(request.api_key.encode()).hexdigest()),
            response_type=pb.SetByokKeyResponse,
            run=run,
        )

    async def DeleteByokKey(
        self, request: pb.DeleteByokKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteByokKeyResponse:
        user_id = principal().subject

        async def run() -> pb.DeleteByokKeyResponse:
            return pb.DeleteByokKeyResponse(deleted=await self._or.delete_byok(user_id))

        return await self._or.responses.once(
            caller=user_id,
            request_id=request.request_id,
            fingerprint=fingerprint("DeleteByokKey"),
            response_type=pb.DeleteByokKeyResponse,
            run=run,
        )

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        who = principal()
        if request.tier and not who.is_privileged:
            raise invalid("TIER_NOT_ALLOWED", "only admins and services may price for another tier", field="tier")
        tier = request.tier or await self._or.tier_of(who.subject)
        models, rate, version = await self._or.models(tier)
        out = []
        for m in models:
            if request.free_only and not m.free:
                continue
            prompt = domain.per_million(m.prompt_usd)
            completion = domain.per_million(m.completion_usd)
            per_request = domain.nanos_text(m.request_usd)
            provider = (prompt, completion, per_request)
            caller: tuple[str, ...]
            if m.free:
                caller = ("0", "0", "0")
            elif request.byok:
                caller = tuple(domain.share(p, rate.byok_markup_bps) for p in provider)
            else:
                caller = tuple(domain.marked_up(p, rate.markup_bps) for p in provider)
            out.append(
                pb.Model(
                    model_id=m.model_id,
                    name=m.name,
                    context_length=m.context_length,
                    free=m.free,
                    provider_prompt_nanos_per_mtok=prompt,
                    provider_completion_nanos_per_mtok=completion,
                    provider_request_nanos=per_request,
                    prompt_nanos_per_mtok=caller[0],
                    completion_nanos_per_mtok=caller[1],
                    request_nanos=caller[2],
                    free_fee_per_1k_tokens_nanos=rate.free_fee_per_1k_tokens_nanos if m.free else 0,
                )
            )
        return pb.ListModelsResponse(models=out, tier=tier, price_version=version)

    async def _quote(self, request: pb.QuotePriceRequest) -> pb.QuotePriceResponse:
        name = service_kind.name_of(request.service)
        if name is None:
            raise invalid(
                "UNKNOWN_SERVICE",
                "service must be one of " + ", ".join(service_kind.PREFIX + n for n in service_kind.NAMES),
                field="service",
            )
        service = Service(name)
        if not request.tier:
            raise invalid("UNKNOWN_TIER", "tier is required", field="tier")
        if service is Service.LLM and not request.model:
            raise invalid("MISSING_MODEL", "model is required for LLM quotes", field="model")
        quote, version = await self._or.quote(
            request.tier,
            service,
            request.model,
            request.input_tokens,
            request.output_tokens,
            request.quantity,
            request.byok,
        )
        return pb.QuotePriceResponse(
            provider_cost_nanos=quote.provider_cost_nanos,
            platform_fee_nanos=quote.platform_fee_nanos,
            total_nanos=quote.total_nanos,
            price_version=version,
            free_model=quote.free_model,
        )

    async def QuotePrice(
        self, request: pb.QuotePriceRequest, context: grpc.aio.ServicerContext
    ) -> pb.QuotePriceResponse:
        return await self._quote(request)

    async def QuotePrices(
        self, request: pb.QuotePricesRequest, context: grpc.aio.ServicerContext
    ) -> pb.QuotePricesResponse:
        if not 1 <= len(request.quotes) <= 10_000:
            raise invalid("TOO_MANY_QUOTES", "send 1 to 10000 quotes", field="quotes")
        answers = []
        for index, item in enumerate(request.quotes):
            try:
                answers.append(await self._quote(item))
            except DomainError as error:
                error.metadata["index"] = str(index)
                raise
        return pb.QuotePricesResponse(quotes=answers)

    async def GetPriceBook(
        self, request: pb.GetPriceBookRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPriceBookResponse:
        book, card = await self._or.price_book(refresh_catalog=request.refresh_catalog)
        if request.known_version and request.known_version == book.version:
            return pb.GetPriceBookResponse(price_version=book.version, unchanged=True)
        return pricebook.to_message(book, _rate_card_pb(card))

    async def GetProviderKey(
        self, request: pb.GetProviderKeyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetProviderKeyResponse:
        if not request.user_id:
            raise invalid("INVALID_USER_ID", "user_id is required", field="user_id")
        key, source = await self._or.provider_key(request.user_id)
        return pb.GetProviderKeyResponse(
            api_key=key, source=pb.KEY_SOURCE_BYOK if source == "BYOK" else pb.KEY_SOURCE_PROVISIONED
        )

    async def RotateEncryptionKeys(
        self, request: pb.RotateEncryptionKeysRequest, context: grpc.aio.ServicerContext
    ) -> pb.RotateEncryptionKeysResponse:
        async def run() -> pb.RotateEncryptionKeysResponse:
            return pb.RotateEncryptionKeysResponse(rotated_count=await self._or.rotate())

        return await self._or.responses.once(
            caller=principal().subject,
            request_id=request.request_id,
            fingerprint=fingerprint("RotateEncryptionKeys"),
            response_type=pb.RotateEncryptionKeysResponse,
            run=run,
        )

    async def SyncModels(
        self, request: pb.SyncModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SyncModelsResponse:
        async def run() -> pb.SyncModelsResponse:
            count, version, changed = await self._or.sync_models()
            return pb.SyncModelsResponse(model_count=count, catalog_version=version, changed=changed)

        return await self._or.responses.once(
            caller=principal().subject,
            request_id=request.request_id,
            fingerprint=fingerprint("SyncModels"),
            response_type=pb.SyncModelsResponse,
            run=run,
        )

    async def GetRateCard(
        self, request: pb.GetRateCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRateCardResponse:
        return pb.GetRateCardResponse(rate_card=_rate_card_pb(await self._or.rate_card()))

    async def UpdateRateCard(
        self, request: pb.UpdateRateCardRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateRateCardResponse:
        if not request.request_id:
            raise invalid("MISSING_REQUEST_ID", "request_id is required for every change", field="request_id")
        tiers = [
            TierRate(t.tier, t.markup_bps, t.byok_markup_bps, t.free_model_fee_per_1k_tokens_nanos)
            for t in request.tiers
        ]
        units = []
        for u in request.unit_prices:
            name = service_kind.name_of(u.service)
            if name is None or name == Service.LLM:
                raise invalid("UNKNOWN_SERVICE", "unit prices are for every service but SERVICE_KIND_LLM")
            units.append(UnitPrice(Service(name), u.price_nanos, u.quantity_per_unit, u.unit or "units"))
        card = await self._or.update_rate_card(tiers, units, principal().subject, request.request_id)
        return pb.UpdateRateCardResponse(rate_card=_rate_card_pb(card))
