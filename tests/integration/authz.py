"""Shared pieces of the authorization matrices: the kinds of caller and what each should get.

The expected outcomes are written here and in each matrix by hand, from the
documented rules, not read from the policies the services enforce: a test
derived from the code under test could not fail.
"""

from __future__ import annotations

import grpc

from services.common.auth import mint_token
from tests.conftest import AUDIENCE, ISSUER, Keys, new_user

OK = grpc.StatusCode.OK
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED

#: Callers without valid credentials: every non-public RPC answers UNAUTHENTICATED.
INVALID = ("no_token", "bad_signature", "expired", "wrong_audience", "roles_not_a_list", "no_subject")
#: The in-cluster and platform service identities, plus a service client nobody knows.
SERVICES = ("svc-metering", "svc-coupons", "svc-openrouter", "svc-platform", "svc-unknown")
CALLERS = (*INVALID, "user_self", "user_other", "admin", *SERVICES)


def expect(allowed: set[str], public: bool = False) -> dict[str, grpc.StatusCode]:
    """OK for the allowed callers; UNAUTHENTICATED without valid credentials; PERMISSION_DENIED otherwise."""
    unknown = allowed - set(CALLERS)
    assert not unknown, f"unknown callers in a matrix: {unknown}"
    outcome: dict[str, grpc.StatusCode] = {}
    for caller in CALLERS:
        if public or caller in allowed:
            outcome[caller] = OK
        elif caller in INVALID:
            outcome[caller] = UNAUTH
        else:
            outcome[caller] = DENIED
    return outcome


def _token(keys: Keys, subject: str, role: str, **claims: object) -> str:
    return mint_token(keys.signing_key, subject, role, issuer=ISSUER, audience=AUDIENCE, extra_claims=claims)


def token_for(keys: Keys, caller: str, target: str) -> str | None:
    """A token of the given kind; ``target`` is the user the request is about.

    The invalid kinds all carry the admin role (or the strongest claims they
    can), so that a refusal can only come from the token check itself.
    """
    return {
        "no_token": lambda: None,
        "bad_signature": lambda: keys.forged_token("admin-1", "admin"),
        "expired": lambda: keys.token("admin-1", "admin", ttl=-120),
        "wrong_audience": lambda: mint_token(keys.signing_key, "admin-1", "admin", issuer=ISSUER, audience="other"),
        "roles_not_a_list": lambda: _token(keys, "admin-1", "admin", realm_access={"roles": {"admin": True}}),
        "no_subject": lambda: _token(keys, "admin-1", "admin", sub=""),
        "user_self": lambda: keys.token(target, "user"),
        "user_other": lambda: keys.token(new_user("intruder"), "user"),
        "admin": lambda: keys.token("admin-1", "admin"),
        "svc-metering": lambda: keys.token("svc-metering", "svc-metering"),
        "svc-coupons": lambda: keys.token("svc-coupons", "svc-coupons"),
        "svc-openrouter": lambda: keys.token("svc-openrouter", "svc-openrouter"),
        "svc-platform": lambda: keys.token("svc-platform", "svc-platform"),
        "svc-unknown": lambda: keys.token("svc-elsewhere", "service"),
    }[caller]()
