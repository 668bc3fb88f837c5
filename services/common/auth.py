"""Authentication and roles: JWT verification against a JWKS, and service tokens for outgoing calls.

Tokens are OIDC JWTs as Keycloak issues them: ``sub`` is the user id, roles
are in ``realm_access.roles``. The roles this system knows are ``user``,
``admin`` and ``service``.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.config import AuthSettings
from services.common.errors import Code, DomainError

ROLES = ("user", "admin", "service")
AUTH_DOMAIN = "auth.creditmeter.dev"
_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class AuthError(DomainError):
    """Missing, malformed, expired or wrongly signed credentials."""

    code = Code.UNAUTHENTICATED
    domain = AUTH_DOMAIN


class Forbidden(DomainError):
    """Authenticated, but not allowed to do this."""

    code = Code.PERMISSION_DENIED
    domain = AUTH_DOMAIN


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject and the roles this system knows."""

    subject: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def is_service(self) -> bool:
        return "service" in self.roles

    @property
    def is_privileged(self) -> bool:
        """Admins and services may act on any user's account."""
        return self.is_admin or self.is_service

    @property
    def role(self) -> str:
        """The strongest role, recorded in audit trails."""
        for role in ("admin", "service", "user"):
            if role in self.roles:
                return role
        return "none"

    def may_act_for(self, user_id: str) -> bool:
        return self.is_privileged or user_id == self.subject

    def require_self_or_privileged(self, user_id: str) -> None:
        if not self.may_act_for(user_id):
            raise Forbidden("FORBIDDEN", "users may only access their own account")


#: The authenticated caller of the RPC being served (set by the auth interceptor).
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("current_principal", default=None)


class JwtVerifier:
    """Verifies bearer tokens against a JWKS from a file or a URL."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._file_keys: dict[str, Any] = {}
        self._file_mtime = 0.0
        self._jwks_client = (
            jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300) if settings.jwks_url else None
        )

    def _key_from_file(self, kid: str | None) -> Any:
        assert self._settings.jwks_file is not None
        path = Path(self._settings.jwks_file)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            raise AuthError("JWKS_UNAVAILABLE", "the token signing keys are not available") from None
        with self._lock:
            if mtime != self._file_mtime:
                jwks = jwt.PyJWKSet.from_json(path.read_text())
                self._file_keys = {k.key_id or "": k.key for k in jwks.keys}
                self._file_mtime = mtime
            keys = dict(self._file_keys)
        if kid is not None and kid in keys:
            return keys[kid]
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        raise AuthError("TOKEN_INVALID", "the token was signed by an unknown key")

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("TOKEN_INVALID", "the bearer token is malformed") from None
        try:
            if self._jwks_client is not None and header.get("kid") is None:
                # Some providers leave out `kid` when they have one key; use it only then.
                signing = self._jwks_client.get_signing_keys()
                if len(signing) != 1:
                    raise AuthError("TOKEN_INVALID", "the token does not name its signing key")
                key: Any = signing[0].key
            elif self._jwks_client is not None:
                key = self._jwks_client.get_signing_key_from_jwt(token).key
            else:
                key = self._key_from_file(header.get("kid"))
            claims = jwt.decode(
                token,
                key=key,
                algorithms=_ALGORITHMS,
                audience=list(self._settings.audiences),
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("TOKEN_EXPIRED", "the bearer token has expired") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise AuthError("TOKEN_INVALID", "the bearer token was not issued for this service") from None
        except jwt.PyJWKClientError:
            raise AuthError("JWKS_UNAVAILABLE", "the token signing keys could not be fetched") from None
        except jwt.PyJWTError:
            raise AuthError("TOKEN_INVALID", "the bearer token is invalid") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("TOKEN_INVALID", "the bearer token has no subject")
        realm = claims.get("realm_access") or {}
        raw_roles = realm.get("roles", []) if isinstance(realm, dict) else []
        roles = frozenset(r for r in raw_roles if r in ROLES)
        if not roles:
            raise Forbidden("NO_ROLE", "the token carries none of the roles user, admin or service")
        return Principal(subject=subject, roles=roles)


def bearer_from_metadata(metadata: Any) -> str | None:
    """Extracts the bearer token from gRPC invocation metadata."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("TOKEN_INVALID", "the authorization header must be 'Bearer <token>'")
            return token.strip()
    return None


# --- Outgoing calls: where a service's own token comes from ----------------


class TokenSource(Protocol):
    """Supplies the bearer token a service sends on its outgoing calls."""

    def token(self) -> str: ...


class StaticTokenSource:
    """A fixed token (e.g. from the SERVICE_TOKEN environment variable)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token


class FileTokenSource:
    """A token read from a file and re-read when it changes (Kubernetes projected tokens)."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._cached = ""
        self._mtime = 0.0

    def token(self) -> str:
        mtime = self._path.stat().st_mtime
        if mtime != self._mtime:
            self._cached = self._path.read_text().strip()
            self._mtime = mtime
        return self._cached


class SigningTokenSource:
    """Mints short-lived service tokens with a local signing key (development only)."""

    def __init__(self, key_file: str, subject: str, issuer: str, audience: str, ttl_seconds: int = 900) -> None:
        self._key_file = key_file
        self._subject = subject
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._token = ""
        self._expires = 0.0

    def token(self) -> str:
        now = time.time()
        if now > self._expires - 60:
            self._token = mint_token(
                Path(self._key_file),
                self._subject,
                "service",
                issuer=self._issuer,
                audience=self._audience,
                ttl_seconds=self._ttl,
            )
            self._expires = now + self._ttl
        return self._token


def token_source_for(settings: AuthSettings, service_name: str) -> TokenSource | None:
    """Picks the token source from settings: SERVICE_TOKEN, SERVICE_TOKEN_FILE, else the dev key."""
    if settings.service_token:
        return StaticTokenSource(settings.service_token)
    if settings.service_token_file:
        return FileTokenSource(settings.service_token_file)
    if settings.dev_signing_key_file and Path(settings.dev_signing_key_file).exists():
        return SigningTokenSource(
            settings.dev_signing_key_file,
            f"svc-{service_name}",
            settings.issuer,
            settings.audiences[0],
        )
    return None


# --- Local development keys ------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ensure_dev_keys(folder: Path) -> tuple[Path, Path]:
    """Creates the local RSA signing key and its JWKS once; returns their paths.

    The private key is written with mode 0600 under ``.local/`` (git-ignored).
    """
    folder.mkdir(parents=True, exist_ok=True)
    key_path = folder / "signing-key.pem"
    jwks_path = folder / "jwks.json"
    if key_path.exists() and jwks_path.exists():
        return key_path, jwks_path
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    numbers = private.public_key().public_numbers()
    n = _b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
    e = _b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))
    kid = hashlib.sha256(f"{e}.{n}".encode()).hexdigest()[:16]
    jwks = {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}]}
    jwks_path.write_text(json.dumps(jwks, indent=2))
    return key_path, jwks_path


def mint_token(
    key_file: Path,
    subject: str,
    role: str,
    *,
    issuer: str,
    audience: str,
    ttl_seconds: int = 3600,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """Signs a Keycloak-shaped token with the local dev key (development and tests)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    jwks = json.loads((key_file.parent / "jwks.json").read_text())
    kid = jwks["keys"][0]["kid"]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_seconds,
        "preferred_username": subject,
        "realm_access": {"roles": [role]},
    }
    claims.update(extra_claims or {})
    return jwt.encode(claims, key_file.read_bytes(), algorithm="RS256", headers={"kid": kid})
