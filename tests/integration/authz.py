"""Shared pieces of the authorization matrices: the kinds of caller and what each should get."""

from __future__ import annotations

import grpc

from tests.conftest import Keys, new_user

OK = grpc.StatusCode.OK
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED

CALLERS = ("no_token", "bad_signature", "expired", "user_self", "user_other", "admin", "service")


def expect(allowed: set[str], public: bool = False) -> dict[str, grpc.StatusCode]:
    """OK for the allowed callers; UNAUTHENTICATED without valid credentials; PERMISSION_DENIED otherwise."""
    outcome: dict[str, grpc.StatusCode] = {}
    for caller in CALLERS:
        if public or caller in allowed:
            outcome[caller] = OK
        elif caller in ("no_token", "bad_signature", "expired"):
            outcome[caller] = UNAUTH
        else:
            outcome[caller] = DENIED
    return outcome


def token_for(keys: Keys, caller: str, target: str) -> str | None:
    """A token of the given kind; ``target`` is the user the request is about."""
    return {
        "no_token": lambda: None,
        "bad_signature": lambda: keys.forged_token("admin-1", "admin"),
        "expired": lambda: keys.token("admin-1", "admin", ttl=-120),
        "user_self": lambda: keys.token(target, "user"),
        "user_other": lambda: keys.token(new_user("intruder"), "user"),
        "admin": lambda: keys.token("admin-1", "admin"),
        "service": lambda: keys.token("svc-metering", "service"),
    }[caller]()
