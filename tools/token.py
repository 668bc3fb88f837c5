"""Prints a dev JWT accepted by the local stack: ``make token USER=alice ROLE=admin``.

ROLE is ``user``, ``admin`` or a service identity (``svc-metering``,
``svc-coupons``, ``svc-openrouter``, ``svc-platform``); a service token carries
the ``service`` role and the identity as ``azp``, like a Keycloak
client-credentials token. ``--all`` prints one shell ``export`` line per
identity instead (``eval "$(make -s tokens)"``).
"""

from __future__ import annotations

import argparse
import sys

from services.common.auth import SERVICE_IDENTITIES, ensure_dev_keys, mint_token
from services.common.config import LOCAL_DIR, AuthSettings, Env

CHOICES = ("user", "admin", *SERVICE_IDENTITIES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", help="the token's subject (default: alice; a service identity's own name)")
    parser.add_argument("--role", default="user", choices=CHOICES)
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument("--all", action="store_true", help="export lines for every identity (USER for user/admin)")
    opts = parser.parse_args()
    settings = AuthSettings.from_env(Env())
    if settings.jwks_url:
        print(
            "AUTH_JWKS_URL is set: get tokens from your identity provider (e.g. Keycloak)",
            file=sys.stderr,
        )
        return 2
    key, _ = ensure_dev_keys(LOCAL_DIR / "dev-auth")

    def mint(subject: str, role: str) -> str:
        return mint_token(
            key, subject, role, issuer=settings.issuer, audience=settings.audiences[0], ttl_seconds=opts.ttl
        )

    if opts.all:
        person = opts.user or "alice"
        print(f"export USER_TOKEN={mint(person, 'user')}")
        print(f"export ADMIN_TOKEN={mint('ops', 'admin')}")
        for identity in SERVICE_IDENTITIES:
            print(f"export {identity.upper().replace('-', '_')}_TOKEN={mint(identity, identity)}")
        return 0
    subject = opts.user or (opts.role if opts.role in SERVICE_IDENTITIES else "alice")
    print(mint(subject, opts.role))
    return 0


if __name__ == "__main__":
    sys.exit(main())
