"""The services' token check: the claim rules shared with the gateway, the verified-token cache, JWKS fetching."""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from services.common.auth import AuthError, Forbidden, JwtVerifier, ensure_dev_keys, mint_token
from services.common.config import AuthSettings, Env
from services.common.errors import Code

ISSUER = "https://id.example/realms/cm"
AUDIENCE = "creditmeter"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return ensure_dev_keys(tmp_path / "keys")


def _settings(jwks: Path | None = None, **extra: str) -> AuthSettings:
    environ = {"AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "AUTH_LEEWAY_SECONDS": "30", **extra}
    if jwks is not None:
        environ["AUTH_JWKS_FILE"] = str(jwks)
    return AuthSettings.from_env(Env(environ))


def _token(key: Path, *, role: str = "user", ttl: int = 3600, **claims: Any) -> str:
    return mint_token(key, "alice", role, issuer=ISSUER, audience=AUDIENCE, ttl_seconds=ttl, extra_claims=claims)


def _raw(key: Path, claims: dict[str, Any]) -> str:
    """A token with exactly these claims (no defaults), signed by the dev key."""
    kid = json.loads((key.parent / "jwks.json").read_text())["keys"][0]["kid"]
    return jwt.encode(claims, key.read_bytes(), algorithm="RS256", headers={"kid": kid})


async def _refusal(verifier: JwtVerifier, token: str) -> tuple[Code, str]:
    try:
        await verifier.verify(token)
    except (AuthError, Forbidden) as error:
        return error.code, error.reason
    raise AssertionError("the token was accepted")


async def test_a_valid_token_names_the_caller(keys: tuple[Path, Path]) -> None:
    key, jwks = keys
    verifier = JwtVerifier(_settings(jwks))
    who = await verifier.verify(_token(key, role="svc-metering"))
    assert (who.subject, who.service_identity, who.callers) == ("alice", "svc-metering", frozenset({"svc-metering"}))
    person = await verifier.verify(_token(key, role="admin"))
    assert (person.is_admin, person.is_service, person.callers) == (True, False, frozenset({"admin"}))


async def test_a_service_token_from_an_unknown_client_is_nobody(keys: tuple[Path, Path]) -> None:
    key, jwks = keys
    who = await JwtVerifier(_settings(jwks)).verify(_token(key, role="service", azp="somebody-else"))
    assert (who.is_service, who.is_privileged, who.callers) == (False, False, frozenset())


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("no exp", {"exp": None}),
        ("no sub", {"sub": None}),
        ("empty sub", {"sub": ""}),
        ("no aud", {"aud": None}),
        ("wrong aud", {"aud": "another-app"}),
        ("no iss", {"iss": None}),
        ("wrong iss", {"iss": "https://elsewhere"}),
        ("roles an object", {"realm_access": {"roles": {"admin": True}}}),
        ("roles a string", {"realm_access": {"roles": "admin"}}),
        ("roles not all strings", {"realm_access": {"roles": ["admin", 7]}}),
        ("realm_access a list", {"realm_access": ["admin"]}),
    ],
)
async def test_malformed_claims_are_unauthenticated(keys: tuple[Path, Path], case: str, change: dict[str, Any]) -> None:
    key, jwks = keys
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": now + 600,
        "realm_access": {"roles": ["admin"]},
    }
    claims.update(change)
    claims = {k: v for k, v in claims.items() if v is not None}
    code, reason = await _refusal(JwtVerifier(_settings(jwks)), _raw(key, claims))
    assert (code, reason) == (Code.UNAUTHENTICATED, "TOKEN_INVALID"), case


async def test_an_audience_list_containing_ours_is_accepted(keys: tuple[Path, Path]) -> None:
    key, jwks = keys
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ["account", AUDIENCE],
        "sub": "a",
        "exp": now + 60,
        "realm_access": {"roles": ["user"]},
    }
    assert (await JwtVerifier(_settings(jwks)).verify(_raw(key, claims))).subject == "a"


async def test_no_known_role_is_forbidden_not_unauthenticated(keys: tuple[Path, Path]) -> None:
    key, jwks = keys
    token = _token(key, realm_access={"roles": ["offline_access"]})
    assert await _refusal(JwtVerifier(_settings(jwks)), token) == (Code.PERMISSION_DENIED, "NO_ROLE")


async def test_the_clock_skew_applies_to_exp_and_nbf_alike(keys: tuple[Path, Path]) -> None:
    key, jwks = keys
    verifier = JwtVerifier(_settings(jwks, AUTH_TOKEN_CACHE_SIZE="0"))
    now = int(time.time())
    assert await verifier.verify(_token(key, exp=now - 20))
    assert await _refusal(verifier, _token(key, exp=now - 40)) == (Code.UNAUTHENTICATED, "TOKEN_EXPIRED")
    assert await verifier.verify(_token(key, nbf=now + 20))
    assert await _refusal(verifier, _token(key, nbf=now + 40)) == (Code.UNAUTHENTICATED, "TOKEN_NOT_YET_VALID")
    # iat is not checked (nor is it by Envoy): a token issued "in the future" is fine within nbf/exp.
    assert await verifier.verify(_token(key, iat=now + 3600))


async def test_verified_tokens_are_cached_but_never_past_their_expiry(
    keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, jwks = keys
    now = [time.time()]
    verifier = JwtVerifier(_settings(jwks), clock=lambda: now[0])
    decodes = 0
    real_decode = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    token = _token(key, ttl=60)
    for _ in range(5):
        assert (await verifier.verify(token)).subject == "alice"
    assert decodes == 1, "a cached token is not verified again"
    now[0] += 60 + 29
    assert (await verifier.verify(token)).subject == "alice"  # within the skew
    now[0] += 2
    assert await _refusal(verifier, token) == (Code.UNAUTHENTICATED, "TOKEN_EXPIRED")
    assert verifier.cached_tokens == 0


async def test_the_cache_is_bounded(keys: tuple[Path, Path]) -> None:
    key, jwks = keys
    verifier = JwtVerifier(_settings(jwks, AUTH_TOKEN_CACHE_SIZE="3"))
    for n in range(10):
        await verifier.verify(_token(key, jti=str(n)))
    assert verifier.cached_tokens == 3


async def test_a_cached_token_dies_with_its_key(keys: tuple[Path, Path], tmp_path: Path) -> None:
    key, jwks = keys
    verifier = JwtVerifier(_settings(jwks), file_check_seconds=0)
    token = _token(key)
    await verifier.verify(token)
    _, other_jwks = ensure_dev_keys(tmp_path / "rotated")
    shutil.copy(other_jwks, jwks)  # the old key is withdrawn from the JWKS
    assert await _refusal(verifier, token) == (Code.UNAUTHENTICATED, "TOKEN_INVALID")


class _JwksServer:
    """A JWKS endpoint that counts its requests and can be slow."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.documents = documents
        self.requests = 0
        self.delay = 0.0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                time.sleep(outer.delay)
                body = json.dumps({"keys": [k for d in outer.documents for k in d["keys"]]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def two_keys(tmp_path: Path) -> Iterator[tuple[Path, Path, _JwksServer]]:
    first, first_jwks = ensure_dev_keys(tmp_path / "one")
    second, second_jwks = ensure_dev_keys(tmp_path / "two")
    server = _JwksServer([json.loads(first_jwks.read_text())])
    server.second = json.loads(second_jwks.read_text())  # type: ignore[attr-defined]
    try:
        yield first, second, server
    finally:
        server.close()


async def test_jwks_from_a_url_is_fetched_once_and_refreshed_on_an_unknown_kid_with_a_rate_limit(
    two_keys: tuple[Path, Path, _JwksServer],
) -> None:
    first, second, server = two_keys
    settings = _settings(AUTH_JWKS_URL=server.url, AUTH_JWKS_MIN_REFRESH_SECONDS="1", AUTH_TOKEN_CACHE_SIZE="0")
    verifier = JwtVerifier(settings)
    try:
        for _ in range(3):
            await verifier.verify(_token(first))
        assert server.requests == 1
        await asyncio.sleep(1.1)  # fetches are at most one per AUTH_JWKS_MIN_REFRESH_SECONDS, the first included
        # A token from a key the JWKS does not (yet) hold: one refresh, then refused.
        assert await _refusal(verifier, _token(second)) == (Code.UNAUTHENTICATED, "TOKEN_INVALID")
        assert server.requests == 2
        # More unknown kids right away do not turn into more fetches.
        for _ in range(5):
            await _refusal(verifier, _token(second))
        assert server.requests == 2
        # The provider publishes the new key; after the rate-limit interval it is picked up.
        server.documents.append(server.second)  # type: ignore[attr-defined]
        await asyncio.sleep(1.1)
        assert (await verifier.verify(_token(second))).subject == "alice"
        assert server.requests == 3
    finally:
        await verifier.aclose()


async def test_fetching_the_jwks_does_not_block_the_event_loop(two_keys: tuple[Path, Path, _JwksServer]) -> None:
    first, _, server = two_keys
    server.delay = 0.5
    verifier = JwtVerifier(_settings(AUTH_JWKS_URL=server.url))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await verifier.verify(_token(first))
    finally:
        task.cancel()
        await verifier.aclose()
    assert ticks >= 20, f"the loop ran only {ticks} times during a 0.5 s fetch"


async def test_an_unreachable_jwks_is_unavailable_not_a_bad_token(keys: tuple[Path, Path]) -> None:
    key, _ = keys
    verifier = JwtVerifier(_settings(AUTH_JWKS_URL="http://127.0.0.1:9/certs"))
    try:
        assert await _refusal(verifier, _token(key)) == (Code.UNAVAILABLE, "JWKS_UNAVAILABLE")
    finally:
        await verifier.aclose()


async def test_client_credentials_tokens_come_from_the_identity_provider_with_a_secret_from_a_file(
    tmp_path: Path,
) -> None:
    from services.common.auth import ClientCredentialsTokenSource

    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"])).decode()
            seen.append((self.headers.get("authorization", ""), body))
            good = self.headers.get("authorization") == "Basic c3ZjLW1ldGVyaW5nOnMzY3JldA=="  # svc-metering:s3cret
            payload = json.dumps({"access_token": f"token-{len(seen)}", "expires_in": 300} if good else {}).encode()
            self.send_response(200 if good else 401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/token"
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    try:
        source = ClientCredentialsTokenSource(url, "svc-metering", str(secret))
        assert [await source.token() for _ in range(3)] == ["token-1"] * 3  # reused until near expiry
        assert seen == [("Basic c3ZjLW1ldGVyaW5nOnMzY3JldA==", "grant_type=client_credentials")]
        secret.write_text("wrong")
        refused = ClientCredentialsTokenSource(url, "svc-metering", str(secret))
        with pytest.raises(AuthError) as error:
            await refused.token()
        assert error.value.reason == "SERVICE_TOKEN_UNAVAILABLE" and "wrong" not in error.value.message
    finally:
        server.shutdown()
        server.server_close()


async def test_unsigned_and_symmetric_tokens_are_refused(keys: tuple[Path, Path]) -> None:
    _, jwks = keys
    published = json.loads(jwks.read_text())["keys"][0]
    kid = published["kid"]
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "a",
        "exp": int(time.time()) + 60,
        "realm_access": {"roles": ["admin"]},
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    # Algorithm confusion: HMAC keyed with the published JWKS (what an attacker can read).
    confused = jwt.encode(claims, published["n"].encode(), algorithm="HS256", headers={"kid": kid})
    verifier = JwtVerifier(_settings(jwks))
    for token in (unsigned, confused, "a.b.c", "", "x" * 10_000):
        assert await _refusal(verifier, token) == (Code.UNAUTHENTICATED, "TOKEN_INVALID")
