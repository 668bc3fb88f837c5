"""The price book: the openrouter context's published prices and its one pricing rule, as others use them.

The openrouter service owns the rate card and the model catalog. It publishes
the whole current version through ``GetPriceBook``; other contexts (metering)
keep a local copy and price with :func:`price` — the very function the
openrouter service's own ``QuotePrice`` uses — so there is one implementation
of the rule, not two, and pricing an event needs no network call. Like
``services.credits.client``, this module is the contract side of its context:
it imports only the pure domain and the generated messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from creditmeter.openrouter.v1 import openrouter_pb2 as pb

from services.common import service_kind
from services.common.errors import invalid, not_found, precondition
from services.openrouter import domain
from services.openrouter.domain import ModelPrice, Quote, Service, TierRate, UnitPrice


@dataclass(frozen=True)
class PriceBook:
    """One version of everything a price depends on."""

    version: str
    tiers: dict[str, TierRate]
    units: dict[Service, UnitPrice]
    models: dict[str, ModelPrice]
    byok_tiers: frozenset[str]


def price(
    book: PriceBook,
    tier: str,
    service: Service,
    model_id: str,
    input_tokens: int,
    output_tokens: int,
    quantity: int,
    byok: bool,
) -> Quote:
    """The one pricing rule (see ``domain.quote_llm`` / ``domain.quote_unit``) against one price book.

    Raises INVALID_ARGUMENT ``UNKNOWN_TIER``, FAILED_PRECONDITION ``BYOK_NOT_ALLOWED``,
    NOT_FOUND ``MODEL_NOT_FOUND`` (a caller may refresh its book once and try again).
    """
    rate = book.tiers.get(tier)
    if rate is None:
        raise invalid("UNKNOWN_TIER", f"no tier {tier!r} in the rate card", field="tier")
    if byok and tier not in book.byok_tiers:
        raise precondition("BYOK_NOT_ALLOWED", f"the {tier} tier cannot bring its own key")
    if service is Service.LLM:
        model = book.models.get(model_id)
        if model is None:
            raise not_found("MODEL_NOT_FOUND", f"no model {model_id!r} in the catalog", model=model_id)
        return domain.quote_llm(model, rate, input_tokens, output_tokens, byok)
    return domain.quote_unit(book.units[service], quantity)


def to_message(book: PriceBook, rate_card: pb.RateCard) -> pb.GetPriceBookResponse:
    return pb.GetPriceBookResponse(
        price_version=book.version,
        rate_card=rate_card,
        models=[
            pb.PriceBookModel(
                model_id=m.model_id,
                prompt_usd=str(m.prompt_usd),
                completion_usd=str(m.completion_usd),
                request_usd=str(m.request_usd),
            )
            for m in book.models.values()
        ],
        byok_tiers=sorted(book.byok_tiers),
    )


def from_message(message: pb.GetPriceBookResponse) -> PriceBook:
    """The local copy of a published book (prices stay exact decimals)."""
    card = message.rate_card
    return PriceBook(
        version=message.price_version,
        tiers={
            t.tier: TierRate(t.tier, t.markup_bps, t.byok_markup_bps, t.free_model_fee_per_1k_tokens_nanos)
            for t in card.tiers
        },
        units={
            Service(name): UnitPrice(Service(name), u.price_nanos, u.quantity_per_unit, u.unit)
            for u in card.unit_prices
            if (name := service_kind.name_of(u.service) or "") in Service.__members__
        },
        models={
            m.model_id: ModelPrice(
                model_id=m.model_id,
                name=m.model_id,
                context_length=0,
                prompt_usd=Decimal(m.prompt_usd),
                completion_usd=Decimal(m.completion_usd),
                request_usd=Decimal(m.request_usd),
                image_usd=Decimal(0),
            )
            for m in message.models
        },
        byok_tiers=frozenset(message.byok_tiers),
    )
