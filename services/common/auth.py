"""Authentication: who is calling (JWT verification against a JWKS) and the tokens services send.

Tokens are OIDC JWTs as Keycloak issues them: ``sub`` is the user id, roles
are in ``realm_access.roles`` (a list of strings). People hold the roles
``user`` or ``admin``. Services hold the role ``service`` and name themselves
with the ``azp`` claim (the OAuth client id, as in Keycloak client-credentials
tokens); each service identity gets only the RPCs its work needs (see
:data:`SERVICE_IDENTITIES` and the per-RPC policies in each ``service.py``;
the generated table is docs/authorization.md).

The rules a token must pass are the same here and at the Envoy gateway
(tools/gateway.py renders them): a signature by a key of the JWKS, the
configured ``iss``, one of the configured audiences (else 401, not 403),
``exp`` and ``sub`` present, ``nbf`` honoured, the same clock skew both ways,
and ``realm_access.roles`` — when present — a list of strings.

Verified tokens are cached (bounded, never past their ``exp``) because
signature checks were the largest single cost of an RPC under load.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.config import AuthSettings
from services.common.errors import Code, DomainError

log = logging.getLogger(__name__)

#: Roles a token may carry in ``realm_access.roles``; other roles are ignored.
ROLES = ("user", "admin", "service")
AUTH_DOMAIN = "auth.creditmeter.dev"
_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]

#: The service identities (the ``azp`` of a token with the ``service`` role) and why each exists.
#: What each may call is decided per RPC by the method policies, not here.
SERVICE_IDENTITIES: dict[str, str] = {
    "svc-metering": "the metering service: holds, usage charges, balances and tiers, prices",
    "svc-coupons": "the coupons service: COUPON credit grants (capped) and coupon tier trials",
    "svc-openrouter": "the openrouter service: tiers of its users; the only reader of decrypted keys",
    "svc-platform": "the AI platform's call path outside this system: authorizes and reports metered calls",
}

#: Every kind of authenticated caller a method policy can name: the two human roles, then the services.
CALLERS: tuple[str, ...] = ("user", "admin", *SERVICE_IDENTITIES)


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
    """Who is calling: the token's subject, the roles this system knows and, for services, the client id."""

    subject: str
    roles: frozenset[str]
    client_id: str = ""

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def service_identity(self) -> str | None:
        """The service identity (``svc-…``) of a service token from a known client, else None."""
        if "service" in self.roles and self.client_id in SERVICE_IDENTITIES:
            return self.client_id
        return None

    @property
    def is_service(self) -> bool:
        """A known service identity (an unknown client with the service role is nobody)."""
        return self.service_identity is not None

    @property
    def callers(self) -> frozenset[str]:
        """The policy names this caller answers to: ``user``, ``admin`` and/or its service identity."""
        names = {role for role in self.roles if role in ("user", "admin")}
        if self.service_identity is not None:
            names.add(self.service_identity)
        return frozenset(names)

    @property
    def is_privileged(self) -> bool:
        """Admins and known services may act on any user's account (once a method's policy let them in)."""
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


#: The authenticated caller of the RPC being served (set by the handler chain, services.common.grpcserver).
current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("current_principal", default=None)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The caller a verified token's claims describe; malformed identity claims grant nothing (401)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("TOKEN_INVALID", "the bearer token has no subject")
    realm = claims.get("realm_access", {})
    if not isinstance(realm, dict):
        raise AuthError("TOKEN_INVALID", "realm_access must be an object")
    raw_roles = realm.get("roles", [])
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise AuthError("TOKEN_INVALID", "realm_access.roles must be a list of strings")
    roles = frozenset(r for r in raw_roles if r in ROLES)
    if not roles:
        raise Forbidden("NO_ROLE", "the token carries none of the roles user, admin or service")
    azp = claims.get("azp")
    return Principal(subject=subject, roles=roles, client_id=azp if isinstance(azp, str) else "")


@dataclass
class _Cached:
    principal: Principal
    #: Wall-clock second after which the token is expired, skew included.
    expires_at: float
    #: The key id and key that verified it: a cached token dies with its key when the JWKS drops it.
    kid: str
    key: Any


class JwtVerifier:
    """Verifies bearer tokens against a JWKS from a file or a URL, with a cache of verified tokens.

    Keys from a URL are fetched with an async HTTP client (never blocking the
    event loop), kept for ``jwks_lifespan_seconds`` and refreshed in the
    background after that; a token signed by an unknown ``kid`` triggers a
    refresh at most once per ``jwks_min_refresh_seconds``.
    """

    def __init__(
        self, settings: AuthSettings, *, clock: Callable[[], float] = time.time, file_check_seconds: float = 1.0
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._file_check_seconds = file_check_seconds
        self._keys: dict[str, Any] = {}
        self._keys_loaded = 0.0  # monotonic time of the last successful load
        self._last_attempt = -1e9  # monotonic time of the last fetch attempt (rate limit)
        self._file_mtime = 0.0
        self._file_checked = -1e9
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_size = settings.token_cache_size

    @property
    def cached_tokens(self) -> int:
        """How many verified tokens the cache holds (bounded by AUTH_TOKEN_CACHE_SIZE)."""
        return len(self._cache)

    async def aclose(self) -> None:
        if self._background is not None:
            self._background.cancel()
        if self._http is not None:
            await self._http.aclose()

    # --- keys -------------------------------------------------------------------------------

    def _load_file(self) -> None:
        """Reloads the JWKS file when it changed (checked at most once a second)."""
        assert self._settings.jwks_file is not None
        now = time.monotonic()
        if now - self._file_checked < self._file_check_seconds and self._keys:
            return
        self._file_checked = now
        path = Path(self._settings.jwks_file)
        try:
            mtime = path.stat().st_mtime
            if mtime != self._file_mtime or not self._keys:
                self._keys = _parse_jwks(path.read_text())
                self._file_mtime = mtime
                self._keys_loaded = now
        except (OSError, ValueError, jwt.PyJWTError):
            if not self._keys:
                raise AuthError(
                    "JWKS_UNAVAILABLE", "the token signing keys are not available", code=Code.UNAVAILABLE
                ) from None

    async def _fetch(self) -> None:
        """Fetches the JWKS from its URL; keeps the old keys when the fetch fails."""
        assert self._settings.jwks_url is not None
        self._last_attempt = time.monotonic()
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        try:
            response = await self._http.get(self._settings.jwks_url)
            response.raise_for_status()
            self._keys = _parse_jwks(response.text)
            self._keys_loaded = time.monotonic()
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as error:
            log.warning("JWKS fetch failed", extra={"error": type(error).__name__})

    async def _refresh_in_background(self) -> None:
        async with self._lock:
            if time.monotonic() - self._keys_loaded >= self._settings.jwks_lifespan_seconds:
                await self._fetch()

    async def _key(self, kid: str | None) -> tuple[str, Any]:
        if self._settings.jwks_url is None:
            self._load_file()
        else:
            now = time.monotonic()
            if not self._keys:
                async with self._lock:
                    if not self._keys and now - self._last_attempt >= self._settings.jwks_min_refresh_seconds:
                        await self._fetch()
                if not self._keys:
                    raise AuthError(
                        "JWKS_UNAVAILABLE", "the token signing keys could not be fetched", code=Code.UNAVAILABLE
                    )
            elif now - self._keys_loaded >= self._settings.jwks_lifespan_seconds and (
                self._background is None or self._background.done()
            ):
                self._background = asyncio.create_task(self._refresh_in_background())
            if kid is not None and kid not in self._keys:
                async with self._lock:
                    # Rate limit: forged kids must not turn into a flood of fetches.
                    if kid not in self._keys and now - self._last_attempt >= self._settings.jwks_min_refresh_seconds:
                        await self._fetch()
        keys = self._keys
        if kid is not None and kid in keys:
            return kid, keys[kid]
        if kid is None and len(keys) == 1:
            return next(iter(keys.items()))
        raise AuthError("TOKEN_INVALID", "the token was signed by an unknown key")

    # --- tokens -----------------------------------------------------------------------------

    def _cached(self, token: str) -> Principal | None:
        entry = self._cache.get(token)
        if entry is None:
            return None
        if self._clock() > entry.expires_at:
            del self._cache[token]
            raise AuthError("TOKEN_EXPIRED", "the bearer token has expired")
        if self._keys.get(entry.kid) is not entry.key:
            del self._cache[token]
            return None
        self._cache.move_to_end(token)
        return entry.principal

    async def verify(self, token: str) -> Principal:
        if self._cache_size:
            if self._settings.jwks_url is None:
                self._load_file()
            hit = self._cached(token)
            if hit is not None:
                return hit
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("TOKEN_INVALID", "the bearer token is malformed") from None
        kid = header.get("kid")
        key_id, key = await self._key(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=_ALGORITHMS,
                audience=list(self._settings.audiences),
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                # Envoy's jwt_authn checks exp and nbf but not iat: so do we.
                options={"require": ["exp", "sub", "iss", "aud"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("TOKEN_EXPIRED", "the bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("TOKEN_NOT_YET_VALID", "the bearer token is not valid yet (nbf)") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise AuthError("TOKEN_INVALID", "the bearer token was not issued for this service") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError("TOKEN_INVALID", f"the bearer token lacks the {error.claim} claim") from None
        except jwt.PyJWTError:
            raise AuthError("TOKEN_INVALID", "the bearer token is invalid") from None
        who = principal_from_claims(claims)
        if self._cache_size:
            self._cache[token] = _Cached(who, float(claims["exp"]) + self._settings.leeway_seconds, key_id, key)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return who


def _parse_jwks(text: str) -> dict[str, Any]:
    """``kid`` → public key of a JWKS document (keys without a usable type are skipped by PyJWT)."""
    jwks = jwt.PyJWKSet.from_json(text)
    return {k.key_id or "": k.key for k in jwks.keys}


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

    async def token(self) -> str: ...


class StaticTokenSource:
    """A fixed token (tests, or a token handed over by an operator)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


class FileTokenSource:
    """A token read from a file and re-read when it changes (a mounted Secret refreshed by a sidecar)."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._cached = ""
        self._mtime = 0.0

    async def token(self) -> str:
        mtime = self._path.stat().st_mtime
        if mtime != self._mtime:
            self._cached = self._path.read_text().strip()
            self._mtime = mtime
        return self._cached


class ClientCredentialsTokenSource:
    """OAuth2 client-credentials tokens from the identity provider (Keycloak's token endpoint).

    The client secret is read from a file (a mounted Kubernetes Secret), never
    from the environment or a command line; tokens are reused until a minute
    before they expire.
    """

    def __init__(self, token_url: str, client_id: str, secret_file: str) -> None:
        self._url = token_url
        self._client_id = client_id
        self._secret_file = Path(secret_file)
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if time.monotonic() < self._expires - 60:
                return self._token
            async with httpx.AsyncClient(timeout=10.0) as http:
                response = await http.post(
                    self._url,
                    data={"grant_type": "client_credentials"},
                    auth=(self._client_id, self._secret_file.read_text().strip()),
                )
            if response.status_code != 200:
                log.warning("service token request refused", extra={"status": response.status_code})
                raise AuthError("SERVICE_TOKEN_UNAVAILABLE", "the identity provider refused the service's credentials")
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 300))
            return self._token


class SigningTokenSource:
    """Mints short-lived service tokens with a local signing key (development and tests only)."""

    def __init__(self, key_file: str, identity: str, issuer: str, audience: str, ttl_seconds: int = 900) -> None:
        self._key_file = key_file
        self._identity = identity
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._token = ""
        self._expires = 0.0

    async def token(self) -> str:
        now = time.time()
        if now > self._expires - 60:
            self._token = mint_token(
                Path(self._key_file),
                self._identity,
                self._identity,
                issuer=self._issuer,
                audience=self._audience,
                ttl_seconds=self._ttl,
            )
            self._expires = now + self._ttl
        return self._token


def token_source_for(settings: AuthSettings, service_name: str) -> TokenSource | None:
    """This service's outgoing credentials, as identity ``svc-<service_name>``.

    In order: client credentials at the identity provider (AUTH_TOKEN_URL +
    AUTH_CLIENT_SECRET_FILE), a token file (SERVICE_TOKEN_FILE), else the local
    dev signing key.
    """
    identity = f"svc-{service_name}"
    if settings.token_url and settings.client_secret_file:
        return ClientCredentialsTokenSource(
            settings.token_url, settings.client_id or identity, settings.client_secret_file
        )
    if settings.service_token_file:
        return FileTokenSource(settings.service_token_file)
    if settings.dev_signing_key_file and Path(settings.dev_signing_key_file).exists():
        return SigningTokenSource(settings.dev_signing_key_file, identity, settings.issuer, settings.audiences[0])
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


#: What ``mint_token``'s ``role`` may be: a role, or a service identity (role ``service`` + its ``azp``).
MINTABLE = ("user", "admin", *SERVICE_IDENTITIES, "service")


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
    """Signs a Keycloak-shaped token with the local dev key (development and tests).

    ``role`` is ``user``, ``admin``, or a service identity such as
    ``svc-metering`` (the token then carries the ``service`` role and
    ``azp=svc-metering``, like a Keycloak client-credentials token). The bare
    role ``service`` names its client after the subject.
    """
    if role not in MINTABLE:
        raise ValueError(f"role must be one of {', '.join(MINTABLE)}")
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
        "azp": "creditmeter-web",
    }
    if role in SERVICE_IDENTITIES or role == "service":
        claims["realm_access"] = {"roles": ["service"]}
        claims["azp"] = role if role in SERVICE_IDENTITIES else subject
    claims.update(extra_claims or {})
    return jwt.encode(claims, key_file.read_bytes(), algorithm="RS256", headers={"kid": kid})
