"""A local stand-in for the OpenRouter API (no internet here), in OpenRouter's documented shapes.

Serves: ``POST /api/v1/keys`` (201, ``{data, key}``), ``GET /api/v1/keys``
(paged like OpenRouter's: ``offset`` skips that many keys, ``include_disabled``
adds disabled ones; ``page_size`` keys per page, oldest first),
``GET|PATCH|DELETE /api/v1/keys/{hash}``, ``GET /api/v1/key``, ``GET
/api/v1/credits``, ``GET /api/v1/models`` (a fixture of free and paid models).
Management endpoints require the management key; ``/key`` requires a key it
issued (or one registered as a valid BYOK key). Amounts are JSON numbers in
USD, as OpenRouter sends them.

Fault injection: queue answers with ``POST /_fake/faults`` ``{"path": "/api/v1/key",
"faults": [429, 500, "timeout", "malformed", 401, 402, 403]}`` (consumed one per
matching request; ``"after:500"``, ``"after:timeout"`` and ``"after:malformed"``
first do what was asked — e.g. create the key — and then answer with the fault,
as a server that fails after committing would), register outside keys with ``POST /_fake/byok`` ``{"key": …}``,
set a key's spend with ``POST /_fake/usage`` ``{"hash": …, "usage": "1.25"}``, and
read everything with ``GET /_fake/state``. In-process users call the same
methods on :class:`FakeOpenRouter` directly.

Run alone: ``python -m tools.fake_openrouter --port 8787 --management-key-file FILE`` (the key is
read from a file so that it never shows on a command line).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import threading
import time
from collections import deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

FIXTURE = Path(__file__).parent / "fixtures" / "openrouter_models.json"


def _number(value: Decimal) -> Any:
    """Decimal → int or a float for the wire, as OpenRouter sends JSON numbers (the fake's output only)."""
    return int(value) if value == value.to_integral_value() else float(value)


class FakeOpenRouter:
    def __init__(self, management_key: str, *, timeout_seconds: float = 3.0, page_size: int = 100) -> None:
        self.management_key = management_key
        self.page_size = page_size
        self.timeout_seconds = timeout_seconds
        self.keys: dict[str, dict[str, Any]] = {}  # hash -> record (with the plaintext under "_key")
        self.by_plaintext: dict[str, str] = {}
        self.byok: set[str] = set()
        self.models = json.loads(FIXTURE.read_text())
        self.faults: dict[str, deque[Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # --- control -------------------------------------------------------------------------

    def inject(self, path: str, *faults: Any) -> None:
        with self.lock:
            self.faults.setdefault(path, deque()).extend(faults)

    def add_byok(self, key: str) -> None:
        with self.lock:
            self.byok.add(key)

    def set_usage(self, key_hash: str, usage: Decimal) -> None:
        with self.lock:
            self.keys[key_hash]["usage"] = usage

    def plaintext_keys(self) -> list[str]:
        """Every key it issued or accepts (for tests that look for leaked secrets)."""
        with self.lock:
            return [r["_key"] for r in self.keys.values()] + sorted(self.byok)

    def keys_named(self, prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.keys.values() if str(r["name"]).startswith(prefix)]

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {
                "keys": [
                    {k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items() if k != "_key"}
                    for r in self.keys.values()
                ],
                "requests": list(self.requests),
            }

    def _next_fault(self, path: str) -> Any:
        with self.lock:
            queue = self.faults.get(path)
            return queue.popleft() if queue else None

    # --- serving ---------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keys travel in headers: never log requests
                pass

            def _send(self, status: int, body: Any = None, raw: bytes | None = None) -> None:
                payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with fake.lock:
                    fake.requests.append((method, path))
                if path.startswith("/_fake/"):
                    self._send(*fake._control(method, path, raw))
                    return
                fault = fake._next_fault(path)
                auth = self.headers.get("authorization", "")
                token = auth[7:] if auth.lower().startswith("bearer ") else ""
                query = parse_qs(self.path.partition("?")[2])
                if isinstance(fault, str) and fault.startswith("after:"):
                    fake._api(method, path, token, raw, query)  # done, and the answer is lost
                    fault = fault.removeprefix("after:")
                    fault = int(fault) if fault.isdigit() else fault
                if fault == "timeout":
                    time.sleep(fake.timeout_seconds)
                    self._send(504, {"error": {"code": 504, "message": "slow"}})
                    return
                if fault == "malformed":
                    self._send(200, raw=b"{not json")
                    return
                if isinstance(fault, int):
                    self._send(fault, {"error": {"code": fault, "message": f"injected {fault}"}})
                    return
                self._send(*fake._api(method, path, token, raw, query))

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- the API ----------------------------------------------------------------------------

    def _unauthorized(self) -> tuple[int, Any]:
        return 401, {"error": {"code": 401, "message": "No auth credentials found"}}

    def _public(self, record: dict[str, Any]) -> dict[str, Any]:
        limit = record["limit"]
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        out["limit"] = None if limit is None else _number(limit)
        out["usage"] = _number(record["usage"])
        out["limit_remaining"] = None if limit is None else _number(max(Decimal(0), limit - record["usage"]))
        return out

    def _api(
        self, method: str, path: str, token: str, raw: bytes, query: dict[str, list[str]] | None = None
    ) -> tuple[int, Any]:
        body = json.loads(raw, parse_float=Decimal) if raw else {}
        if path == "/api/v1/models" and method == "GET":
            return 200, self.models
        if path == "/api/v1/key" and method == "GET":
            with self.lock:
                key_hash = self.by_plaintext.get(token)
                if key_hash is not None:
                    record = self._public(self.keys[key_hash])
                    return 200, {
                        "data": {
                            **record,
                            "is_free_tier": False,
                            "is_provisioning_key": False,
                            "rate_limit": {"requests": 1000, "interval": "1h"},
                        }
                    }
                if token in self.byok:
                    return 200, {
                        "data": {
                            "label": f"sk-or-v1-...{token[-3:]}",
                            "limit": None,
                            "usage": 0,
                            "limit_remaining": None,
                            "is_free_tier": False,
                            "is_provisioning_key": False,
                            "rate_limit": {"requests": 1000, "interval": "1h"},
                        }
                    }
            return self._unauthorized()
        if not path.startswith("/api/v1/keys") and path != "/api/v1/credits":
            return 404, {"error": {"code": 404, "message": "Not Found"}}
        if token != self.management_key:
            return self._unauthorized()
        if path == "/api/v1/credits":
            with self.lock:
                used = sum((r["usage"] for r in self.keys.values()), Decimal(0))
            return 200, {"data": {"total_credits": 1000, "total_usage": _number(used)}}
        if path == "/api/v1/keys":
            if method == "POST":
                name = body.get("name")
                if not isinstance(name, str) or not name:
                    return 400, {"error": {"code": 400, "message": "name is required"}}
                plaintext = "sk-or-v1-" + secrets.token_hex(32)
                key_hash = hashlib.sha256(plaintext.encode()).hexdigest()
                limit = body.get("limit")
                record = {
                    "hash": key_hash,
                    "name": name,
                    "label": f"sk-or-v1-{plaintext[9:12]}...{plaintext[-3:]}",
                    "disabled": False,
                    "limit": None if limit is None else Decimal(str(limit)),
                    "limit_reset": body.get("limit_reset"),
                    "usage": Decimal(0),
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "updated_at": None,
                    "_key": plaintext,
                }
                with self.lock:
                    self.keys[key_hash] = record
                    self.by_plaintext[plaintext] = key_hash
                    public = self._public(record)
                return 201, {"data": public, "key": plaintext}
            params = query or {}
            try:
                offset = int(params.get("offset", ["0"])[0])
            except ValueError:
                return 400, {"error": {"code": 400, "message": "offset must be an integer"}}
            if offset < 0:
                return 400, {"error": {"code": 400, "message": "offset must not be negative"}}
            with_disabled = params.get("include_disabled", ["false"])[0] == "true"
            with self.lock:
                listed = [r for r in self.keys.values() if with_disabled or not r["disabled"]]
                page = listed[offset : offset + self.page_size]
                return 200, {"data": [self._public(r) for r in page]}
        key_hash = path.rsplit("/", 1)[-1]
        with self.lock:
            found = self.keys.get(key_hash)
            if found is None:
                return 404, {"error": {"code": 404, "message": "Key not found"}}
            record = found
            if method == "GET":
                return 200, {"data": self._public(record)}
            if method == "PATCH":
                for field in ("name", "disabled", "limit_reset"):
                    if field in body:
                        record[field] = body[field]
                if "limit" in body:
                    record["limit"] = None if body["limit"] is None else Decimal(str(body["limit"]))
                record["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                return 200, {"data": self._public(record)}
            if method == "DELETE":
                del self.keys[key_hash]
                self.by_plaintext.pop(record["_key"], None)
                return 200, {"data": {"success": True}}
        return 405, {"error": {"code": 405, "message": "method not allowed"}}

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        body = json.loads(raw) if raw else {}
        if path == "/_fake/state":
            return 200, self.state()
        if path == "/_fake/faults" and method == "POST":
            self.inject(body["path"], *body["faults"])
            return 200, {"ok": True}
        if path == "/_fake/byok" and method == "POST":
            self.add_byok(body["key"])
            return 200, {"ok": True}
        if path == "/_fake/usage" and method == "POST":
            self.set_usage(body["hash"], Decimal(str(body["usage"])))
            return 200, {"ok": True}
        return 404, {"error": "unknown control path"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--management-key-file", required=True, type=Path, help="a file holding the management key")
    opts = parser.parse_args()
    fake = FakeOpenRouter(opts.management_key_file.read_text().strip())
    url = fake.start(opts.port)
    print(
        json.dumps(
            {"event": "listening", "service": "fake-openrouter", "url": url, "port": int(url.rsplit(":", 1)[1])}
        ),
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
