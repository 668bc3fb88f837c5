"""DEVELOPMENT-ONLY sign-in for the dashboard on the local stack: a token for any user id and role.

``POST /dev/token`` with ``{"user_id": "...", "role": "user"|"admin"}`` answers
``{"access_token": ..., "expires_in": ...}``, signed with the development key
that tools.stack generated under .local/. Anyone who can reach it can become
an admin, so it exists only on the local stack: tools.stack starts it and
routes /dev/ to it only when it generated its own development signing keys
(no AUTH_JWKS_URL or AUTH_JWKS_FILE configured); the Kubernetes gateway config
never has the route, and nothing in deploy/ runs this module.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from services.common.auth import mint_token

ROLES = ("user", "admin")
_USER_RE = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
TTL_SECONDS = 3600


def _handler(key: Path, issuer: str, audience: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: tokens never reach a log
            pass

        def _reply(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path != "/dev/token":
                self._reply(404, {"reason": "ROUTE_NOT_FOUND", "message": "no such route"})
                return
            try:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(min(length, 4096)) or b"{}")
            except ValueError:
                self._reply(400, {"reason": "INVALID_REQUEST", "message": "the body must be JSON"})
                return
            user = body.get("user_id") if isinstance(body, dict) else None
            role = body.get("role") if isinstance(body, dict) else None
            if not isinstance(user, str) or not _USER_RE.match(user):
                self._reply(
                    400,
                    {"reason": "INVALID_USER_ID", "message": "user id: 1-128 letters, digits or . _ @ -"},
                )
                return
            if role not in ROLES:
                self._reply(400, {"reason": "INVALID_ROLE", "message": f"role must be one of {', '.join(ROLES)}"})
                return
            token = mint_token(key, user, role, issuer=issuer, audience=audience, ttl_seconds=TTL_SECONDS)
            self._reply(200, {"access_token": token, "expires_in": TTL_SECONDS, "token_type": "Bearer"})

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key", required=True, type=Path, help="the development signing key (PEM)")
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    # The stack pins the port through the environment so that a restart comes back on it.
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEV_SIGNIN_PORT") or 0))
    opts = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", opts.port), _handler(opts.key, opts.issuer, opts.audience))
    print(json.dumps({"event": "listening", "service": "dev-signin", "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
