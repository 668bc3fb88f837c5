"""Explicit SQL for catalog snapshots, rate cards and keys over an asyncpg connection."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.openrouter.domain import ModelPrice, Service, TierRate, UnitPrice


async def latest_catalog(conn: asyncpg.Connection) -> tuple[int, str] | None:
    row = await conn.fetchrow("SELECT version, digest FROM catalog_versions ORDER BY version DESC LIMIT 1")
    return None if row is None else (row["version"], row["digest"])


async def insert_catalog(conn: asyncpg.Connection, version: int, digest: str, models: list[ModelPrice]) -> None:
    """One set-based insert of the whole snapshot (unnest), never a loop of single rows."""
    await conn.execute(
        "INSERT INTO catalog_versions (version, digest, model_count) VALUES ($1, $2, $3)", version, digest, len(models)
    )
    await conn.execute(
        """
        INSERT INTO model_prices (catalog_version, model_id, name, context_length, prompt_usd, completion_usd,
                                  request_usd, image_usd)
        SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::numeric[], $6::numeric[], $7::numeric[],
                                 $8::numeric[])
        """,
        version,
        [m.model_id for m in models],
        [m.name for m in models],
        [m.context_length for m in models],
        [m.prompt_usd for m in models],
        [m.completion_usd for m in models],
        [m.request_usd for m in models],
        [m.image_usd for m in models],
    )


async def catalog(conn: asyncpg.Connection, version: int) -> list[ModelPrice]:
    rows = await conn.fetch("SELECT * FROM model_prices WHERE catalog_version = $1 ORDER BY model_id", version)
    return [
        ModelPrice(
            model_id=r["model_id"],
            name=r["name"],
            context_length=r["context_length"],
            prompt_usd=r["prompt_usd"],
            completion_usd=r["completion_usd"],
            request_usd=r["request_usd"],
            image_usd=r["image_usd"],
        )
        for r in rows
    ]


async def latest_rate_card_version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT max(version) FROM rate_cards"))


async def rate_card(
    conn: asyncpg.Connection, version: int
) -> tuple[dict[str, TierRate], dict[Service, UnitPrice], datetime, str]:
    head = await conn.fetchrow("SELECT created_at, created_by FROM rate_cards WHERE version = $1", version)
    assert head is not None
    tiers = {
        r["tier"]: TierRate(r["tier"], r["markup_bps"], r["byok_markup_bps"], r["free_fee_per_1k_tokens_nanos"])
        for r in await conn.fetch("SELECT * FROM rate_card_tiers WHERE version = $1 ORDER BY tier", version)
    }
    units = {
        Service(r["service"]): UnitPrice(Service(r["service"]), r["price_nanos"], r["quantity_per_unit"], r["unit"])
        for r in await conn.fetch("SELECT * FROM rate_card_units WHERE version = $1 ORDER BY service", version)
    }
    return tiers, units, head["created_at"], head["created_by"]


async def rate_card_by_request(conn: asyncpg.Connection, request_id: str) -> tuple[int, str] | None:
    row = await conn.fetchrow("SELECT version, fingerprint FROM rate_cards WHERE request_id = $1", request_id)
    return None if row is None else (row["version"], row["fingerprint"] or "")


async def insert_rate_card(
    conn: asyncpg.Connection,
    version: int,
    created_by: str,
    request_id: str,
    fingerprint: str,
    tiers: list[TierRate],
    units: list[UnitPrice],
) -> None:
    await conn.execute(
        "INSERT INTO rate_cards (version, created_by, request_id, fingerprint) VALUES ($1, $2, $3, $4)",
        version,
        created_by,
        request_id,
        fingerprint,
    )
    await conn.executemany(
        "INSERT INTO rate_card_tiers VALUES ($1, $2, $3, $4, $5)",
        [(version, t.tier, t.markup_bps, t.byok_markup_bps, t.free_fee_per_1k_tokens_nanos) for t in tiers],
    )
    await conn.executemany(
        "INSERT INTO rate_card_units VALUES ($1, $2, $3, $4, $5)",
        [(version, u.service.value, u.price_nanos, u.quantity_per_unit, u.unit) for u in units],
    )


# --- accounts ------------------------------------------------------------------------------


async def get_account(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT a.*, b.key_hint AS byok_hint, b.key_ciphertext AS byok_ciphertext
          FROM accounts a LEFT JOIN byok_keys b USING (user_id)
         WHERE a.user_id = $1
        """,
        user_id,
    )


async def get_byok(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM byok_keys WHERE user_id = $1", user_id)


async def claim_provisioning(conn: asyncpg.Connection, user_id: str, name: str) -> bool:
    """Claims the right to create the user's key; False when someone else holds it (or it exists)."""
    row = await conn.fetchrow(
        """
        INSERT INTO accounts (user_id, status, provision_name) VALUES ($1, 'PROVISIONING', $2)
        ON CONFLICT (user_id) DO NOTHING RETURNING user_id
        """,
        user_id,
        name,
    )
    return row is not None


async def take_over_stale(conn: asyncpg.Connection, user_id: str, name: str, stale_seconds: float) -> str | None:
    """Takes over a provisioning claim left by a crashed caller; returns the old key name to clean up."""
    old = await conn.fetchval(
        """
        UPDATE accounts a SET provision_name = $2, updated_at = now()
          FROM (SELECT provision_name AS old FROM accounts WHERE user_id = $1 FOR UPDATE) o
         WHERE a.user_id = $1 AND a.status = 'PROVISIONING' AND a.updated_at < now() - make_interval(secs => $3)
        RETURNING o.old
        """,
        user_id,
        name,
        stale_seconds,
    )
    return None if old is None else str(old)


async def release_claim(conn: asyncpg.Connection, user_id: str, name: str) -> None:
    await conn.execute(
        "DELETE FROM accounts WHERE user_id = $1 AND status = 'PROVISIONING' AND provision_name = $2", user_id, name
    )


async def activate(
    conn: asyncpg.Connection,
    user_id: str,
    name: str,
    *,
    key_hash: str,
    ciphertext: bytes,
    hint: str,
    limit_nanos: int,
    usage_nanos: int,
    remaining_nanos: int,
    limit_reset: str,
    tier: str,
) -> bool:
    """Stores the new key if this caller still holds the claim; False if it was taken over."""
    row = await conn.fetchrow(
        """
        UPDATE accounts SET status = 'ACTIVE', key_hash = $3, key_ciphertext = $4, key_hint = $5, limit_nanos = $6,
               usage_nanos = $7, limit_remaining_nanos = $8, limit_reset = $9, tier = $10, synced_at = now(),
               updated_at = now()
         WHERE user_id = $1 AND status = 'PROVISIONING' AND provision_name = $2
        RETURNING user_id
        """,
        user_id,
        name,
        key_hash,
        ciphertext,
        hint,
        limit_nanos,
        usage_nanos,
        remaining_nanos,
        limit_reset,
        tier,
    )
    return row is not None


async def save_usage(
    conn: asyncpg.Connection,
    user_id: str,
    *,
    limit_nanos: int,
    usage_nanos: int,
    remaining_nanos: int,
    limit_reset: str,
    tier: str,
) -> None:
    await conn.execute(
        """
        UPDATE accounts SET limit_nanos = $2, usage_nanos = $3, limit_remaining_nanos = $4, limit_reset = $5,
               tier = $6, synced_at = now(), updated_at = now()
         WHERE user_id = $1
        """,
        user_id,
        limit_nanos,
        usage_nanos,
        remaining_nanos,
        limit_reset,
        tier,
    )


async def stale_accounts(conn: asyncpg.Connection, older_than_seconds: float, limit: int) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT user_id FROM accounts
         WHERE status = 'ACTIVE' AND (synced_at IS NULL OR synced_at < now() - make_interval(secs => $1))
         ORDER BY synced_at NULLS FIRST LIMIT $2
        """,
        older_than_seconds,
        limit,
    )
    return [r["user_id"] for r in rows]


async def upsert_byok(conn: asyncpg.Connection, user_id: str, ciphertext: bytes, hint: str) -> None:
    await conn.execute(
        """
        INSERT INTO byok_keys (user_id, key_ciphertext, key_hint) VALUES ($1, $2, $3)
        ON CONFLICT (user_id) DO UPDATE SET key_ciphertext = $2, key_hint = $3, validated_at = now()
        """,
        user_id,
        ciphertext,
        hint,
    )


async def delete_byok(conn: asyncpg.Connection, user_id: str) -> bool:
    return await conn.fetchval("DELETE FROM byok_keys WHERE user_id = $1 RETURNING true", user_id) is not None


async def sealed_keys(conn: asyncpg.Connection) -> list[tuple[str, str, bytes]]:
    """Every stored ciphertext: (table, user_id, ciphertext)."""
    rows = await conn.fetch(
        """
        SELECT 'accounts' AS tbl, user_id, key_ciphertext FROM accounts WHERE key_ciphertext IS NOT NULL
        UNION ALL
        SELECT 'byok_keys', user_id, key_ciphertext FROM byok_keys
        """
    )
    return [(r["tbl"], r["user_id"], bytes(r["key_ciphertext"])) for r in rows]


async def reseal(conn: asyncpg.Connection, table: str, user_id: str, ciphertext: bytes) -> None:
    if table == "accounts":
        await conn.execute("UPDATE accounts SET key_ciphertext = $2 WHERE user_id = $1", user_id, ciphertext)
    else:
        await conn.execute("UPDATE byok_keys SET key_ciphertext = $2 WHERE user_id = $1", user_id, ciphertext)
