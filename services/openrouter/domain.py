"""OpenRouter domain: exact prices, the one rounding rule, free-model detection, key hints. Pure Python.

Prices arrive from OpenRouter as decimal strings in USD per token. They are
kept as exact ``Decimal`` values and only a final cost is rounded, once, to a
whole nano-USD, half up (0.5 nano rounds away from zero). No float anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from enum import StrEnum

from services.common.errors import invalid

DOMAIN = "openrouter.creditmeter.dev"
NANOS_PER_USD = Decimal(1_000_000_000)
BASIS_POINTS = Decimal(10_000)
MAX_TOKENS = 10_000_000_000
MAX_QUANTITY = 1_000_000_000_000
#: Enough digits that no product of a price and a quantity here is ever rounded early.
_PRECISION = 60


class Service(StrEnum):
    LLM = "LLM"
    TTS = "TTS"
    STT = "STT"
    EMBEDDING = "EMBEDDING"
    SEARCH = "SEARCH"
    AGENT = "AGENT"


def round_nanos(amount: Decimal) -> int:
    """The one rounding rule: to a whole nano-USD, half up."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_usd(text: object, field: str) -> Decimal:
    """An exact decimal from OpenRouter's price strings (numbers are accepted as their text)."""
    if isinstance(text, bool) or not isinstance(text, str | int | Decimal):
        raise ValueError(f"{field} is not a decimal: {text!r}")
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"{field} is not a decimal: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"{field} is not finite: {text!r}")
    return value


def usd_to_nanos(value: Decimal) -> int:
    with localcontext(prec=_PRECISION):
        return round_nanos(value * NANOS_PER_USD)


def nanos_to_usd(nanos: int) -> Decimal:
    with localcontext(prec=_PRECISION):
        return Decimal(nanos) / NANOS_PER_USD


def is_free(model_id: str, prompt_usd: Decimal, completion_usd: Decimal) -> bool:
    return model_id.endswith(":free") or (prompt_usd == 0 and completion_usd == 0)


def key_hint(api_key: str) -> str:
    """The last 4 characters: all that is ever shown of a key."""
    return api_key[-4:]


_KEY_RE = re.compile(r"^[\x21-\x7e]{8,256}\Z")


def check_key_shape(api_key: str) -> str:
    """A plausible API key: 8-256 printable characters without spaces. Says nothing about the key itself."""
    key = api_key.strip()
    if not _KEY_RE.match(key):
        raise invalid("BYOK_KEY_INVALID", "that is not an OpenRouter API key", field="api_key")
    return key


@dataclass(frozen=True)
class ModelPrice:
    model_id: str
    name: str
    context_length: int
    prompt_usd: Decimal
    completion_usd: Decimal
    request_usd: Decimal
    image_usd: Decimal

    @property
    def free(self) -> bool:
        return is_free(self.model_id, self.prompt_usd, self.completion_usd)


@dataclass(frozen=True)
class TierRate:
    tier: str
    markup_bps: int
    byok_markup_bps: int
    free_fee_per_1k_tokens_nanos: int


@dataclass(frozen=True)
class UnitPrice:
    service: Service
    price_nanos: int
    quantity_per_unit: int
    unit: str


@dataclass(frozen=True)
class Quote:
    provider_cost_nanos: int
    platform_fee_nanos: int
    total_nanos: int
    free_model: bool


def _check_count(value: int, field: str, limit: int) -> int:
    if value < 0 or value > limit:
        raise invalid("INVALID_QUANTITY", f"{field} must be from 0 to {limit}", field=field)
    return value


def quote_llm(model: ModelPrice, rate: TierRate, input_tokens: int, output_tokens: int, byok: bool) -> Quote:
    """Prices one model call exactly, then rounds once.

    Paid model: provider cost = input * prompt + output * completion + request;
    the user pays it plus the tier's markup, or only the BYOK markup when the
    call ran on their own key. Free model: a flat fee per 1,000 tokens.
    ``platform_fee`` is ``total - provider_cost`` (each rounded once from exact values).
    """
    _check_count(input_tokens, "input_tokens", MAX_TOKENS)
    _check_count(output_tokens, "output_tokens", MAX_TOKENS)
    with localcontext(prec=_PRECISION):
        if model.free:
            fee = round_nanos(Decimal(rate.free_fee_per_1k_tokens_nanos) * (input_tokens + output_tokens) / 1000)
            return Quote(provider_cost_nanos=0, platform_fee_nanos=fee, total_nanos=fee, free_model=True)
        exact_provider = (
            input_tokens * model.prompt_usd + output_tokens * model.completion_usd + model.request_usd
        ) * NANOS_PER_USD
        provider = round_nanos(exact_provider)
        if byok:
            fee = round_nanos(exact_provider * rate.byok_markup_bps / BASIS_POINTS)
            return Quote(provider_cost_nanos=provider, platform_fee_nanos=fee, total_nanos=fee, free_model=False)
        total = round_nanos(exact_provider * (BASIS_POINTS + rate.markup_bps) / BASIS_POINTS)
        return Quote(
            provider_cost_nanos=provider, platform_fee_nanos=total - provider, total_nanos=total, free_model=False
        )


def quote_unit(price: UnitPrice, quantity: int) -> Quote:
    """A non-LLM service at its rate-card unit price (the platform's own price: no provider part)."""
    _check_count(quantity, "quantity", MAX_QUANTITY)
    with localcontext(prec=_PRECISION):
        total = round_nanos(Decimal(price.price_nanos) * quantity / price.quantity_per_unit)
    return Quote(provider_cost_nanos=0, platform_fee_nanos=total, total_nanos=total, free_model=False)


def per_million(usd_per_token: Decimal) -> str:
    """USD per token as an exact decimal string of nano-USD per million tokens."""
    with localcontext(prec=_PRECISION):
        return _plain(usd_per_token * NANOS_PER_USD * 1_000_000)


def nanos_text(usd: Decimal) -> str:
    """USD as an exact decimal string of nano-USD."""
    with localcontext(prec=_PRECISION):
        return _plain(usd * NANOS_PER_USD)


def marked_up(nanos: str, bps: int) -> str:
    """A price plus a markup of ``bps`` basis points, exact."""
    with localcontext(prec=_PRECISION):
        return _plain(Decimal(nanos) * (BASIS_POINTS + bps) / BASIS_POINTS)


def share(nanos: str, bps: int) -> str:
    """``bps`` basis points of a price, exact (what a BYOK call pays the platform)."""
    with localcontext(prec=_PRECISION):
        return _plain(Decimal(nanos) * bps / BASIS_POINTS)


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def validate_rate(rate: TierRate) -> TierRate:
    if not 0 <= rate.markup_bps <= 100_000 or not 0 <= rate.byok_markup_bps <= 100_000:
        raise invalid("INVALID_RATE", "markups must be from 0 to 100000 basis points", field="tiers")
    if rate.free_fee_per_1k_tokens_nanos < 0:
        raise invalid("INVALID_RATE", "the free-model fee cannot be negative", field="tiers")
    return rate


def validate_unit_price(price: UnitPrice) -> UnitPrice:
    if price.price_nanos < 0 or price.quantity_per_unit < 1:
        raise invalid(
            "INVALID_RATE", "unit prices must be >= 0 nanos for a quantity_per_unit >= 1", field="unit_prices"
        )
    return price


def limit_reset_for(billing_period: str) -> str:
    """OpenRouter's limit_reset for a tier's billing period."""
    return "weekly" if billing_period == "week" else "monthly"
