"""Prints a dev JWT for a user and role, accepted by the local stack: ``make token USER=alice ROLE=admin``."""

from __future__ import annotations

import argparse
import sys

from services.common.auth import ROLES, ensure_dev_keys, mint_token
from services.common.config import LOCAL_DIR, AuthSettings, Env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", required=True, help="the token's subject (user id)")
    parser.add_argument("--role", default="user", choices=ROLES)
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    opts = parser.parse_args()
    settings = AuthSettings.from_env(Env())
    if settings.jwks_url:
        print(
            "AUTH_JWKS_URL is set: get tokens from your identity provider (e.g. Keycloak)",
            file=sys.stderr,
        )
        return 2
    key, _ = ensure_dev_keys(LOCAL_DIR / "dev-auth")
    print(
        mint_token(
            key,
            opts.user,
            opts.role,
            issuer=settings.issuer,
            audience=settings.audiences[0],
            ttl_seconds=opts.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
