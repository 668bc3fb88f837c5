"""`make verify`: checks every service's invariants against the configured (or embedded) database.

Prints each check and what it examined; exits 1 on any breach.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from services.common import db
from services.credits import verify as credits_verify
from tools.localdb import database_url


async def verify_all(url: str, schemas: dict[str, str]) -> bool:
    ok = True
    for service, schema in schemas.items():
        dsn = os.environ.get(f"{service.upper()}_DATABASE_URL", url)
        conn = await asyncpg.connect(dsn)
        try:
            present = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
            if not present:
                print(f"{service}: schema {schema!r} does not exist yet; nothing to verify")
                continue
            await conn.execute(f"SET search_path = {db._check_schema(schema)}")
            print(f"{service} (schema {schema}):")
            results = await credits_verify.verify(conn)
            for result in results:
                print("  " + result.line())
                ok = ok and result.ok
            for account, balance in (await credits_verify.platform_balances(conn)).items():
                print(f"  derived balance {account}: {balance} nanos")
        finally:
            await conn.close()
    return ok


def main() -> int:
    url, embedded = database_url()
    try:
        schemas = {"credits": os.environ.get("CREDITS_DB_SCHEMA", "credits")}
        ok = asyncio.run(verify_all(url, schemas))
    finally:
        if embedded is not None:
            embedded.cleanup()
    print("verify: all invariants hold" if ok else "verify: INVARIANTS BREACHED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
