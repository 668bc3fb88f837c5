"""`make verify`: checks every service's invariants against the configured (or embedded) database.

Prints each check and what it examined; exits 1 on any breach.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from services.common import db
from services.common.verification import CheckResult
from services.coupons import verify as coupons_verify
from services.credits import verify as credits_verify
from services.metering import verify as metering_verify
from services.openrouter import verify as openrouter_verify
from tools.localdb import database_url


async def _connect(url: str, service: str) -> asyncpg.Connection | None:
    """A connection whose search_path is the service's schema; None if the schema does not exist yet."""
    schema = os.environ.get(f"{service.upper()}_DB_SCHEMA", service)
    conn = await asyncpg.connect(os.environ.get(f"{service.upper()}_DATABASE_URL", url))
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
        await conn.close()
        print(f"{service}: schema {schema!r} does not exist yet; nothing to verify")
        return None
    await conn.execute(f"SET search_path = {db._check_schema(schema)}")
    return conn


def _print(service: str, results: list[CheckResult]) -> bool:
    print(f"{service}:")
    for result in results:
        print("  " + result.line())
    return all(r.ok for r in results)


async def verify_all(url: str) -> bool:
    credits = await _connect(url, "credits")
    coupons = await _connect(url, "coupons")
    openrouter = await _connect(url, "openrouter")
    metering = await _connect(url, "metering")
    ok = True
    try:
        if credits is not None:
            ok &= _print("credits", await credits_verify.verify(credits))
            for account, balance in (await credits_verify.platform_balances(credits)).items():
                print(f"  derived balance {account}: {balance} nanos")
        if coupons is not None:
            results = await coupons_verify.verify(coupons)
            if credits is not None:
                results += await coupons_verify.cross_check_credits(coupons, credits)
            ok &= _print("coupons", results)
        if openrouter is not None:
            ok &= _print("openrouter", await openrouter_verify.verify(openrouter))
        if metering is not None:
            results = await metering_verify.verify(metering)
            if credits is not None:
                results += await metering_verify.cross_check_credits(metering, credits)
            ok &= _print("metering", results)
    finally:
        for conn in (credits, coupons, openrouter, metering):
            if conn is not None:
                await conn.close()
    return ok


def main() -> int:
    url, embedded = database_url()
    try:
        ok = asyncio.run(verify_all(url))
    finally:
        if embedded is not None:
            embedded.cleanup()
    print("verify: all invariants hold" if ok else "verify: INVARIANTS BREACHED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
