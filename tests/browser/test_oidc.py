"""OIDC sign-in (authorization code + PKCE, oidc-client-ts) against a real OIDC provider run locally.

The provider is oidc-provider-mock (a real authorization server: discovery,
authorize form, code exchange, signed ID tokens, JWKS, end-session). The stack
trusts only that provider here (AUTH_JWKS_URL), so there is no development
sign-in, and the API accepts the tokens the browser obtained.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import oidc_provider_mock._app as mock_app
import pytest
from authlib.oauth2.rfc7636 import CodeChallenge
from playwright.sync_api import Browser, Request, expect
from werkzeug.serving import make_server

from tests.e2e.conftest import free_port, run_stack
from tools import web


class _Cors:
    """Lets the dashboard's origin call the provider from the browser, as Keycloak's Web Origins do."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if origin:
                headers = [
                    *headers,
                    ("Access-Control-Allow-Origin", origin),
                    ("Access-Control-Allow-Headers", "authorization, content-type"),
                    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                ]
            return start_response(status, headers, exc_info)

        if environ["REQUEST_METHOD"] == "OPTIONS" and origin:
            start("204 No Content", [])
            return [b""]
        result: Iterable[bytes] = self.app(environ, start)
        return result


# oidc-provider-mock 0.3 (the last release for Python 3.11) issues codes to confidential
# clients only. A browser app is a public client that proves itself with PKCE instead, so
# its authorization-code grant gets authlib's RFC 7636 extension (verifier checked against
# the stored S256 challenge, required) and the "none" client authentication.
_challenges: dict[str, tuple[str, str]] = {}


class _Pkce(CodeChallenge):  # type: ignore[misc]
    def get_authorization_code_challenge(self, authorization_code: Any) -> str:
        return _challenges.get(authorization_code.code, ("", ""))[0]

    def get_authorization_code_challenge_method(self, authorization_code: Any) -> str:
        return _challenges.get(authorization_code.code, ("", ""))[1]


class _PublicClientGrant(mock_app.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

    def __init__(self, request: Any, server: Any) -> None:
        super().__init__(request, server)
        _Pkce(required=True)(self)

    def save_authorization_code(self, code: str, request: Any) -> None:
        super().save_authorization_code(code, request)
        _challenges[code] = (request.data.get("code_challenge", ""), request.data.get("code_challenge_method", ""))


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mock_app, "AuthorizationCodeGrant", _PublicClientGrant)
        app = oidc_provider_mock.app()
    server = make_server("127.0.0.1", port, _Cors(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def oidc_database(browser_databases: dict[str, str]) -> str:
    return browser_databases["oidc"]


def test_sign_in_with_code_and_pkce_then_sign_out(
    provider: str, oidc_database: str, browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    web.build()
    # The provider puts these claims in the ID token: Keycloak's realm roles.
    assert httpx.put(f"{provider}/users/oidc-alice", json={"realm_access": {"roles": ["user"]}}).status_code == 204
    # A public client (no secret: PKCE instead), registered for this gateway's callback.
    port = free_port()
    registered = httpx.post(
        f"{provider}/oauth2/clients",
        json={"redirect_uris": [f"http://127.0.0.1:{port}/auth/callback"], "token_endpoint_auth_method": "none"},
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    overrides = {
        "AUTH_JWKS_URL": f"{provider}/jwks",
        "AUTH_ISSUER": provider,
        "AUTH_AUDIENCE": client_id,
        "DASHBOARD_OIDC_AUTHORITY": provider,
        "DASHBOARD_OIDC_CLIENT_ID": client_id,
    }
    local: Path = tmp_path_factory.mktemp("oidc-stack")
    with run_stack(oidc_database, local, port, **overrides) as stack:
        config = httpx.get(f"{stack.url}/app-config.json").json()
        assert config["devSignIn"] is False and config["oidc"]["authority"] == provider
        assert httpx.post(f"{stack.url}/dev/token", json={"user_id": "x", "role": "admin"}).status_code == 404

        context = browser.new_context(locale="en-US")
        page = context.new_page()
        authorize: list[str] = []

        def seen(request: Request) -> None:
            if request.url.startswith(f"{provider}/oauth2/authorize"):
                authorize.append(request.url)

        page.on("request", seen)
        page.goto(f"{stack.url}/credits/transactions")
        expect(page.get_by_role("button", name="Sign in (development)")).to_have_count(0)
        page.get_by_role("button", name="Sign in with your organisation").click()
        # The provider's own sign-in form.
        page.get_by_placeholder("sub").fill("oidc-alice")
        page.get_by_role("button", name="Authorize").click()
        # Back on the page the user asked for, signed in, with data from the API.
        expect(page.get_by_role("heading", level=1, name="Transactions", exact=True)).to_be_visible()
        expect(page.get_by_text("oidc-alice")).to_be_visible()
        expect(page.get_by_test_id("transaction-row")).to_have_count(1)  # the trial allocation

        query = parse_qs(urlsplit(authorize[0]).query)
        assert query["response_type"] == ["code"]
        assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
        assert query["client_id"] == [client_id]

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{provider}/**")
        context.close()
