"""OpenRouter use cases: catalog and rate card, quotes, provisioned keys, BYOK, key rotation.

Key provisioning is race-safe without holding a database lock across the
HTTP call: a caller first claims the account row (INSERT … ON CONFLICT DO
NOTHING, status PROVISIONING, with a unique key name), only the claimant asks
OpenRouter for a key, and the key is stored only if the claim is still that
caller's. A claim left by a crashed caller is taken over after a while, and the
orphaned key (found by its name) is deleted at OpenRouter first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.common.errors import Code, DomainError, already_exists, invalid, not_found, precondition
from services.common.idempotency import StoredResponses
from services.credits.client import CreditsClient
from services.openrouter import domain, pricebook
from services.openrouter import repository as repo
from services.openrouter.client import OpenRouterClient, OpenRouterError
from services.openrouter.crypto import KeyBox
from services.openrouter.domain import ModelPrice, Quote, Service, TierRate, UnitPrice
from services.openrouter.pricebook import PriceBook

log = logging.getLogger(__name__)

#: A provisioning claim older than this is presumed abandoned by a crashed caller.
STALE_CLAIM_SECONDS = 60.0


@dataclass(frozen=True)
class RateCard:
    version: int
    tiers: dict[str, TierRate]
    units: dict[Service, UnitPrice]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class AccountView:
    """What a user may see of their OpenRouter setup: hints and amounts, never a key."""

    user_id: str
    key_hash: str
    key_hint: str
    limit_nanos: int
    usage_nanos: int
    limit_remaining_nanos: int
    limit_reset: str
    tier: str
    byok_hint: str
    synced_at: datetime | None
    created_at: datetime | None


@dataclass(frozen=True)
class Catalog:
    version: int
    models: dict[str, ModelPrice]


def _amount(data: dict[str, Any], field: str) -> int:
    """An OpenRouter USD amount (JSON number or null) as nanos; null means none."""
    value = data.get(field)
    if value is None:
        return 0
    try:
        return domain.usd_to_nanos(domain.parse_usd(value, field))
    except ValueError:
        raise OpenRouterError(
            "OPENROUTER_BAD_RESPONSE", f"OpenRouter's {field} is not a number", code=Code.UNAVAILABLE
        ) from None


class OpenRouter:
    def __init__(self, pool: asyncpg.Pool, api: OpenRouterClient, credits: CreditsClient, keys: KeyBox) -> None:
        self._pool = pool
        #: First responses of the changes that create no row of their own (AIP-155).
        self.responses = StoredResponses(pool)
        self._api = api
        self._credits = credits
        self._keys = keys
        self._catalog: Catalog | None = None
        self._rate_card: RateCard | None = None
        self._cache_until = 0.0

    # --- catalog ------------------------------------------------------------------------

    @staticmethod
    def parse_models(raw: list[dict[str, Any]]) -> list[ModelPrice]:
        """OpenRouter's models as exact prices. Models with variable pricing (negative) are not sold."""
        models: list[ModelPrice] = []
        for entry in raw:
            model_id = entry.get("id")
            pricing = entry.get("pricing")
            if not isinstance(model_id, str) or not model_id or not isinstance(pricing, dict):
                raise OpenRouterError(
                    "OPENROUTER_BAD_RESPONSE",
                    "a model in OpenRouter's list has no id or pricing",
                    code=Code.UNAVAILABLE,
                )
            try:
                prices = [
                    domain.parse_usd(pricing.get(f, "0"), f"{model_id}.{f}")
                    for f in ("prompt", "completion", "request", "image")
                ]
            except ValueError as error:
                raise OpenRouterError("OPENROUTER_BAD_RESPONSE", str(error), code=Code.UNAVAILABLE) from None
            if any(p < 0 for p in prices):
                continue
            context = entry.get("context_length") or 0
            models.append(
                ModelPrice(
                    model_id=model_id,
                    name=str(entry.get("name") or model_id),
                    context_length=int(context) if isinstance(context, int | Decimal) else 0,
                    prompt_usd=prices[0],
                    completion_usd=prices[1],
                    request_usd=prices[2],
                    image_usd=prices[3],
                )
            )
        return sorted(models, key=lambda m: m.model_id)

    async def sync_models(self) -> tuple[int, int, bool]:
        """(model count, catalog version, changed). A new version only when any price changed."""
        models = self.parse_models(await self._api.models())
        canonical = json.dumps(
            [
                [
                    m.model_id,
                    m.name,
                    m.context_length,
                    str(m.prompt_usd),
                    str(m.completion_usd),
                    str(m.request_usd),
                    str(m.image_usd),
                ]
                for m in models
            ]
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE catalog_versions IN SHARE ROW EXCLUSIVE MODE")
            latest = await repo.latest_catalog(conn)
            if latest is not None and latest[1] == digest:
                return len(models), latest[0], False
            version = 1 if latest is None else latest[0] + 1
            await repo.insert_catalog(conn, version, digest, models)
        self._cache_until = 0.0
        log.info("model catalog synced", extra={"version": version, "models": len(models)})
        return len(models), version, True

    async def sync_models_quietly(self) -> int:
        """For the schedule: a failure is logged, not raised."""
        try:
            _, _, changed = await self.sync_models()
        except OpenRouterError as error:
            log.warning("model catalog sync failed", extra={"reason": error.reason})
            return 0
        return int(changed)

    async def _current(self) -> tuple[Catalog, RateCard]:
        if self._catalog is None or self._rate_card is None or time.monotonic() > self._cache_until:
            async with self._pool.acquire() as conn:
                latest = await repo.latest_catalog(conn)
                if latest is None:
                    catalog = Catalog(0, {})
                else:
                    catalog = Catalog(latest[0], {m.model_id: m for m in await repo.catalog(conn, latest[0])})
                version = await repo.latest_rate_card_version(conn)
                tiers, units, created_at, created_by = await repo.rate_card(conn, version)
            self._catalog = catalog
            self._rate_card = RateCard(version, tiers, units, created_at, created_by)
            self._cache_until = time.monotonic() + 5.0
        return self._catalog, self._rate_card

    @staticmethod
    def price_version(catalog: Catalog, card: RateCard) -> str:
        return f"rc{card.version}-cat{catalog.version}"

    async def rate_card(self) -> RateCard:
        return (await self._current())[1]

    # --- rate card ------------------------------------------------------------------------

    async def update_rate_card(
        self, tiers: list[TierRate], units: list[UnitPrice], by: str, request_id: str
    ) -> RateCard:
        fingerprint = hashlib.sha256(repr((sorted(tiers, key=str), sorted(units, key=str))).encode()).hexdigest()
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE rate_cards IN SHARE ROW EXCLUSIVE MODE")
            replay = await repo.rate_card_by_request(conn, request_id)
            if replay is not None:
                if replay[1] != fingerprint:
                    raise already_exists("REQUEST_ID_REUSED", "this request_id was used for a different rate card")
                version = replay[0]
            else:
                current = await repo.latest_rate_card_version(conn)
                old_tiers, old_units, _, _ = await repo.rate_card(conn, current)
                for rate in tiers:
                    if rate.tier not in old_tiers:
                        raise invalid("UNKNOWN_TIER", f"no tier {rate.tier!r} in the rate card", field="tiers")
                new_tiers = old_tiers | {t.tier: domain.validate_rate(t) for t in tiers}
                new_units = old_units | {u.service: domain.validate_unit_price(u) for u in units}
                version = current + 1
                await repo.insert_rate_card(
                    conn, version, by, request_id, fingerprint, list(new_tiers.values()), list(new_units.values())
                )
                log.info("rate card updated", extra={"version": version, "by": by})
            found = await repo.rate_card(conn, version)
        self._cache_until = 0.0
        return RateCard(version, *found)

    # --- quotes and lists -------------------------------------------------------------------

    async def price_book(self, refresh_catalog: bool = False) -> tuple[PriceBook, RateCard]:
        """The current published price book (optionally after syncing the catalog from OpenRouter)."""
        if refresh_catalog:
            await self.sync_models()
        catalog, card = await self._current()
        tiers = await self._credits.tiers()
        book = PriceBook(
            version=self.price_version(catalog, card),
            tiers=card.tiers,
            units=card.units,
            models=catalog.models,
            byok_tiers=frozenset(t for t, tier in tiers.items() if tier.byok_allowed),
        )
        return book, card

    async def quote(
        self,
        tier: str,
        service: Service,
        model_id: str,
        input_tokens: int,
        output_tokens: int,
        quantity: int,
        byok: bool,
    ) -> tuple[Quote, str]:
        book, _ = await self.price_book()
        return pricebook.price(book, tier, service, model_id, input_tokens, output_tokens, quantity, byok), book.version

    async def models(self, tier: str) -> tuple[list[ModelPrice], TierRate, str]:
        catalog, card = await self._current()
        if tier not in card.tiers:
            raise invalid("UNKNOWN_TIER", f"no tier {tier!r} in the rate card", field="tier")
        return list(catalog.models.values()), card.tiers[tier], self.price_version(catalog, card)

    async def tier_of(self, user_id: str) -> str:
        return await self._credits.tier_of(user_id)

    # --- provisioned keys ---------------------------------------------------------------------

    async def _tier_limit(self, user_id: str) -> tuple[str, Decimal, str]:
        """The user's tier, the key limit for it (its credits per period, USD) and OpenRouter's limit_reset."""
        tier_id = await self._credits.tier_of(user_id)
        tier = (await self._credits.tiers())[tier_id]
        return tier_id, domain.nanos_to_usd(tier.credits_nanos), domain.limit_reset_for(tier.billing_period)

    async def _active_row(self, user_id: str) -> asyncpg.Record:
        async with self._pool.acquire() as conn:
            row = await repo.get_account(conn, user_id)
        if row is None or row["status"] != "ACTIVE":
            raise not_found("ACCOUNT_NOT_FOUND", "no OpenRouter account yet; create one first")
        return row

    async def get_account(self, user_id: str) -> AccountView:
        """The provisioned key's figures and the BYOK hint; a BYOK-only user has just the hint."""
        async with self._pool.acquire() as conn:
            row = await repo.get_account(conn, user_id)
            byok = await repo.get_byok(conn, user_id) if row is None or row["status"] != "ACTIVE" else None
        if row is not None and row["status"] == "ACTIVE":
            return AccountView(
                user_id=user_id,
                key_hash=row["key_hash"],
                key_hint=row["key_hint"],
                limit_nanos=row["limit_nanos"],
                usage_nanos=row["usage_nanos"],
                limit_remaining_nanos=row["limit_remaining_nanos"],
                limit_reset=row["limit_reset"],
                tier=row["tier"],
                byok_hint=row["byok_hint"] or "",
                synced_at=row["synced_at"],
                created_at=row["created_at"],
            )
        if byok is not None:
            return AccountView(
                user_id,
                "",
                "",
                0,
                0,
                0,
                "",
                await self._credits.tier_of(user_id),
                str(byok["key_hint"]),
                None,
                byok["created_at"],
            )
        raise not_found("ACCOUNT_NOT_FOUND", "no OpenRouter account yet; create one first")

    async def create_account(self, user_id: str) -> tuple[AccountView, bool]:
        """The user's account, provisioning its key on first call (exactly one key, even when calls race)."""
        name = f"creditmeter-{user_id}-{uuid.uuid4().hex[:12]}"
        async with self._pool.acquire() as conn:
            claimed = await repo.claim_provisioning(conn, user_id, name)
            orphan: str | None = None
            if not claimed:
                orphan = await repo.take_over_stale(conn, user_id, name, STALE_CLAIM_SECONDS)
                claimed = orphan is not None
        if not claimed:
            await self._await_active(user_id)
            return await self.get_account(user_id), False
        if orphan:
            await self._delete_orphans(orphan)
        try:
            tier, limit_usd, reset = await self._tier_limit(user_id)
            plaintext, data = await self._create_key(name, limit_usd, reset)
        except BaseException:
            async with self._pool.acquire() as conn:
                await repo.release_claim(conn, user_id, name)
            raise
        async with self._pool.acquire() as conn:
            stored = await repo.activate(
                conn,
                user_id,
                name,
                key_hash=str(data["hash"]),
                ciphertext=self._keys.seal(plaintext),
                hint=domain.key_hint(plaintext),
                limit_nanos=_amount(data, "limit"),
                usage_nanos=_amount(data, "usage"),
                remaining_nanos=_amount(data, "limit_remaining"),
                limit_reset=reset,
                tier=tier,
            )
        del plaintext
        if not stored:
            # Our claim was taken over while we waited on OpenRouter: our key must not live on.
            await self._api.delete_key(str(data["hash"]))
            await self._await_active(user_id)
            return await self.get_account(user_id), False
        log.info("openrouter key provisioned", extra={"user_id": user_id, "tier": tier})
        return await self.get_account(user_id), True

    async def _await_active(self, user_id: str, seconds: float = 10.0) -> asyncpg.Record:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            async with self._pool.acquire() as conn:
                row = await repo.get_account(conn, user_id)
            if row is not None and row["status"] == "ACTIVE":
                return row
            await asyncio.sleep(0.05)
        raise DomainError(
            "ACCOUNT_PROVISIONING",
            "the key is still being created; retry shortly",
            code=Code.ABORTED,
            domain=domain.DOMAIN,
        )

    async def _create_key(
        self, name: str, limit_usd: Decimal | None, reset: str | None, attempts: int = 3
    ) -> tuple[str, dict[str, Any]]:
        """Creates the key called ``name`` exactly once at OpenRouter, across retries.

        A create that failed ambiguously (5xx, timeout, unreadable answer) may have made the key at
        OpenRouter without our ever seeing its secret, which OpenRouter shows only once. So before
        creating again we look the name up (it is unique to this claim) over every page of the key list
        and delete what we find: at most one key of ours lives on, and its secret is the one we store.
        """
        for attempt in range(attempts):
            try:
                return await self._api.create_key(name, limit_usd, reset)
            except OpenRouterError as error:
                ambiguous = error.code is Code.UNAVAILABLE and error.metadata.get("http_status") != "429"
                if not ambiguous or attempt == attempts - 1:
                    raise
                log.warning(
                    "openrouter key creation failed ambiguously; looking the key up before retrying",
                    extra={"reason": error.reason, "attempt": attempt + 1},
                )
            await self._delete_orphans(name)
            await asyncio.sleep(0.2 * (2**attempt))
        raise AssertionError("unreachable")

    async def _delete_orphans(self, name: str) -> None:
        """Deletes every key called ``name`` at OpenRouter (all pages, disabled keys included)."""
        for key in await self._api.keys_named(name):
            try:
                await self._api.delete_key(key["hash"])
            except OpenRouterError as error:
                if error.reason != "OPENROUTER_NOT_FOUND":  # gone already: what we wanted
                    raise
            log.info("deleted an orphaned openrouter key")

    async def sync_balance(self, user_id: str) -> AccountView:
        """Reads usage from OpenRouter and brings the key's limit in line with the user's tier."""
        row = await self._active_row(user_id)
        key = self._keys.open(bytes(row["key_ciphertext"]))
        data = await self._api.current_key(key)
        del key
        tier, limit_usd, reset = await self._tier_limit(user_id)
        limit_nanos = domain.usd_to_nanos(limit_usd)
        if tier != row["tier"] or limit_nanos != _amount(data, "limit") or reset != row["limit_reset"]:
            data = await self._api.update_key(row["key_hash"], limit_usd=limit_usd, limit_reset=reset)
            log.info("openrouter key limit updated", extra={"user_id": user_id, "tier": tier})
        async with self._pool.acquire() as conn:
            await repo.save_usage(
                conn,
                user_id,
                limit_nanos=_amount(data, "limit"),
                usage_nanos=_amount(data, "usage"),
                remaining_nanos=_amount(data, "limit_remaining"),
                limit_reset=reset,
                tier=tier,
            )
        return await self.get_account(user_id)

    async def sync_stale(self, older_than_seconds: float = 3600.0, batch: int = 50) -> int:
        """For the schedule: refresh the accounts synced longest ago (usage and tier limits)."""
        async with self._pool.acquire() as conn:
            users = await repo.stale_accounts(conn, older_than_seconds, batch)
        done = 0
        for user_id in users:
            try:
                await self.sync_balance(user_id)
                done += 1
            except DomainError as error:
                log.warning("account sync failed", extra={"user_id": user_id, "reason": error.reason})
        return done

    # --- BYOK -----------------------------------------------------------------------------------

    async def set_byok(self, user_id: str, api_key: str) -> str:
        key = domain.check_key_shape(api_key)
        tier = await self._credits.tier_of(user_id)
        if not (await self._credits.tiers())[tier].byok_allowed:
            raise precondition("BYOK_NOT_ALLOWED", f"the {tier} tier cannot bring its own key")
        try:
            await self._api.current_key(key)
        except OpenRouterError as error:
            if error.reason in ("OPENROUTER_UNAUTHORIZED", "OPENROUTER_KEY_LIMIT_EXCEEDED", "OPENROUTER_NOT_FOUND"):
                raise invalid("BYOK_KEY_INVALID", "OpenRouter does not accept that key", field="api_key") from None
            raise
        hint = domain.key_hint(key)
        async with self._pool.acquire() as conn:
            await repo.upsert_byok(conn, user_id, self._keys.seal(key), hint)
        log.info("byok key stored", extra={"user_id": user_id})
        return hint

    async def delete_byok(self, user_id: str) -> bool:
        async with self._pool.acquire() as conn:
            return await repo.delete_byok(conn, user_id)

    async def byok_hint(self, user_id: str) -> str:
        async with self._pool.acquire() as conn:
            row = await repo.get_byok(conn, user_id)
        return "" if row is None else str(row["key_hint"])

    async def provider_key(self, user_id: str) -> tuple[str, str]:
        """(key, "BYOK" | "PROVISIONED") for the user's next call; provisions a key on first use."""
        async with self._pool.acquire() as conn:
            byok = await repo.get_byok(conn, user_id)
        if byok is not None:
            tier = await self._credits.tier_of(user_id)
            if (await self._credits.tiers())[tier].byok_allowed:
                return self._keys.open(bytes(byok["key_ciphertext"])), "BYOK"
        await self.create_account(user_id)
        row = await self._active_row(user_id)
        return self._keys.open(bytes(row["key_ciphertext"])), "PROVISIONED"

    async def byok_active(self, user_id: str, has_byok: bool) -> bool:
        if not has_byok:
            return False
        tier = await self._credits.tier_of(user_id)
        return bool((await self._credits.tiers())[tier].byok_allowed)

    # --- encryption keys -------------------------------------------------------------------------

    async def rotate(self) -> int:
        """Re-encrypts every stored key under the primary Fernet key."""
        count = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for table, user_id, sealed in await repo.sealed_keys(conn):
                await repo.reseal(conn, table, user_id, self._keys.rotate(sealed))
                count += 1
        log.info("stored keys re-encrypted", extra={"count": count})
        return count
