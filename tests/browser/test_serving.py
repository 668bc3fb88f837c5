"""How the gateway serves the dashboard: one origin with the API, SPA fallback, caching, security headers,
and the balance stream as newline-delimited JSON."""

from __future__ import annotations

import json
import re
import threading
import uuid

import httpx

from tests.e2e.conftest import Stack

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def test_the_app_its_assets_and_client_routes_come_from_the_gateway(web_stack: Stack) -> None:
    with httpx.Client(base_url=web_stack.url, timeout=30) as http:
        index = http.get("/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert index.headers["cache-control"] == "no-cache"
        csp = index.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in csp
        for name, value in SECURITY.items():
            assert index.headers[name] == value
        # No inline scripts in the page itself: only external modules.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", index.text)

        asset = re.search(r'src="(/assets/[^"]+\.js)"', index.text)
        assert asset is not None
        script = http.get(asset.group(1))
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert script.headers["x-content-type-options"] == "nosniff"

        # A client-side route reloaded in the browser still gets the app.
        deep = http.get("/admin/credits/accounts/someone")
        assert deep.status_code == 200 and deep.text == index.text
        # The API and missing assets stay what they are.
        assert http.get("/assets/missing-0000.js").status_code == 404
        assert http.get("/api/v1/credits/tiers/compare").headers["content-type"].startswith("application/json")
        assert http.get("/api/v1/no/such/route").status_code in (401, 404)
        assert http.post("/anything-else").status_code == 404

        config = http.get("/app-config.json").json()
        assert config == {"checkoutUrl": "", "devSignIn": True, "oidc": None}


def test_the_development_sign_in_mints_only_user_and_admin_tokens(web_stack: Stack) -> None:
    with httpx.Client(base_url=web_stack.url, timeout=30) as http:
        token = http.post("/dev/token", json={"user_id": "dev-user", "role": "user"}).json()["access_token"]
        balance = http.get("/api/v1/credits/balance", headers={"authorization": f"Bearer {token}"})
        assert balance.status_code == 200 and balance.json()["user_id"] == "dev-user"
        assert http.post("/dev/token", json={"user_id": "x", "role": "service"}).status_code == 400
        assert http.post("/dev/token", json={"user_id": "", "role": "user"}).status_code == 400


def test_the_balance_stream_is_newline_delimited_json_through_the_gateway(web_stack: Stack) -> None:
    user = f"stream-{uuid.uuid4().hex[:8]}"
    lines: list[dict[str, object]] = []
    got_two = threading.Event()

    def read() -> None:
        with (
            httpx.Client(base_url=web_stack.url, timeout=30) as http,
            http.stream("GET", "/api/v1/credits/balance/watch", headers=web_stack.headers(user, "user")) as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.strip():
                    lines.append(json.loads(line))
                if len(lines) >= 2:
                    got_two.set()
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with httpx.Client(base_url=web_stack.url, timeout=30) as http:
        for _ in range(100):
            if lines:
                break
            threading.Event().wait(0.1)
        assert lines, "no first balance on the stream"
        allocated = http.post(
            "/api/v1/credits/allocate",
            headers=web_stack.headers("ops", "admin"),
            json={"user_id": user, "amount_nanos": "2500000000", "reason": "stream", "request_id": uuid.uuid4().hex},
        )
        assert allocated.status_code == 200
    assert got_two.wait(10), lines
    first, second = (line["balance"] for line in lines[:2])
    assert isinstance(first, dict) and isinstance(second, dict)
    assert int(second["balance_nanos"]) == int(first["balance_nanos"]) + 2_500_000_000
    reader.join(5)
