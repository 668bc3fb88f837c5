"""The OpenRouter context's invariants: keys only as ciphertext, complete rate cards and catalogs."""

from __future__ import annotations

import asyncpg

from services.common.verification import Check, CheckResult, run_checks

CHECKS = [
    Check(
        "keys_stored_only_encrypted",
        "every stored key is a Fernet token and only a 4-character hint is kept in clear",
        """
        SELECT 'accounts' AS tbl, user_id FROM accounts
         WHERE status = 'ACTIVE' AND (convert_from(key_ciphertext, 'UTF8') NOT LIKE 'gAAAAA%'
                                      OR length(key_hint) <> 4 OR provision_name LIKE '%sk-or-%')
        UNION ALL
        SELECT 'byok_keys', user_id FROM byok_keys
         WHERE convert_from(key_ciphertext, 'UTF8') NOT LIKE 'gAAAAA%' OR length(key_hint) <> 4
        """,
        "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM byok_keys)",
    ),
    Check(
        "no_stuck_provisioning",
        "no key creation has been left half-done for over an hour",
        "SELECT user_id, updated_at FROM accounts"
        " WHERE status = 'PROVISIONING' AND updated_at < now() - interval '1 hour'",
        "SELECT count(*) FROM accounts WHERE status = 'PROVISIONING'",
    ),
    Check(
        "rate_cards_complete",
        "rate card versions count up from 1 and each prices every tier and service of the first",
        """
        SELECT r.version, 'missing tiers' AS problem FROM rate_cards r
         WHERE (SELECT count(*) FROM rate_card_tiers t WHERE t.version = r.version)
               < (SELECT count(*) FROM rate_card_tiers WHERE version = 1)
        UNION ALL
        SELECT r.version, 'missing unit prices' FROM rate_cards r
         WHERE (SELECT count(*) FROM rate_card_units u WHERE u.version = r.version)
               < (SELECT count(*) FROM rate_card_units WHERE version = 1)
        UNION ALL
        SELECT max(version), 'versions have gaps' FROM rate_cards HAVING max(version) <> count(*)
        """,
        "SELECT count(*) FROM rate_cards",
    ),
    Check(
        "catalog_versions_complete",
        "every catalog version holds exactly the models it counted",
        """
        SELECT v.version, v.model_count, count(m.model_id) AS stored
          FROM catalog_versions v LEFT JOIN model_prices m ON m.catalog_version = v.version
         GROUP BY v.version, v.model_count HAVING v.model_count <> count(m.model_id)
        """,
        "SELECT count(*) FROM catalog_versions",
    ),
]


async def verify(conn: asyncpg.Connection) -> list[CheckResult]:
    return await run_checks(conn, CHECKS)
