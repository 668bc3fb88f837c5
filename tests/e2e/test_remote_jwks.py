"""Keycloak-style auth: the gateway and the services fetch the signing keys from a JWKS URL."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.auth import ensure_dev_keys, mint_token
from tests.conftest import Postgres
from tests.e2e.conftest import run_stack

REALM_PATH = "/realms/creditmeter"


@pytest.fixture
def identity_provider(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A minimal OIDC key endpoint serving a JWKS at Keycloak's path."""
    key, jwks = ensure_dev_keys(tmp_path / "idp")
    body = jwks.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == f"{REALM_PATH}/protocol/openid-connect/certs":
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{REALM_PATH}", key
    finally:
        server.shutdown()
        server.server_close()


async def test_tokens_from_a_jwks_url_are_accepted(
    postgres: Postgres, identity_provider: tuple[str, Path], tmp_path: Path
) -> None:
    issuer, key = identity_provider
    database = await postgres.database("e2e_jwks")
    overrides = {
        "AUTH_JWKS_URL": f"{issuer}/protocol/openid-connect/certs",
        "AUTH_ISSUER": issuer,
        "AUTH_AUDIENCE": "creditmeter",
    }
    with run_stack(database, tmp_path / "local", **overrides) as stack:
        good = mint_token(key, "kc-user", "user", issuer=issuer, audience="creditmeter")
        wrong_issuer = mint_token(key, "kc-user", "user", issuer="http://elsewhere", audience="creditmeter")
        async with httpx.AsyncClient(base_url=stack.url) as http_client:
            ok = await http_client.get("/api/v1/credits/balance", headers={"authorization": f"Bearer {good}"})
            assert ok.status_code == 200, ok.text
            assert ok.json()["user_id"] == "kc-user"
            refused = await http_client.get(
                "/api/v1/credits/balance", headers={"authorization": f"Bearer {wrong_issuer}"}
            )
            assert refused.status_code == 401
